// Line framing and command hygiene (issue 2 scope items 5, 8, 10): what a hostile or broken client sends
// is answered locally and never reaches the upstream; memory stays bounded; early talkers follow the policy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from './harness/dialogue.js';
import { startFakeUpstream, type FakeUpstream, type FakeConnection } from './harness/fake-upstream.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(upstreamPort: number, listener: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'framing', hostname: 'proxy.test', upstream: 'up', ...listener }],
    upstreams: { up: { host: '127.0.0.1', port: upstreamPort } },
  };
}

describe('framing and command hygiene', () => {
  let up: FakeUpstream;
  let slowGreeter: FakeUpstream;
  let oldMta: FakeUpstream;
  let proxy: ProxyHandle;
  let viaOldMta: ProxyHandle;
  let forwardViaOldMta: ProxyHandle;
  let waitProxy: ProxyHandle;
  let rejectProxy: ProxyHandle;

  beforeAll(async () => {
    [up, slowGreeter, oldMta] = await Promise.all([
      startFakeUpstream({
        ehlo: ['PIPELINING', 'CHUNKING', 'BINARYMIME', 'XCLIENT NAME ADDR PROTO HELO', 'XFORWARD NAME ADDR', '8BITMIME'],
        onCommand: (l) => (l === 'HELP' ? '214-2.0.0 This is a fake\r\n214-2.0.0 Topics:\r\n214 2.0.0 End of HELP info' : undefined),
      }),
      startFakeUpstream({ greetingDelayMs: 300 }),
      // An RFC 821 server: no EHLO.
      startFakeUpstream({ onCommand: (l) => (l.startsWith('EHLO') ? '502 5.5.2 Error: command not recognized' : undefined) }),
    ]);
    [proxy, viaOldMta, forwardViaOldMta, waitProxy, rejectProxy] = await Promise.all([
      startProxy(config(up.port, { greeting: 'proxy.test ESMTP mailshim' })),
      startProxy(config(oldMta.port)),
      startProxy(config(oldMta.port, { auth: { mode: 'forward', allowPlaintext: true } })),
      startProxy(config(slowGreeter.port, { earlyTalker: 'wait' })),
      startProxy(config(slowGreeter.port, { earlyTalker: 'reject' })),
    ]);
  });

  afterAll(async () => {
    await Promise.all([proxy, viaOldMta, forwardViaOldMta, waitProxy, rejectProxy].map((p) => p?.stop()));
    await Promise.all([up, slowGreeter, oldMta].map((u) => u?.stop()));
  });

  /** A session through `proxy` plus the upstream connection it opened. */
  async function session() {
    const before = up.connections.length;
    const c = await connect(proxy.port);
    const ehlo = await c.ehloDone();
    const conn: FakeConnection = (await up.waitForConnections(before + 1))[before];
    return { c, ehlo, conn };
  }

  it('the greeting: setting replaces the upstream greeting text', async () => {
    const c = await connect(proxy.port);
    await c.expect(/^220 proxy\.test ESMTP mailshim\r\n$/);
    c.send('QUIT');
    await c.closed();
  });

  it('a multi-line upstream reply reaches the client whole, line for line', async () => {
    const { c } = await session();
    c.send('HELP');
    const r = await c.reply();
    expect(r.raw).toBe('214-2.0.0 This is a fake\r\n214-2.0.0 Topics:\r\n214 2.0.0 End of HELP info\r\n');
    c.send('QUIT');
    await c.closed();
  });

  it('HELO in passthrough is relayed as HELO: an upstream without ESMTP answers it and the client gets 250', async () => {
    const c = await connect(viaOldMta.port);
    await c.greeted();
    c.send('HELO old.example.org');
    await c.expect(/^250 fake\.test Hello old\.example\.org\r\n$/);
    c.send('QUIT');
    await c.closed();
    const [conn] = oldMta.connections;
    expect(conn.commands.slice(0, 1)).toEqual(['HELO old.example.org']);
  });

  it('HELO where mailshim does AUTH itself: it asks with EHLO, falls back to HELO on 502, and the client gets 250', async () => {
    const c = await connect(forwardViaOldMta.port);
    await c.greeted();
    c.send('HELO old.example.org');
    await c.expect(/^250 fake\.test Hello old\.example\.org\r\n$/);
    c.send('QUIT');
    await c.closed();
    const conn = oldMta.connections.find((k) => k.commands[0]?.startsWith('EHLO'));
    expect(conn?.commands.slice(0, 2)).toEqual(['EHLO old.example.org', 'HELO old.example.org']);
  });

  it('a 600-octet command gets 500 5.5.2 Line too long and never reaches the upstream; the session goes on', async () => {
    const { c, conn } = await session();
    const long = 'NOOP ' + 'x'.repeat(595); // 600 octets + CRLF > 512
    c.send(long);
    await c.expect(/^500 5\.5\.2 Line too long\r\n$/);
    c.send('NOOP');
    await c.expect(/^250 2\.0\.0 Ok noop/);
    expect(conn.commands.some((l) => l.includes('xxxx'))).toBe(false);
    expect(conn.commands).toContain('NOOP');
    c.send('QUIT');
    await c.closed();
  });

  it('the limit is exact: a 512-octet command (CRLF included) passes, 513 octets is too long', async () => {
    const { c, conn } = await session();
    const fits = 'NOOP ' + 'a'.repeat(505); // 510 + CRLF = 512
    const over = 'NOOP ' + 'b'.repeat(506); // 511 + CRLF = 513
    c.send(fits);
    await c.expect(/^250 2\.0\.0 Ok noop/);
    c.send(over);
    await c.expect(/^500 5\.5\.2 Line too long/);
    expect(conn.commands).toContain(fits);
    expect(conn.commands.some((l) => l.includes('bbbb'))).toBe(false);
    c.send('QUIT');
    await c.closed();
  });

  it('a lenient device ending commands with a bare LF is understood; the upstream gets CRLF', async () => {
    const before = up.connections.length;
    const c = await connect(proxy.port);
    await c.greeted();
    c.sendRaw('EHLO lf.example.org\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.test>\n');
    await c.expect(/^250-fake\.test Hello lf\.example\.org/);
    await c.expect(/^250 2\.1\.0 /);
    await c.expect(/^250 2\.1\.5 /);
    c.sendRaw('QUIT\n');
    await c.expect(/^221 /);
    await c.closed();
    const conn = up.connections[before];
    expect(Buffer.concat(conn.reads).toString('latin1')).toBe(
      'EHLO lf.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n',
    );
  });

  it('a 10 MB line without LF keeps memory bounded and the session survives', async () => {
    const { c, conn } = await session();
    const chunk = Buffer.alloc(1024 * 1024, 0x41);
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    for (let i = 0; i < 10; i++) {
      if (!c.socket.write(chunk)) await new Promise((r) => c.socket.once('drain', r));
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    c.sendRaw('\r\nNOOP\r\n');
    await c.expect(/^500 5\.5\.2 Line too long/, 10_000);
    await c.expect(/^250 2\.0\.0 Ok noop/);
    peak = Math.max(peak, process.memoryUsage().rss);
    // A proxy that buffered the line would hold >= 10 MB (and copies of it).
    expect(peak - rss0).toBeLessThan(32 * 1024 * 1024);
    expect(conn.commands).toEqual(['EHLO client.example.org', 'NOOP']);
    c.send('QUIT');
    await c.closed();
  });

  it('EHLO hides CHUNKING, BINARYMIME, XCLIENT and XFORWARD from the client', async () => {
    const { c, ehlo } = await session();
    expect(ehlo.lines).toContain('PIPELINING');
    expect(ehlo.lines).toContain('8BITMIME');
    for (const hidden of ['CHUNKING', 'BINARYMIME', 'XCLIENT', 'XFORWARD']) {
      expect(ehlo.lines.some((l) => l.startsWith(hidden))).toBe(false);
    }
    c.send('QUIT');
    await c.closed();
  });

  it('BDAT is refused with 503 and its chunk bytes are never executed as commands', async () => {
    const { c, conn } = await session();
    // The 12-byte chunk is itself a command line; executed, it would reach the upstream as VRFY.
    c.sendRaw('BDAT 12 LAST\r\nVRFY smugl\r\nNOOP\r\n');
    await c.expect(/^503 5\.5\.1 /);
    await c.expect(/^250 2\.0\.0 Ok noop/);
    // The same with the chunk arriving in a later write than the command.
    c.sendRaw('BDAT 12\r\n');
    await sleep(50);
    c.sendRaw('VRFY smug2');
    await sleep(50);
    c.sendRaw('\r\nNOOP\r\n');
    await c.expect(/^503 5\.5\.1 /);
    await c.expect(/^250 2\.0\.0 Ok noop/);
    expect(conn.commands.filter((l) => /VRFY|BDAT/.test(l))).toEqual([]);
    expect(conn.commands.filter((l) => l === 'NOOP')).toHaveLength(2);
    c.send('QUIT');
    await c.closed();
  });

  it('XCLIENT and XFORWARD from the client are refused and never reach the upstream', async () => {
    const { c, conn } = await session();
    c.send('XCLIENT ADDR=192.0.2.1 NAME=trusted.example');
    await c.expect(/^5\d\d /);
    c.send('XFORWARD ADDR=192.0.2.1');
    await c.expect(/^5\d\d /);
    c.send('NOOP');
    await c.expect(/^250 /);
    expect(conn.commands.filter((l) => /^X/i.test(l))).toEqual([]);
    c.send('QUIT');
    await c.closed();
  });

  it('a command with a NUL or a bare CR is refused and never reaches the upstream', async () => {
    const { c, conn } = await session();
    c.sendRaw('NOOP a\0b\r\n');
    await c.expect(/^501 /);
    c.sendRaw('NOOP one\rRSET\r\n');
    await c.expect(/^501 /);
    c.send('NOOP');
    await c.expect(/^250 /);
    expect(conn.commands).toEqual(['EHLO client.example.org', 'NOOP']);
    c.send('QUIT');
    await c.closed();
  });

  it('earlyTalker: wait — the greeting comes first, then the reply to the early command', async () => {
    const c = await connect(waitProxy.port);
    c.send('EHLO early.example.org'); // before the (300 ms late) greeting
    const first = await c.reply();
    expect(first.raw).toMatch(/^220 fake\.test/);
    const second = await c.reply();
    expect(second.raw).toMatch(/^250-fake\.test Hello early\.example\.org/);
    c.send('QUIT');
    await c.closed();
  });

  it('earlyTalker: reject — 554 and close', async () => {
    const c = await connect(rejectProxy.port);
    c.send('EHLO early.example.org');
    const r = await c.reply();
    expect(r.raw).toMatch(/^554 /);
    await c.closed();
    expect(c.received).not.toMatch(/^220 /m);
  });
});
