// The process as an operator runs it: start-up failures, signals during start-up and drain, reloads of
// the key log. `node dist/main.js run` as a child process (dist/ built by the vitest global setup).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './harness/ports.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';

const MAIN = join(resolve(import.meta.dirname, '../..'), 'dist/main.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function start(config: string): Proc {
  const child = spawn(process.execPath, [MAIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

describe('mailshim run: lifecycle', () => {
  let dir: string;
  let up: FakeUpstream;
  const procs: Proc[] = [];
  const track = (p: Proc) => (procs.push(p), p);

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build`);
    dir = await mkdtemp(join(tmpdir(), 'mailshim-life-'));
    up = await startFakeUpstream();
  });
  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await up.stop();
  });

  const yaml = (listeners: string, extra = '') => `listeners:
${listeners}
upstreams:
  up: { host: 127.0.0.1, port: ${up.port} }
log: { level: info }
shutdownTimeout: 1s
${extra}`;

  it('a second listener that cannot bind stops the whole process: exit 1 and the first port is free again', async () => {
    const [a, taken] = [await freePort(), await freePort()];
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(taken, '127.0.0.1', () => r()));
    try {
      const file = join(dir, 'bind.yaml');
      await writeFile(file, yaml(`  - { name: a, listen: 127.0.0.1:${a}, upstream: up }\n  - { name: b, listen: 127.0.0.1:${taken}, upstream: up }`));
      const p = track(start(file));
      expect(await p.exited).toBe(1);
      expect(p.out()).toMatch(/EADDRINUSE/);
      expect(await canConnect(a)).toBe(false);
    } finally {
      blocker.close();
    }
  });

  it('SIGTERM ends the process after the drain even with a client stuck before its TLS handshake', async () => {
    const port = await freePort();
    const file = join(dir, 'implicit.yaml');
    await writeFile(file, yaml(`  - { name: s, listen: 127.0.0.1:${port}, upstream: up, tls: { mode: implicit } }`));
    const p = track(start(file));
    await waitFor('listening', () => /"listening"/.test(p.out()));
    const idle = net.connect({ host: '127.0.0.1', port }); // never sends a ClientHello
    idle.on('error', () => {});
    await new Promise((r) => idle.once('connect', r));
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8_000);
    idle.destroy();
  });

  it('a SIGHUP while it is still starting (generating a certificate) does not kill it', async () => {
    const port = await freePort();
    const file = join(dir, 'hup.yaml');
    await writeFile(file, yaml(`  - { name: s, listen: 127.0.0.1:${port}, upstream: up, tls: { mode: starttls } }`));
    const p = track(start(file));
    // Once mailshim has read its config (it warns about the generated certificate), before it listens.
    await waitFor('start-up', () => /self-signed|"msg":"/.test(p.out()));
    p.child.kill('SIGHUP');
    await waitFor('listening', () => /"listening"/.test(p.out()) || p.child.exitCode !== null || p.child.signalCode !== null);
    expect(p.child.signalCode).toBeNull();
    expect(p.child.exitCode).toBeNull();
    expect(await canConnect(port)).toBe(true);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it('SIGHUP can switch the TLS key log off: no more secrets are written', async () => {
    const port = await freePort();
    const keylog = join(dir, 'keys.log');
    const file = join(dir, 'keylog.yaml');
    const listener = `  - { name: s, listen: 127.0.0.1:${port}, upstream: up, tls: { mode: implicit } }`;
    await writeFile(file, yaml(listener, `capture: { keylog: ${keylog} }`));
    const p = track(start(file));
    await waitFor('listening', () => /"listening"/.test(p.out()));
    const session = async () => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      s.on('error', () => {});
      await new Promise((r) => s.once('secureConnect', r));
      await new Promise((r) => s.once('data', r)); // the greeting
      s.end('QUIT\r\n');
      await new Promise((r) => s.once('close', r));
    };
    await session();
    await waitFor('key lines', () => existsSync(keylog));
    await sleep(200);
    const before = (await readFile(keylog, 'utf8')).length;
    expect(before).toBeGreaterThan(0);
    await writeFile(file, yaml(listener));
    p.child.kill('SIGHUP');
    await waitFor('reload', () => /configuration reloaded/.test(p.out()));
    await session();
    await sleep(200);
    expect((await readFile(keylog, 'utf8')).length).toBe(before);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it('an implicit-TLS listener refuses a client by closing, never with plaintext it cannot read', async () => {
    const port = await freePort();
    const file = join(dir, 'refuse.yaml');
    await writeFile(file, yaml(`  - { name: s, listen: 127.0.0.1:${port}, upstream: up, tls: { mode: implicit }, clients: { allow: [192.0.2.0/24] } }`));
    const p = track(start(file));
    await waitFor('listening', () => /"listening"/.test(p.out()));
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
    await new Promise((r) => s.once('close', r));
    expect(Buffer.concat(got).length).toBe(0);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });
});
