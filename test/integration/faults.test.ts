// Issue 2 scope item 11: what the client sees when either side fails, over real loopback sockets.
// The upstream is the scripted fake (a real MTA cannot be told to drop mid-DATA on cue).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Dialogue } from './harness/dialogue.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';
import { REFUSED_PORT } from './harness/ports.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(upstreamPort: number, listener: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'faults', hostname: 'proxy.test', upstream: 'up', ...listener }],
    upstreams: { up: { host: '127.0.0.1', port: upstreamPort } },
  };
}

async function intoData(c: Dialogue): Promise<void> {
  await c.ehloDone();
  c.send('MAIL FROM:<a@example.org>');
  await c.expect(/^250 /);
  c.send('RCPT TO:<b@example.test>');
  await c.expect(/^250 /);
  c.send('DATA');
  await c.expect(/^354 /);
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const line = (i: number) => `line ${String(i).padStart(5, '0')} of a body that goes on and on\r\n`;
const body = (lines: number) => Array.from({ length: lines }, (_, i) => line(i)).join('');

describe('faults', () => {
  let dropping: FakeUpstream;
  let normal: FakeUpstream;
  let silentRcpt: FakeUpstream;
  let viaDropping: ProxyHandle;
  let viaNormal: ProxyHandle;
  let viaSilent: ProxyHandle;
  let unreachable: ProxyHandle;
  let quitter: FakeUpstream;
  let garbler: FakeUpstream;
  let refuser: FakeUpstream;
  let viaQuitter: ProxyHandle;
  let viaGarbler: ProxyHandle;
  let viaRefuser: ProxyHandle;
  let slowDot: FakeUpstream;
  let viaSlowDot: ProxyHandle;

  beforeAll(async () => {
    const closedPort = REFUSED_PORT;
    [dropping, normal, silentRcpt] = await Promise.all([
      startFakeUpstream({ dropAfterBodyBytes: 2000 }),
      startFakeUpstream(),
      startFakeUpstream({ onCommand: (l) => (l.startsWith('RCPT') ? null : undefined) }),
    ]);
    [quitter, garbler, refuser] = await Promise.all([
      // Takes the whole message, then hangs up instead of answering the final dot.
      startFakeUpstream({
        onMessage: (_b, conn) => {
          conn.destroy();
          return null;
        },
        onCommand: (l, conn) => {
          if (l === 'NOOP hangup') {
            conn.destroy();
            return null;
          }
          return undefined;
        },
      }),
      startFakeUpstream({ onCommand: (l) => (l.startsWith('RCPT') ? 'this is not an SMTP reply' : undefined) }),
      startFakeUpstream({ greeting: '554 5.3.2 fake.test No SMTP service here' }),
    ]);
    slowDot = await startFakeUpstream({
      onMessage: (_body, conn) => {
        setTimeout(() => conn.write('250 2.0.0 Ok: queued late\r\n'), 1500);
        return null;
      },
    });
    viaSlowDot = await startProxy(config(slowDot.port, { timeouts: { command: '1s' } }));
    [viaQuitter, viaGarbler, viaRefuser] = await Promise.all([
      startProxy(config(quitter.port)),
      startProxy(config(garbler.port)),
      startProxy(config(refuser.port)),
    ]);
    [viaDropping, viaNormal, viaSilent, unreachable] = await Promise.all([
      startProxy(config(dropping.port)),
      startProxy(config(normal.port, { timeouts: { command: '1s' } })),
      startProxy(config(silentRcpt.port, { timeouts: { command: '1s' } })),
      startProxy(config(closedPort)),
    ]);
  });

  afterAll(async () => {
    await Promise.all([viaDropping, viaNormal, viaSilent, unreachable, viaQuitter, viaGarbler, viaRefuser].map((p) => p?.stop()));
    await viaSlowDot?.stop();
    await Promise.all([dropping, normal, silentRcpt, quitter, garbler, refuser, slowDot].map((u) => u?.stop()));
  });

  it('upstream unreachable: the client gets 421 4.4.1 and the connection closes', async () => {
    const c = await connect(unreachable.port);
    const r = await c.expect(/^421 4\.4\.1 /);
    expect(r.lines[0]).toContain('proxy.test');
    await c.closed();
    const [summary] = await unreachable.waitForSessionEnd(1);
    expect(summary.result).toBe('upstream-unreachable');
  });

  it('upstream drops during DATA: the client gets 451 4.4.2 after its final dot, never 250', async () => {
    const c = await connect(viaDropping.port);
    await intoData(c);
    c.sendRaw(body(100)); // ~5 KB, more than the 2000 bytes after which the upstream hangs up
    const up = (await dropping.waitForConnections(1))[0];
    await up.closedPromise;
    await sleep(50);
    expect(c.queued).toBe(0); // nothing is said before the client's final dot
    c.sendRaw(body(10) + '.\r\n');
    const r = await c.reply();
    expect(r.code).toBe(451);
    expect(r.raw).toMatch(/^451 4\.4\.2 /);
    await c.closed();
    expect(c.received).not.toMatch(/^250 2\.0\.0/m);
    expect(up.messages).toHaveLength(0);
  });

  it('client drops during DATA: the upstream never gets the final dot and its connection is closed', async () => {
    const before = normal.connections.length;
    const c = await connect(viaNormal.port);
    await intoData(c);
    const up = (await normal.waitForConnections(before + 1))[before];
    c.sendRaw(body(50));
    await until(() => up.bodyBytes >= body(50).length, 'the body to reach the upstream');
    c.destroy();
    await up.closedPromise;
    const got = Buffer.concat(up.reads).toString('latin1');
    const bodyStart = got.indexOf('DATA\r\n') + 'DATA\r\n'.length;
    expect(got.slice(bodyStart)).toBe(body(50)); // exactly what was sent: no dot, no QUIT after it
    expect(up.messages).toHaveLength(0);
  });

  it('idle client: 421 4.4.2 after timeouts.command (1 s), then close', async () => {
    const c = await connect(viaNormal.port);
    await c.greeted();
    const t0 = Date.now();
    const r = await c.reply(4000);
    const waited = Date.now() - t0;
    expect(r.raw).toMatch(/^421 4\.4\.2 proxy\.test /);
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(3000);
    await c.closed();
  });

  it('a client waiting for the reply to its final dot is not idle: a late 250 still arrives, no 421', async () => {
    // RFC 5321 4.5.3.2.6 gives the upstream 10 minutes for this reply, longer than the 5-minute command
    // timeout: a 421 here while the upstream goes on to accept the message makes the client send it twice.
    const c = await connect(viaSlowDot.port);
    await intoData(c);
    c.sendRaw('Subject: slow\r\n\r\nbody\r\n.\r\n');
    const r = await c.reply(4000);
    expect(r.raw).toBe('250 2.0.0 Ok: queued late\r\n');
    c.send('QUIT');
    await c.expect(/^221 /);
  });

  it('upstream sends an unsolicited 421: the client gets it and the session ends', async () => {
    const before = normal.connections.length;
    const c = await connect(viaNormal.port);
    await c.ehloDone();
    const up = (await normal.waitForConnections(before + 1))[before];
    up.write('421 4.3.2 fake.test Service shutting down\r\n');
    up.end();
    const r = await c.reply();
    expect(r.raw).toBe('421 4.3.2 fake.test Service shutting down\r\n');
    await c.closed();
  });

  it('clients that hang up at once (health checks, scanners) leave mailshim serving', async () => {
    const net = await import('node:net');
    const ended = viaNormal.ended().length;
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        new Promise<void>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port: viaNormal.port });
          // Half of them close before even the TCP handshake completes on our side.
          if (i % 2 === 0) s.destroy();
          else s.once('connect', () => s.destroy());
          s.once('close', () => resolve());
          s.once('error', () => resolve());
        }),
      ),
    );
    await viaNormal.waitForSessionEnd(ended + 15);
    const c = await connect(viaNormal.port);
    await c.ehloDone();
    c.send('QUIT');
    await c.expect(/^221 /);
  });

  it('upstream hangs up after the final dot instead of answering: 451 4.4.2, never 250', async () => {
    const c = await connect(viaQuitter.port);
    await intoData(c);
    c.sendRaw('Subject: lost\r\n\r\nbody\r\n.\r\n');
    const r = await c.reply();
    expect(r.raw).toMatch(/^451 4\.4\.2 /);
    await c.closed();
    expect(c.received).not.toMatch(/^250 2\.0\.0/m);
  });

  it('upstream hangs up while a command waits for its reply: 421 4.4.2 and close', async () => {
    const c = await connect(viaQuitter.port);
    await c.ehloDone();
    c.send('NOOP hangup');
    const r = await c.reply();
    expect(r.raw).toMatch(/^421 4\.4\.2 proxy\.test /);
    await c.closed();
  });

  it('a malformed upstream reply ends the session with a 4xx, never passing the garbage on', async () => {
    const c = await connect(viaGarbler.port);
    await c.ehloDone();
    c.send('MAIL FROM:<a@example.org>');
    await c.expect(/^250 /);
    c.send('RCPT TO:<b@example.test>');
    const r = await c.reply();
    expect(r.code).toBeGreaterThanOrEqual(400);
    expect(r.code).toBeLessThan(500);
    await c.closed();
    expect(c.received).not.toContain('this is not');
  });

  it('an upstream that greets with 554 is relayed as is and the connection closes', async () => {
    const c = await connect(viaRefuser.port);
    const r = await c.reply();
    expect(r.raw).toBe('554 5.3.2 fake.test No SMTP service here\r\n');
    await c.closed();
  });

  it('upstream never answers RCPT: the client gets a 4xx, not 250', async () => {
    // There is no config key for the upstream reply timeout (REPLY_TIMEOUT.command, 300 s); what answers
    // here after 1 s is the listener's timeouts.command.
    const c = await connect(viaSilent.port);
    await c.ehloDone();
    c.send('MAIL FROM:<a@example.org>');
    await c.expect(/^250 /);
    c.send('RCPT TO:<b@example.test>');
    const r = await c.reply(4000);
    expect(r.code).toBeGreaterThanOrEqual(400);
    expect(r.code).toBeLessThan(500);
    await c.closed();
    expect(c.received).not.toMatch(/^250 2\.1\.5/m);
  });
});
