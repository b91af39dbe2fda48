// The built CLI as an operator runs it (`node dist/main.js run --config FILE`, a child process):
// SIGTERM drains (open sessions finish, new connections are refused, stragglers get 421 4.3.2 at
// shutdownTimeout), SIGHUP reloads (new sessions see a changed rewrite rule, open ones keep the old; a
// broken file is rejected and the old config stays).
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { connect } from './harness/dialogue.js';
import { freePort } from './harness/ports.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
// A private build (per test process, removed afterwards), so this file never races another test run
// rebuilding the shared dist/. Inside node_modules/ so the build still resolves the package's dependencies.
const BUILD = path.join(ROOT, `node_modules/.cache/mailshim-ops-test-${process.pid}`);
const OUT = path.join(BUILD, 'dist');
const MAIN = path.join(OUT, 'main.js');

class Child {
  lines: string[] = [];
  exited: Promise<number | null>;
  constructor(readonly proc: ChildProcess) {
    let buf = '';
    const take = (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      this.lines.push(...parts);
    };
    proc.stdout!.on('data', take);
    proc.stderr!.on('data', take);
    this.exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  }
  /** Resolves with the first log line matching `re` at or after line `from`. */
  async waitFor(re: RegExp, from = 0, timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l, idx) => idx >= from && re.test(l));
      if (i >= 0) return i;
      if (Date.now() > deadline) throw new Error(`no log line matching ${re} within ${timeoutMs} ms; got:\n${this.lines.join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

function config(port: number, upPort: number, rule: string, shutdownTimeout = '30s'): string {
  return [
    'listeners:',
    '  - name: main',
    `    listen: 127.0.0.1:${port}`,
    '    upstream: up',
    '    ehlo:',
    `      - remove: ${rule}`,
    'upstreams:',
    `  up: { host: 127.0.0.1, port: ${upPort} }`,
    'log: { level: info }',
    `shutdownTimeout: ${shutdownTimeout}`,
    '',
  ].join('\n');
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('mailshim run: drain and reload', () => {
  let up: FakeUpstream;
  let dir: string;
  let child: Child | undefined;

  beforeAll(async () => {
    await promisify(execFile)('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', OUT], { cwd: ROOT, timeout: 110_000 }).catch((err: { stdout?: string }) => {
      // Type errors elsewhere still emit JavaScript; only a missing entry point is fatal here.
      if (!fs.existsSync(MAIN)) throw new Error(`build failed: ${err.stdout}`);
    });
    up = await startFakeUpstream({ ehlo: ['PIPELINING', '8BITMIME', 'SIZE 1000000'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-ops-'));
  }, 120_000);

  afterEach(async () => {
    if (child && child.proc.exitCode === null) {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
    child = undefined;
  });

  afterAll(async () => {
    await up?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(BUILD, { recursive: true, force: true });
  });

  async function start(cfgText: string): Promise<Child> {
    const file = path.join(dir, 'mailshim.yaml');
    fs.writeFileSync(file, cfgText);
    const c = new Child(spawn(process.execPath, [MAIN, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    child = c;
    await c.waitFor(/"msg":"listening"/);
    return c;
  }

  it('SIGTERM: the session in progress finishes, a new connection is refused, an idle one gets 421 4.3.2', async () => {
    const port = await freePort();
    const c = await start(config(port, up.port, 'SIZE', '2s'));
    const busy = await connect(port);
    await busy.ehloDone();
    busy.send('MAIL FROM:<a@example.org>');
    await busy.expect(/^250 /);
    const idle = await connect(port);
    await idle.greeted();

    c.proc.kill('SIGTERM');
    await c.waitFor(/stopping: draining sessions/);
    expect(await refused(port)).toBe(true);

    // The transaction in progress completes normally during the drain.
    busy.send('RCPT TO:<b@example.org>');
    await busy.expect(/^250 /);
    busy.send('DATA');
    await busy.expect(/^354 /);
    busy.sendRaw('Subject: drain\r\n\r\nstill delivered\r\n.\r\n');
    await busy.expect(/^250 /);
    busy.send('QUIT');
    await busy.expect(/^221 /);
    expect(up.allReceived()).toContain('still delivered');

    // The idle one is told to come back later once shutdownTimeout has passed.
    const t0 = Date.now();
    await idle.expect(/^421 4\.3\.2 /, 5000);
    expect(Date.now() - t0).toBeGreaterThan(500);
    await idle.closed();
    expect(await c.exited).toBe(0);
  });

  it('SIGHUP: a changed rewrite rule applies to new sessions only; a broken config keeps the old one', async () => {
    const port = await freePort();
    const c = await start(config(port, up.port, '8BITMIME'));
    const file = path.join(dir, 'mailshim.yaml');

    const old = await connect(port);
    const first = await old.ehloDone();
    expect(first.raw).not.toContain('8BITMIME');
    expect(first.raw).toContain('PIPELINING');

    fs.writeFileSync(file, config(port, up.port, 'PIPELINING'));
    let mark = c.lines.length;
    c.proc.kill('SIGHUP');
    await c.waitFor(/configuration reloaded/, mark);

    const fresh = await connect(port);
    const second = await fresh.ehloDone();
    expect(second.raw).toContain('8BITMIME');
    expect(second.raw).not.toContain('PIPELINING');
    // The session opened before the reload still runs on the old rules.
    old.send('EHLO again.example.org');
    const again = await old.expect(/^250[ -]/);
    expect(again.raw).not.toContain('8BITMIME');
    expect(again.raw).toContain('PIPELINING');

    fs.writeFileSync(file, 'listeners: [ { name: main, listen: 127.0.0.1:1, upstream: nowhere } ]\nupstreams: {}\n');
    mark = c.lines.length;
    c.proc.kill('SIGHUP');
    await c.waitFor(/reload rejected/, mark);
    const third = await connect(port);
    const after = await third.ehloDone();
    expect(after.raw).toContain('8BITMIME');
    expect(after.raw).not.toContain('PIPELINING');

    for (const d of [old, fresh, third]) {
      d.send('QUIT');
      await d.expect(/^221 /);
    }
    c.proc.kill('SIGTERM');
    expect(await c.exited).toBe(0);
  });
});
