// Shared helpers for the benchmarks: child processes (always stopped by PID), free ports, readiness
// checks, the peers (smtp-sink, the bare pipe, mailshim, HAProxy), RSS readings and table printing.
// Plain ESM JavaScript so `node bench/*.mjs` runs without a build step of its own.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(BENCH_DIR, '..');
export const MAILSHIM_MAIN = path.join(ROOT, 'dist', 'main.js');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- child processes ------------------------------------------------------------------------------

const children = new Set();

/** Kill every child this process started (by PID), also on Ctrl-C and on a crash. */
function killAll() {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/**
 * Start a long-running child. Output is kept (bounded) for error messages. `nofile` raises the soft
 * open-files limit to that number (or the hard limit) for the child, via the shell's ulimit + exec, so the
 * PID stays the program's own.
 */
export function startChild(name, cmd, args, opts = {}) {
  let file = cmd;
  let argv = args;
  if (opts.nofile) {
    file = 'sh';
    argv = ['-c', `ulimit -n ${opts.nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'sh', cmd, ...args];
  }
  const proc = spawn(file, argv, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let output = '';
  const keep = (d) => {
    output += d.toString();
    if (output.length > 64 * 1024) output = output.slice(-32 * 1024);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exitP = new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      children.delete(proc);
      resolve(exited);
    }),
  );
  return {
    name,
    proc,
    pid: proc.pid,
    output: () => output,
    exited: () => exited,
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (exited) return exited;
      try {
        process.kill(proc.pid, signal);
      } catch {
        /* gone */
      }
      const t = setTimeout(() => {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, graceMs);
      const r = await exitP;
      clearTimeout(t);
      return r;
    },
  };
}

/** Run a program to completion, bounded in time. Resolves { code, signal, ms, output, timedOut }. */
export function runBounded(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let output = '';
    const keep = (d) => {
      output += d.toString();
      if (output.length > 16 * 1024) output = output.slice(-8 * 1024);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    proc.on('exit', (code, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      children.delete(proc);
      resolve({ code, signal, ms, output, timedOut });
    });
  });
}

export function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// --- ports and readiness -------------------------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Wait until something on the port sends an SMTP 220 line (plain or implicit TLS). */
export async function waitForGreeting(port, { tls: useTls = false, timeoutMs = 15000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child?.exited()) throw new Error(`${child.name} exited early (${JSON.stringify(child.exited())}): ${child.output().slice(-2000)}`);
    try {
      const line = await greetOnce(port, useTls);
      if (line.startsWith('220')) return line;
      last = line;
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  throw new Error(`no SMTP greeting on 127.0.0.1:${port} within ${timeoutMs} ms (last: ${last})${child ? `; ${child.name} said: ${child.output().slice(-2000)}` : ''}`);
}

function greetOnce(port, useTls) {
  return new Promise((resolve, reject) => {
    const sock = useTls ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('timeout'));
    }, 2000);
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const i = buf.indexOf('\n');
      if (i >= 0) {
        clearTimeout(timer);
        sock.end('QUIT\r\n');
        sock.on('error', () => {});
        resolve(buf.slice(0, i).trim());
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// --- the things measured -------------------------------------------------------------------------

export function tmpDir(prefix = 'mailshim-bench-') {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Postfix's smtp-sink (throws messages away). As root it must drop privileges with -u. */
export async function startSmtpSink(port, { maxConnections = 1024 } = {}) {
  const args = [];
  if (process.getuid?.() === 0) args.push('-u', 'nobody');
  args.push('-m', String(maxConnections), `127.0.0.1:${port}`, '4096');
  const c = startChild('smtp-sink', which('smtp-sink') ?? '/usr/sbin/smtp-sink', args, { nofile: maxConnections + 64 });
  await waitForGreeting(port, { child: c });
  return c;
}

/** bench/greeter.mjs: 220 on connect, 221 to QUIT; implicit TLS when `tlsFiles` is given. */
export async function startGreeter(port, { tls: tlsFiles, nofile = 20000 } = {}) {
  const args = [path.join(BENCH_DIR, 'greeter.mjs'), String(port)];
  if (tlsFiles) args.push(tlsFiles.cert, tlsFiles.key);
  const c = startChild(tlsFiles ? 'tls-greeter' : 'greeter', process.execPath, args, { nofile });
  await waitForGreeting(port, { child: c, tls: Boolean(tlsFiles) });
  return c;
}

/** The bare Node pipe proxy (bench/pipe-proxy.mjs). */
export async function startPipe(port, targetPort) {
  const c = startChild('pipe', process.execPath, [path.join(BENCH_DIR, 'pipe-proxy.mjs'), String(port), String(targetPort)], { nofile: 20000 });
  await waitForGreeting(port, { child: c });
  return c;
}

/**
 * mailshim with a generated config: passthrough, a few EHLO rules, log level warn, limits high enough
 * for the benchmarks. `tls: { cert, key }` makes it an implicit-TLS listener.
 */
export async function startMailshim(port, upstreamPort, { dir, tls: tlsFiles, nodeArgs = [], logLevel = 'warn', name = 'mailshim', main = MAILSHIM_MAIN } = {}) {
  const cfgFile = path.join(dir, `mailshim-${port}.yaml`);
  const tlsBlock = tlsFiles ? `\n    tls: { mode: implicit, cert: ${tlsFiles.cert}, key: ${tlsFiles.key} }` : '';
  writeFileSync(
    cfgFile,
    `# generated by bench/lib.mjs
listeners:
  - name: bench
    listen: 127.0.0.1:${port}
    hostname: mailshim.bench.test
    upstream: sink${tlsBlock}
    ehlo:
      - remove: CHUNKING
      - remove-auth: CRAM-MD5
      - add-auth-equals: true
upstreams:
  sink: { host: 127.0.0.1, port: ${upstreamPort}, ehloName: mailshim.bench.test }
limits: { maxConnections: 100000, maxPerClient: 100000 }
shutdownTimeout: 2s
log: { level: ${logLevel} }
`,
  );
  const c = startChild(name, process.execPath, [...nodeArgs, main, 'run', '--config', cfgFile], { nofile: 20000, cwd: dir });
  await waitForGreeting(port, { child: c, tls: Boolean(tlsFiles) });
  return c;
}

/** HAProxy in `mode tcp` (optionally terminating TLS with `pem`), one thread like the Node proxies. */
export async function startHaproxy(port, targetPort, { dir, pem, maxconn = 9000 } = {}) {
  const cfgFile = path.join(dir, `haproxy-${port}.cfg`);
  writeFileSync(
    cfgFile,
    `# generated by bench/lib.mjs
global
  maxconn ${maxconn}
  nbthread 1
defaults
  mode tcp
  maxconn ${maxconn}
  timeout connect 5s
  timeout client 10m
  timeout server 10m
frontend bench
  bind 127.0.0.1:${port}${pem ? ` ssl crt ${pem}` : ''}
  default_backend sink
backend sink
  server sink 127.0.0.1:${targetPort}
`,
  );
  const c = startChild('haproxy', which('haproxy'), ['-f', cfgFile, '-db'], { nofile: 2 * maxconn + 100 });
  await waitForGreeting(port, { child: c, tls: Boolean(pem) });
  return c;
}

/** Throwaway RSA-2048 self-signed certificate (openssl CLI). Returns { cert, key, pem } paths. */
export function makeCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=bench.test', '-addext', 'subjectAltName=DNS:bench.test'],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  const pem = path.join(dir, 'cert+key.pem');
  writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return { cert, key, pem };
}

// --- measurements --------------------------------------------------------------------------------

/** Resident set size and its peak (kB) of a process, from /proc. */
export function rss(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKb: get('VmRSS'), hwmKb: get('VmHWM') };
}

let clockTicks;
/** CPU time (user + system, all threads) a process has used so far, in microseconds, from /proc/PID/stat. */
export function cpuMicros(pid) {
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name start at field 3 (state); utime and stime are 14 and 15.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / clockTicks;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Left-aligned first column, right-aligned others. */
export function table(headers, rows) {
  const all = [headers, ...rows].map((r) => r.map((c) => String(c)));
  const w = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const fmt = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [fmt(all[0]), w.map((n) => '-'.repeat(n)).join('  '), ...all.slice(1).map(fmt)].join('\n');
}

export const ratio = (a, b) => (a > 0 && b > 0 ? (a / b).toFixed(2) + 'x' : '-');

export function loadAverage() {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ');
}

/** Parse `--only a,b`, `--runs N`, `--scale F` style flags. */
export function parseFlags(argv) {
  const flags = { only: null, runs: 3, scale: 1, profile: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a.startsWith('--only')) flags.only = val().split(',').map((s) => s.trim());
    else if (a.startsWith('--runs')) flags.runs = Math.max(1, Math.min(9, Number(val()) | 0));
    else if (a.startsWith('--scale')) flags.scale = Math.max(0.01, Math.min(10, Number(val())));
    else if (a === '--profile') flags.profile = true;
    else if (a === '--help' || a === '-h') flags.help = true;
    else throw new Error(`unknown flag ${a}`);
  }
  return flags;
}

export { existsSync };
