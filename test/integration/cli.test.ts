// The built CLI as a user runs it: `node dist/main.js ...` as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, swaks } from './harness/peers.js';
import { freePort } from './harness/ports.js';
import { startSmtpSink, type SmtpSinkInstance } from './harness/smtp-sink.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/main.js');

function canConnect(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

describe('mailshim CLI', () => {
  let dir: string;
  let sink: SmtpSinkInstance;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    // dist/ is built once for the whole run by test/global-setup.ts; rebuilding here would rewrite files
    // under other test files that run the CLI at the same time.
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (vitest's global setup does)`);
    [dir, sink] = await Promise.all([mkdtemp(join(tmpdir(), 'mailshim-cli-')), startSmtpSink()]);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await sink?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('--help exits 0 and lists the commands', async () => {
    const r = await run('node', [MAIN, '--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['run', 'check-config', 'demo']) expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\s`, 'm'));
  });

  it('run --config bad.yaml exits non-zero naming file:line:col, and does not listen', async () => {
    const port = await freePort();
    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      ['listeners:', '  - name: cli', `    listen: 127.0.0.1:${port}`, '    upstream: mta', '    earlyTalker: sometimes', 'upstreams:', '  mta:', '    host: 127.0.0.1', '    port: 25', ''].join('\n'),
    );
    const r = await run('node', [MAIN, 'run', '--config', bad], { timeoutMs: 10_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${bad}:5:18`);
    expect(r.stderr).toMatch(/earlyTalker/);
    expect(await canConnect(port)).toBe(false);
  });

  it('run --config good.yaml relays a swaks message, and SIGTERM makes it exit 0', async () => {
    const port = await freePort();
    const good = join(dir, 'good.yaml');
    await writeFile(
      good,
      [
        'listeners:',
        '  - name: cli',
        `    listen: 127.0.0.1:${port}`,
        '    upstream: sink',
        '    ehlo:',
        '      - remove: SIZE',
        'upstreams:',
        '  sink:',
        '    host: 127.0.0.1',
        `    port: ${sink.port}`,
        'log:',
        '  level: info',
        '',
      ].join('\n'),
    );
    const child = spawn('node', [MAIN, 'run', '--config', good], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));

    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`mailshim did not listen: ${stdout}${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await swaks(['--server', `127.0.0.1:${port}`, '--from', 'a@example.org', '--to', 'b@example.test', '--header', 'Subject: via the CLI']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/^<-\s+250[- ]SIZE/m);
    const [m] = await sink.waitForMessages(1);
    expect(m.content).toContain('Subject: via the CLI');

    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 8000))]);
    expect(code, stdout + stderr).toBe(0);
    // Not a terminal: JSON lines, one at the end of the session with its result.
    const ends = stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; messages?: number; result?: string })
      .filter((l) => l.msg === 'session end');
    // The readiness probe above was a session too (it connected and hung up at once).
    expect(ends.map((e) => [e.result, e.messages])).toEqual([
      ['client-closed', 0],
      ['ok', 1],
    ]);
  });
});
