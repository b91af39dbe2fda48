// `mailshim probe HOST[:PORT]`: what a mail server accepts (TLS versions, ciphers, certificate, EHLO, AUTH),
// in one command instead of a session with openssl s_client and a shell script. The engine is src/probe/.
import { readFile } from 'node:fs/promises';
import { systemTrustStore } from '../probe/certificate.js';
import { probe, UnreachableError, type ProbeOptions } from '../probe/probe.js';
import { renderText } from '../probe/report.js';
import type { ProbeMode } from '../probe/types.js';

const USAGE = `usage: mailshim probe HOST[:PORT] [--starttls | --implicit | --plain] [options]

Connects to a mail server and reports its greeting, EHLO before and after TLS, which of TLS 1.0, 1.1,
1.2 and 1.3 it accepts (one handshake per version, each with the widest cipher list this machine's
OpenSSL allows), its certificate chain, its AUTH mechanisms, a verdict for a legacy device and a
mailshim config that bridges the gap.

  --starttls          plain connection, then STARTTLS (the default, port 587)
  --implicit          TLS from the first byte (RFC 8314; the default on port 465)
  --plain             no TLS at all
  --servername NAME   SNI and the name checked against the certificate (default: HOST)
  --ca FILE           verify the certificate against the CAs in FILE instead of the system's
  --auth USER         also log in as USER with each offered mechanism, one connection each;
                      the password comes from MAILSHIM_PROBE_PASSWORD or a prompt (never printed).
                      It is sent only over TLS whose certificate verified (system CAs or --ca)
                      and names the server (HOST or --servername); otherwise each mechanism is
                      reported as not tried, with the reason
  --insecure-auth     with --auth: send the password even when the certificate did not verify
                      (anyone in the middle can read it; the report says so)
  --timeout MS        per step: connect, each reply, each handshake (default 10000)
  --json              print the report as one JSON document
  -h, --help          show this help

exit status: 0 the probe ran (whatever it found), 2 the host could not be reached or wrong usage`;

export interface ProbeCliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  /** For the password prompt; only used when it is a TTY. */
  stdin: NodeJS.ReadStream;
}

export class UsageError extends Error {}

export interface ProbeArgs {
  host: string;
  port: number;
  mode: ProbeMode;
  servername?: string;
  ca?: string;
  json: boolean;
  authUser?: string;
  insecureAuth: boolean;
  timeoutMs: number;
  help: boolean;
}

function parseTarget(text: string): { host: string; port?: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s[\]]+))(?::(\d{1,5}))?$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not HOST, HOST:PORT or [IPV6]:PORT`);
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new UsageError(`port ${port} is out of range`);
  return { host: (m[1] ?? m[2])!, ...(port === undefined ? {} : { port }) };
}

/** argv -> options; throws UsageError. HOST without a port: 465 with --implicit, else 587; port 465 means implicit. */
export function parseArgs(argv: string[]): ProbeArgs {
  let target: string | undefined;
  let mode: ProbeMode | undefined;
  const a: Omit<ProbeArgs, 'host' | 'port' | 'mode'> = { json: false, insecureAuth: false, timeoutMs: 10_000, help: false };
  const value = (i: number, name: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
    return v;
  };
  const setMode = (m: ProbeMode) => {
    if (mode && mode !== m) throw new UsageError('give only one of --starttls, --implicit, --plain');
    mode = m;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '-h':
      case '--help':
        a.help = true;
        break;
      case '--starttls':
        setMode('starttls');
        break;
      case '--implicit':
        setMode('implicit');
        break;
      case '--plain':
        setMode('plain');
        break;
      case '--json':
        a.json = true;
        break;
      case '--servername':
        a.servername = value(++i, arg);
        break;
      case '--ca':
        a.ca = value(++i, arg);
        break;
      case '--auth':
        a.authUser = value(++i, arg);
        break;
      case '--insecure-auth':
        a.insecureAuth = true;
        break;
      case '--timeout': {
        const v = Number(value(++i, arg));
        if (!Number.isInteger(v) || v < 100 || v > 600_000) throw new UsageError('--timeout is milliseconds, 100 to 600000');
        a.timeoutMs = v;
        break;
      }
      default:
        if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
        if (target !== undefined) throw new UsageError(`one HOST only (got "${target}" and "${arg}")`);
        target = arg;
    }
  }
  if (a.help) return { ...a, host: '', port: 0, mode: 'starttls' };
  if (target === undefined) throw new UsageError('HOST is missing');
  if (a.insecureAuth && a.authUser === undefined) throw new UsageError('--insecure-auth only applies to --auth USER');
  const t = parseTarget(target);
  const m = mode ?? (t.port === 465 ? 'implicit' : 'starttls');
  return { ...a, host: t.host, port: t.port ?? (m === 'implicit' ? 465 : 587), mode: m };
}

/** Read a password from the terminal without echoing it. */
function promptPassword(io: ProbeCliIo, user: string): Promise<string> {
  const stdin = io.stdin;
  return new Promise((resolve, reject) => {
    io.stderr.write(`password for ${user}: `);
    let text = '';
    stdin.setRawMode(true);
    stdin.resume();
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      io.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(new UsageError('no password given'));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else if (text.length < 4096) text += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function password(io: ProbeCliIo, user: string): Promise<string> {
  const fromEnv = io.env.MAILSHIM_PROBE_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;
  if (!io.stdin.isTTY) throw new UsageError('--auth needs a password: set MAILSHIM_PROBE_PASSWORD or run on a terminal');
  return promptPassword(io, user);
}

export async function run(argv: string[], io: ProbeCliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin }): Promise<number> {
  let args: ProbeArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`mailshim probe: ${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    io.stdout.write(USAGE + '\n');
    return 0;
  }

  let ca: ProbeOptions['ca'];
  if (args.ca) {
    try {
      ca = { pem: await readFile(args.ca, 'utf8'), label: args.ca, file: args.ca };
    } catch (err) {
      io.stderr.write(`mailshim probe: cannot read --ca ${args.ca}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
      return 2;
    }
  } else ca = systemTrustStore();

  let auth: ProbeOptions['auth'];
  if (args.authUser !== undefined) {
    try {
      auth = { user: args.authUser, password: await password(io, args.authUser) };
    } catch (err) {
      io.stderr.write(`mailshim probe: ${(err as Error).message}\n`);
      return 2;
    }
  }

  try {
    const report = await probe({
      host: args.host,
      port: args.port,
      mode: args.mode,
      ...(args.servername ? { servername: args.servername } : {}),
      ca,
      timeoutMs: args.timeoutMs,
      ...(auth ? { auth } : {}),
      ...(args.insecureAuth ? { insecureAuth: true } : {}),
    });
    io.stdout.write(args.json ? JSON.stringify(report, null, 2) + '\n' : renderText(report));
    return 0;
  } catch (err) {
    if (!(err instanceof UnreachableError)) throw err;
    io.stderr.write(`mailshim probe: cannot reach ${args.host}:${args.port}: ${err.message}\n`);
    if (args.json) io.stdout.write(JSON.stringify({ target: { host: args.host, port: args.port, mode: args.mode }, reachable: false, error: err.message }, null, 2) + '\n');
    return 2;
  }
}
