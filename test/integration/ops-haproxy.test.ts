// Real peer: HAProxy (Debian package) with `send-proxy-v2`, round robin in front of two mailshim
// instances. The client connects from 127.0.0.2 (HAProxy itself is 127.0.0.1): logs and capture files
// show 127.0.0.2, and the allowlist, which does not contain HAProxy's address, applies to the client.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pino from 'pino';
import { configSchema } from '../../src/config/schema.js';
import { App } from '../../src/app.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { Dialogue } from './harness/dialogue.js';
import { freePorts } from './harness/ports.js';

interface Instance {
  app: App;
  logs: Record<string, unknown>[];
  captureDir: string;
}

async function startInstance(name: string, port: number, upPort: number, dir: string): Promise<Instance> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const captureDir = path.join(dir, name);
  const cfg = configSchema.parse({
    listeners: [
      {
        name,
        listen: `127.0.0.1:${port}`,
        upstream: 'up',
        proxyProtocol: true,
        trustedProxies: ['127.0.0.1/32'],
        clients: { allow: ['127.0.0.2/32'] },
      },
    ],
    upstreams: { up: { host: '127.0.0.1', port: upPort } },
    capture: { dir: captureDir },
  });
  const app = await App.start(cfg, { logger: pino({ level: 'info' }, sink) });
  return { app, logs, captureDir };
}

function connectFrom(localAddress: string, port: number): Promise<Dialogue> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => resolve(new Dialogue(s)));
    s.once('error', reject);
  });
}

async function waitFor<T>(what: string, get: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('HAProxy send-proxy-v2 in front of two mailshim instances', () => {
  let up: FakeUpstream;
  let dir: string;
  let haproxy: ChildProcess | undefined;
  let haproxyOut = '';
  let front: number;
  const instances: Instance[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-haproxy-'));
    up = await startFakeUpstream();
    const [p1, p2, p3] = await freePorts(3);
    front = p3;
    instances.push(await startInstance('m1', p1, up.port, dir), await startInstance('m2', p2, up.port, dir));
    const cfgFile = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(
      cfgFile,
      [
        'global',
        '  maxconn 200',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 30s',
        '  timeout server 30s',
        'frontend smtp',
        `  bind 127.0.0.1:${front}`,
        '  default_backend mailshim',
        'backend mailshim',
        '  balance roundrobin',
        `  server m1 127.0.0.1:${p1} send-proxy-v2`,
        `  server m2 127.0.0.1:${p2} send-proxy-v2`,
        '',
      ].join('\n'),
    );
    haproxy = spawn('haproxy', ['-f', cfgFile, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout!.on('data', (d: Buffer) => (haproxyOut += d.toString()));
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyOut += d.toString()));
    // Ready when a whole session goes through; then let it end, so the tests count only their own.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const d = await connectFrom('127.0.0.2', front).catch(() => undefined);
      if (d) {
        await d.greeted();
        d.send('QUIT');
        await d.expect(/^221 /);
        await d.closed();
        break;
      }
      if (Date.now() > deadline || haproxy.exitCode !== null) throw new Error(`haproxy did not start: ${haproxyOut}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await waitFor('the probe session to end', () => (instances.some((i) => i.logs.some((l) => l.msg === 'session end')) ? true : undefined));
  }, 30_000);

  afterAll(async () => {
    if (haproxy && haproxy.exitCode === null) {
      haproxy.kill('SIGTERM');
      await new Promise((r) => haproxy!.once('exit', r));
    }
    for (const i of instances) await i.app.stop(500);
    await up?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('spreads sessions over both instances; each sees the original client address', async () => {
    // The readiness probe above reached the backends through HAProxy: count from here on.
    const before = instances.map((i) => i.logs.filter((l) => l.msg === 'session start').length);
    const endsBefore = instances.map((i) => i.logs.filter((l) => l.msg === 'session end').length);
    for (let n = 0; n < 4; n++) {
      const d = await connectFrom('127.0.0.2', front);
      await d.ehloDone();
      d.send('MAIL FROM:<a@example.org>');
      await d.expect(/^250 /);
      d.send('QUIT');
      await d.expect(/^221 /);
      await d.closed();
    }
    const starts = await waitFor('4 session starts', () => {
      const s = instances.map((i, k) => i.logs.filter((l) => l.msg === 'session start').slice(before[k]));
      return s[0].length + s[1].length >= 4 ? s : undefined;
    });
    expect(starts[0].length).toBe(2);
    expect(starts[1].length).toBe(2);
    for (const s of [...starts[0], ...starts[1]]) {
      expect(s.client).toBe('127.0.0.2');
      expect(s.proxiedFrom).toBe('127.0.0.1');
    }
    const ends = await waitFor('4 session ends', () => {
      const e = instances.flatMap((i, k) => i.logs.filter((l) => l.msg === 'session end').slice(endsBefore[k]));
      return e.length >= 4 ? e : undefined;
    });
    expect(ends.length).toBe(4);
    for (const e of ends) expect(String(e.client)).toMatch(/^127\.0\.0\.2:/);

    // Capture files carry the original address as well (the 4 sessions and the readiness probe).
    const records: Record<string, unknown>[] = [];
    for (const i of instances) {
      await i.app.capture?.flush();
      for (const f of fs.readdirSync(i.captureDir).filter((n) => n.endsWith('.jsonl'))) {
        records.push(JSON.parse(fs.readFileSync(path.join(i.captureDir, f), 'utf8').split('\n')[0]) as Record<string, unknown>);
      }
    }
    expect(records.length).toBe(5);
    for (const r of records) expect(r).toMatchObject({ type: 'session.start', client: '127.0.0.2', proxiedFrom: '127.0.0.1' });
  });

  it('applies the allowlist to the original client, not to HAProxy', async () => {
    for (let n = 0; n < 2; n++) {
      const d = await connectFrom('127.0.0.3', front);
      await d.expect(/^554 5\.7\.1 /);
      await d.closed();
    }
    const refusals = instances.flatMap((i) => i.logs.filter((l) => l.msg === 'connection refused' && l.client === '127.0.0.3'));
    expect(refusals.length).toBe(2);
  });

  it('refuses a direct connection that does not come from a trusted proxy, even with a forged header', async () => {
    const port = instances[0].app.listeners[0].address().port;
    const d = await connectFrom('127.0.0.2', port);
    d.sendRaw('PROXY TCP4 127.0.0.2 127.0.0.1 1000 25\r\n');
    await d.expect(/^554 5\.7\.1 /);
    await d.closed();
  });
});
