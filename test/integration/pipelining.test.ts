// RFC 2920 through mailshim (issue 2 scope item 8): whole groups in one write, Netscape's EHLO + AUTH PLAIN,
// a locally refused line inside a group — replies in order, each exactly once — and strictness towards an
// upstream that does not offer PIPELINING (never more than one command in flight).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Dialogue, type Reply } from './harness/dialogue.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';
import { run, swaks } from './harness/peers.js';

function config(upstreamPort: number) {
  return {
    listeners: [{ name: 'pipe', hostname: 'proxy.test', upstream: 'up' }],
    upstreams: { up: { host: '127.0.0.1', port: upstreamPort } },
  };
}

/** All replies in what the client received, parsed independently of the Dialogue queue. */
function allReplies(received: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const l of received.split('\r\n').slice(0, -1)) {
    cur += l + '\r\n';
    if (!/^\d{3}-/.test(l)) {
      out.push(cur);
      cur = '';
    }
  }
  return out;
}

async function replies(c: Dialogue, n: number): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < n; i++) out.push(await c.reply());
  return out;
}

describe('pipelining', () => {
  let postfix: PostfixInstance;
  let slow: FakeUpstream;
  let noPipelining: FakeUpstream;
  let viaPostfix: ProxyHandle;
  let viaSlow: ProxyHandle;
  let viaNoPipelining: ProxyHandle;

  beforeAll(async () => {
    [postfix, slow, noPipelining] = await Promise.all([
      startPostfix({ sasl: { users: [{ user: 'notify', password: 'n0tify-secret' }], mechanisms: 'PLAIN LOGIN' } }),
      startFakeUpstream({ replyDelayMs: 40 }),
      startFakeUpstream({ ehlo: ['8BITMIME', 'SIZE 1000000'], replyDelayMs: 20 }),
    ]);
    [viaPostfix, viaSlow, viaNoPipelining] = await Promise.all([
      startProxy(config(postfix.port)),
      startProxy(config(slow.port)),
      startProxy(config(noPipelining.port)),
    ]);
  });

  afterAll(async () => {
    await Promise.all([viaPostfix, viaSlow, viaNoPipelining].map((p) => p?.stop()));
    await Promise.all([slow?.stop(), noPipelining?.stop(), postfix?.stop()]);
  });

  it('a whole group in one write (EHLO..MAIL..RCPT..bad RCPT..DATA) gets every reply once, in order, from Postfix', async () => {
    const c = await connect(viaPostfix.port);
    await c.greeted();
    c.sendRaw(
      'EHLO group.example.org\r\n' +
        'MAIL FROM:<sender@example.org>\r\n' +
        'RCPT TO:<owner@example.test>\r\n' +
        'RCPT TO:<someone@elsewhere.example>\r\n' +
        'DATA\r\n',
    );
    const [ehlo, mail, rcpt, bad, data] = await replies(c, 5);
    expect(ehlo.code).toBe(250);
    expect(ehlo.lines).toContain('PIPELINING');
    expect(mail.raw).toMatch(/^250 2\.1\.0 /);
    expect(rcpt.raw).toMatch(/^250 2\.1\.5 /);
    expect(bad.raw).toMatch(/^554 5\.7\.1 <someone@elsewhere\.example>: Relay access denied/);
    expect(data.code).toBe(354);
    c.sendRaw('Subject: pipelined\r\n\r\nhello\r\n.\r\nQUIT\r\n');
    await c.expect(/^250 2\.0\.0 Ok: queued/);
    await c.expect(/^221 /);
    await c.closed();
    expect(allReplies(c.received).map((r) => r.slice(0, 3))).toEqual(['220', '250', '250', '250', '554', '354', '250', '221']);
    const [d] = await postfix.waitForDeliveries(1);
    expect(d.recipients).toEqual(['owner@example.test']);
    expect(d.content).toBe('Subject: pipelined\r\n\r\nhello\r\n');
  });

  it("Netscape's EHLO + AUTH PLAIN in one write: 250 then 235, and the session is authenticated at Postfix", async () => {
    const c = await connect(viaPostfix.port);
    await c.greeted();
    const token = Buffer.from('\0notify\0n0tify-secret').toString('base64');
    c.sendRaw(`EHLO netscape.example.org\r\nAUTH PLAIN ${token}\r\n`);
    const ehlo = await c.reply();
    expect(ehlo.code).toBe(250);
    expect(ehlo.lines.some((l) => /^AUTH /.test(l))).toBe(true);
    await c.expect(/^235 2\.7\.0 /);
    // Authenticated, so Postfix lets it relay to another domain.
    c.sendRaw('MAIL FROM:<notify@example.test>\r\nRCPT TO:<someone@elsewhere.example>\r\nRSET\r\nQUIT\r\n');
    await c.expect(/^250 2\.1\.0 /);
    await c.expect(/^250 2\.1\.5 /);
    await c.expect(/^250 2\.0\.0 /);
    await c.expect(/^221 /);
    await c.closed();
    expect(allReplies(c.received).map((r) => r.slice(0, 3))).toEqual(['220', '250', '235', '250', '250', '250', '221']);
    await postfix.waitForLog(/sasl_method=PLAIN, sasl_username=notify/);
  });

  it('a locally refused over-long line inside a group is answered in its place, after slower upstream replies', async () => {
    const c = await connect(viaSlow.port);
    await c.ehloDone();
    c.sendRaw(
      'MAIL FROM:<a@example.org>\r\n' +
        'RCPT TO:<b@example.test>\r\n' +
        `NOOP ${'x'.repeat(600)}\r\n` +
        'RCPT TO:<bad@example.test>\r\n' +
        'RCPT TO:<d@example.test>\r\n' +
        'RSET\r\n',
    );
    const got = await replies(c, 6);
    expect(got.map((r) => r.raw)).toEqual([
      '250 2.1.0 Ok FROM:<a@example.org>\r\n',
      '250 2.1.5 Ok TO:<b@example.test>\r\n',
      '500 5.5.2 Line too long\r\n',
      '550 5.1.1 No such user TO:<bad@example.test>\r\n',
      '250 2.1.5 Ok TO:<d@example.test>\r\n',
      '250 2.0.0 Ok reset\r\n',
    ]);
    c.send('QUIT');
    await c.expect(/^221 /);
    await c.closed();
    // 220, EHLO, the six, 221: nothing twice, nothing missing.
    expect(allReplies(c.received).map((r) => r.slice(0, 3))).toEqual(['220', '250', '250', '250', '500', '550', '250', '250', '221']);
  });

  it('a client that does not wait for 354 (envelope, DATA, body and QUIT in one write) still gets each reply once', async () => {
    const before = slow.connections.length;
    const c = await connect(viaSlow.port);
    await c.ehloDone();
    c.sendRaw(
      'MAIL FROM:<eager@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n' +
        'Subject: eager\r\n\r\nRSET\r\n.\r\nQUIT\r\n',
    );
    const got = await replies(c, 5);
    expect(got.map((r) => r.code)).toEqual([250, 250, 354, 250, 221]);
    await c.closed();
    const up = slow.connections[before];
    // The body stayed a body: its RSET line was not run as a command.
    expect(up.messages.map((m) => m.toString('latin1'))).toEqual(['Subject: eager\r\n\r\nRSET\r\n.\r\n']);
    expect(up.commands).toEqual(['EHLO client.example.org', 'MAIL FROM:<eager@example.org>', 'RCPT TO:<b@example.test>', 'DATA', 'QUIT']);
  });

  it('an upstream without PIPELINING never gets more than one command at a time', async () => {
    const c = await connect(viaNoPipelining.port);
    const ehlo = await c.ehloDone();
    expect(ehlo.lines).not.toContain('PIPELINING');
    // A client that pipelines anyway (lenient towards the device).
    c.sendRaw(
      'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<bad@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n',
    );
    const got = await replies(c, 5);
    expect(got.map((r) => r.code)).toEqual([250, 250, 550, 250, 354]);
    c.sendRaw('Subject: one at a time\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n');
    await c.expect(/^250 2\.0\.0 Ok: queued/);
    await c.expect(/^250 2\.0\.0 Ok noop/);
    await c.expect(/^221 /);
    await c.closed();
    const [up] = noPipelining.connections;
    expect(up.commands).toEqual([
      'EHLO client.example.org',
      'MAIL FROM:<a@example.org>',
      'RCPT TO:<b@example.test>',
      'RCPT TO:<bad@example.test>',
      'RCPT TO:<c@example.test>',
      'DATA',
      'NOOP',
      'QUIT',
    ]);
    expect(up.maxInFlight).toBe(1);
    // Each read outside the body held at most one command line.
    for (const read of up.reads) {
      const text = read.toString('latin1');
      if (text.startsWith('Subject:')) continue;
      expect(text.split('\r\n').length - 1, JSON.stringify(text)).toBeLessThanOrEqual(1);
    }
  });

  it('swaks --pipeline: a real pipelining client delivers through mailshim to Postfix', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${viaPostfix.port}`,
      '--pipeline',
      '--from', 'piped@example.org',
      '--to', 'owner@example.test',
      '--header', 'Subject: swaks pipelined',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // swaks wrote MAIL, RCPT and DATA as one group.
    expect(r.stdout).toMatch(/^ -> MAIL FROM:<piped@example\.org>\n -> RCPT TO:<owner@example\.test>\n -> DATA$/m);
    const all = await postfix.waitForDeliveries(2);
    expect(all.some((d) => d.sender === 'piped@example.org' && d.content.includes('Subject: swaks pipelined'))).toBe(true);
  });

  it("Postfix's smtp-source: 2 sessions x 10 messages each (-d), all 20 delivered and answered", async () => {
    const r = await run('/usr/sbin/smtp-source', ['-d', '-s', '2', '-m', '20', '-l', '2000', '-f', 'src@example.org', '-t', 'sink@example.test', `127.0.0.1:${viaPostfix.port}`], { timeoutMs: 30_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const got = (await postfix.waitForDeliveries(22, 20_000)).filter((d) => d.sender === 'src@example.org');
    expect(got).toHaveLength(20);
  });
});
