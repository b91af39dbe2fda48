import { spawn } from 'node:child_process';

/** What a finished (or killed) peer program produced. */
export interface RunResult {
  /** Exit code, or null when the process was killed by a signal (e.g. after a timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the harness killed the program because timeoutMs elapsed. */
  timedOut: boolean;
  durationMs: number;
}

/**
 * One step of an interactive dialogue on the program's stdin.
 * - `{ send }` writes the text exactly as given (add `\r\n` yourself, or pass `-crlf` to s_client);
 * - `{ waitFor }` waits until stdout matches, searching only output after the previous waitFor's match;
 * - `{ delayMs }` just waits.
 */
export type InputStep =
  | { send: string | Buffer }
  | { waitFor: RegExp | string; timeoutMs?: number }
  | { delayMs: number };

export interface RunOptions {
  /** Written to stdin: all at once (then stdin is closed), or as a scripted dialogue (closed after the last step). */
  input?: string | Buffer | InputStep[];
  /** Kill (SIGKILL) after this long. Default 20 s. */
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Keep stdin open after the input was written, until the program exits or times out. */
  keepStdinOpen?: boolean;
  /**
   * Resolve when the program exits even if a daemon it started still holds its stdout/stderr
   * (e.g. `postfix start`, whose master keeps the pipes for seconds). Default false: wait for the pipes to close.
   */
  resolveOnExit?: boolean;
}

const DEFAULT_TIMEOUT_MS = 20_000;
const DEFAULT_STEP_TIMEOUT_MS = 10_000;

/** Runs a program, feeds it input, and collects its output. Never rejects for a non-zero exit. */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let exited = false;
    // Resolvers of pending waitFor steps, re-checked whenever stdout grows.
    const waiters = new Set<() => void>();
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      for (const w of [...waiters]) w();
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    // EPIPE when the program exits before reading all input is expected (e.g. a failed handshake).
    child.stdin.on('error', () => undefined);

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      clearTimeout(timer);
      for (const w of [...waiters]) w();
      resolve({ code, signal, stdout, stderr, timedOut, durationMs: Date.now() - started });
    };
    child.once('close', finish);
    if (opts.resolveOnExit) {
      child.once('exit', (code, signal) => {
        // Let output that is already buffered arrive first; then stop waiting for the pipes.
        setImmediate(() => {
          finish(code, signal);
          child.stdout.destroy();
          child.stderr.destroy();
        });
      });
    }

    const finishInput = (): void => {
      if (!opts.keepStdinOpen && !exited) child.stdin.end();
    };

    const input = opts.input;
    if (input === undefined) {
      finishInput();
    } else if (typeof input === 'string' || Buffer.isBuffer(input)) {
      child.stdin.write(input);
      finishInput();
    } else {
      let cursor = 0;
      const waitFor = (pattern: RegExp | string, stepTimeoutMs: number): Promise<void> =>
        new Promise((res, rej) => {
          const check = (): void => {
            const rest = stdout.slice(cursor);
            let end = -1;
            if (typeof pattern === 'string') {
              const at = rest.indexOf(pattern);
              if (at >= 0) end = at + pattern.length;
            } else {
              const m = new RegExp(pattern.source, pattern.flags.replace('g', '')).exec(rest);
              if (m) end = m.index + m[0].length;
            }
            if (end >= 0) {
              cursor += end;
              done();
              res();
            } else if (exited) {
              done();
              rej(new Error(`program exited before output matched ${String(pattern)}`));
            }
          };
          const t = setTimeout(() => {
            done();
            rej(new Error(`timed out after ${stepTimeoutMs} ms waiting for ${String(pattern)}`));
          }, stepTimeoutMs);
          const done = (): void => {
            clearTimeout(t);
            waiters.delete(check);
          };
          waiters.add(check);
          check();
        });
      void (async () => {
        for (const step of input) {
          if (exited) return;
          if ('send' in step) child.stdin.write(step.send);
          else if ('waitFor' in step) await waitFor(step.waitFor, step.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS);
          else await new Promise((r) => setTimeout(r, step.delayMs));
        }
        finishInput();
      })().catch((err: Error) => {
        // A failed step ends the dialogue; the program's own output tells the test what happened.
        stderr += `\n[harness] ${err.message}\n`;
        if (!exited) child.kill('SIGKILL');
      });
    }
  });
}

/** swaks with the given arguments (e.g. `['--server', '127.0.0.1:2525', '--to', 'a@b']`). */
export function swaks(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('swaks', args, opts);
}

/**
 * The text to pass as swaks `--data` so that exactly `message` goes over the wire.
 * swaks strips one trailing `\r\n.\r\n`, turns bare LF into CRLF, turns the two characters `\n` and the
 * token `%NEWLINE%` into CRLF, expands `%DATE%`-style tokens, stuffs dots and appends `\r\n.\r\n`.
 * So a message that ends in CRLF must be given as `message + '.\r\n'`. Throws for messages swaks would alter.
 */
export function swaksData(message: string): string {
  if (!message.endsWith('\r\n')) throw new Error('swaksData: message must end with CRLF');
  if (/\\n|%[A-Z_]+%|(^|[^\r])\n/.test(message) || /^From /.test(message)) {
    throw new Error('swaksData: message contains text swaks rewrites (\\n, %TOKEN%, bare LF, leading "From ")');
  }
  return `${message}.\r\n`;
}

/**
 * `openssl s_client <args>`. `-ign_eof` is added unless `-quiet`/`-ign_eof`/`-no_ign_eof` is given, so
 * that the connection stays up after our input ends (until the server closes, e.g. after QUIT) and lines
 * starting with R/Q/k are sent, not taken as s_client commands. Use `-crlf` when sending SMTP lines with `\n`.
 * The TLS result is in stdout ("Protocol  : TLSv1.2", "Cipher is ...") and failures in stderr
 * (e.g. "tlsv1 alert protocol version ... SSL alert number 70").
 */
export function opensslSClient(
  args: readonly string[],
  input: string | InputStep[] = '',
  opts: Omit<RunOptions, 'input'> = {},
): Promise<RunResult> {
  const hasEofFlag = args.some((a) => a === '-quiet' || a === '-ign_eof' || a === '-no_ign_eof');
  const fullArgs = ['s_client', ...(hasEofFlag ? [] : ['-ign_eof']), ...args];
  return run('openssl', fullArgs, { ...opts, input });
}

/** `python3 -c <script>` (standard library only: smtplib, ssl, socket ...). */
export function pythonSmtplib(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run('python3', ['-c', script], { ...opts, env: { PYTHONUNBUFFERED: '1', ...opts.env } });
}

/**
 * msmtp with the given arguments; the message is read from stdin. msmtp reads ~/.msmtprc unless told
 * otherwise, so pass `-C /dev/null` (the default here) or your own `-C file` and give everything on the command line.
 */
export function msmtp(args: readonly string[], message: string, opts: Omit<RunOptions, 'input'> = {}): Promise<RunResult> {
  const hasConfig = args.some((a) => a === '-C' || a.startsWith('--file'));
  return run('msmtp', [...(hasConfig ? [] : ['-C', '/dev/null']), ...args], { ...opts, input: message });
}

/** Throws with the program's output when it did not exit with 0; handy in setup code. */
export function assertSuccess(result: RunResult, what: string): RunResult {
  if (result.code !== 0) {
    throw new Error(
      `${what} failed (code ${String(result.code)}, signal ${String(result.signal)}, timedOut ${result.timedOut})\n` +
        `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
  return result;
}
