import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/**
 * Postfix's smtp-sink as a lightweight upstream that stores every message (`-d DIR/%s.`).
 *
 * Dump format (man smtp-sink, "DUMP FILE FORMAT"): smtp-sink writes LF line ends (the CR of each CRLF
 * is dropped), first its own headers (X-Client-Addr, X-Client-Proto, X-Helo-Args, X-Mail-Args,
 * X-Rcpt-Args per RCPT, then a three-line "Received:" header), then the message as received
 * (dot-stuffing removed), then one empty line. `SinkMessage.content` is the message alone, still with LF
 * line ends: compare it with `sent.replace(/\r\n/g, '\n')`. Note: smtp-sink also advertises AUTH and
 * accepts any credentials unless started with `-a`.
 */

export interface SmtpSinkOptions {
  /** Greeting/EHLO hostname (-h). Default "sink.example.test". */
  hostname?: string;
  /** More smtp-sink options, e.g. ['-a'] (no AUTH), ['-r', 'RCPT'] (soft-reject RCPT), ['-8'] (no 8BITMIME). */
  args?: string[];
  /** Keep every message on disk (default true); false for load runs, where only the replies matter. */
  dump?: boolean;
}

export interface SinkMessage {
  file: string;
  /** The dump file as written. */
  raw: string;
  clientAddr: string;
  /** ESMTP, SMTP or LMTP. */
  clientProto: string;
  /** Argument of the last HELO/EHLO ("" if none). */
  helo: string;
  /** Arguments of MAIL, e.g. "<a@example.org> SIZE=123". */
  mailArgs: string;
  /** Arguments of each RCPT, e.g. ["<b@example.test>"]. */
  rcptArgs: string[];
  /** The message (headers and body) as the client sent it, with LF line ends. */
  content: string;
}

export interface SmtpSinkInstance {
  port: number;
  dir: string;
  /** Message contents (see SinkMessage.content), oldest first. */
  messages(): Promise<string[]>;
  dumps(): Promise<SinkMessage[]>;
  /** Waits until at least n complete messages were dumped. Default timeout 10 s. */
  waitForMessages(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  /** What smtp-sink printed (errors only, unless started with -v). */
  output(): string;
  /** SIGTERM, wait for exit, remove dir. Safe to call twice. */
  stop(): Promise<void>;
}

const SMTP_SINK = '/usr/sbin/smtp-sink';
const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function lookupNobody(): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === 'nobody' && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error('user nobody does not exist');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 2000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.includes('\n')) {
        clearTimeout(timer);
        socket.end('QUIT\r\n');
        resolve(buf.startsWith('220'));
      }
    });
    socket.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Parses one smtp-sink dump; undefined while the file is still being written. */
export function parseSinkDump(file: string, raw: string): SinkMessage | undefined {
  // A finished dump ends with the message's last LF plus smtp-sink's empty line.
  if (!raw.endsWith('\n\n')) return undefined;
  const lines = raw.split('\n');
  const meta: Record<string, string[]> = {};
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^(X-[A-Za-z-]+): ?(.*)$/.exec(lines[i] ?? '');
    if (!m) break;
    (meta[m[1] as string] ??= []).push(m[2] as string);
  }
  if (!(lines[i] ?? '').startsWith('Received: ')) return undefined;
  i++;
  while (i < lines.length && /^[ \t]/.test(lines[i] ?? '')) i++;
  const content = lines.slice(i).join('\n').slice(0, -1);
  return {
    file,
    raw,
    clientAddr: meta['X-Client-Addr']?.[0] ?? '',
    clientProto: meta['X-Client-Proto']?.[0] ?? '',
    helo: meta['X-Helo-Args']?.[0] ?? '',
    mailArgs: meta['X-Mail-Args']?.[0] ?? '',
    rcptArgs: meta['X-Rcpt-Args'] ?? [],
    content,
  };
}

/** Starts smtp-sink on a free 127.0.0.1 port, dumping messages into a new temp directory. */
export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSinkInstance> {
  const dir = await mkdtemp(join(tmpdir(), 'mailshim-sink-'));
  const dumpDir = join(dir, 'dump');
  await chmod(dir, 0o755);
  await mkdir(dumpDir);
  const asRoot = process.getuid?.() === 0;
  // As root, smtp-sink must drop to another user (-u) right after binding; that user writes the dumps.
  if (asRoot) {
    const nobody = lookupNobody();
    await chown(dumpDir, nobody.uid, nobody.gid);
  }

  let output = '';
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 1; attempt <= 3 && child === undefined; attempt++) {
    port = await freePort();
    const args = [
      ...(asRoot ? ['-u', 'nobody'] : []),
      ...(opts.dump === false ? [] : ['-d', `${dumpDir}/%s.`]),
      '-h', opts.hostname ?? 'sink.example.test',
      ...(opts.args ?? []),
      `127.0.0.1:${port}`,
      '64',
    ];
    const c = spawn(SMTP_SINK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let exited = false;
    c.once('exit', () => {
      exited = true;
      children.delete(c);
    });
    c.once('error', (err) => {
      exited = true;
      output += `cannot run ${SMTP_SINK}: ${err.message}\n`;
    });
    c.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    children.add(c);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const ch of children) ch.kill('SIGKILL');
      });
    }
    const deadline = Date.now() + 5000;
    while (!exited && Date.now() < deadline) {
      if (await greets(port)) {
        child = c;
        break;
      }
      await sleep(30);
    }
    if (child === undefined && !exited) c.kill('SIGKILL');
  }
  if (child === undefined) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`smtp-sink did not start:\n${output}`);
  }
  const proc = child;

  const dumps = async (): Promise<SinkMessage[]> => {
    const entries = await Promise.all(
      (await readdir(dumpDir)).map(async (name) => {
        const file = join(dumpDir, name);
        return { file, mtime: (await stat(file)).mtimeMs };
      }),
    );
    // The name is "<epoch second>.<random>", so order by modification time (the end of DATA).
    entries.sort((a, b) => a.mtime - b.mtime || a.file.localeCompare(b.file));
    const out: SinkMessage[] = [];
    for (const { file } of entries) {
      const parsed = parseSinkDump(file, await readFile(file, 'utf8'));
      if (parsed) out.push(parsed);
    }
    return out;
  };

  let stopping: Promise<void> | undefined;
  return {
    port,
    dir,
    dumps,
    async messages() {
      return (await dumps()).map((d) => d.content);
    },
    async waitForMessages(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = await dumps();
        if (got.length >= n) return got;
        if (Date.now() > deadline) throw new Error(`expected ${n} message(s) in smtp-sink within ${timeoutMs} ms, got ${got.length}`);
        await sleep(50);
      }
    },
    output: () => output,
    stop() {
      stopping ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise<void>((r) => proc.once('exit', () => r()));
          proc.kill('SIGTERM');
          const timedOut = await Promise.race([exited.then(() => false), sleep(5000).then(() => true)]);
          if (timedOut) {
            proc.kill('SIGKILL');
            await exited;
          }
        }
        children.delete(proc);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
