// DATA through mailshim (issue 2 scope item 9): a 50 MB message with bounded memory to Postfix's smtp-sink,
// binary-looking bodies relayed unchanged, and SMTP smuggling attempts that a real Postfix sees as one message.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Dialogue } from './harness/dialogue.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';
import { startSmtpSink, type SmtpSinkInstance } from './harness/smtp-sink.js';

const MB = 1024 * 1024;

function config(upstreamPort: number) {
  return {
    listeners: [{ name: 'data', hostname: 'proxy.test', upstream: 'up' }],
    upstreams: { up: { host: '127.0.0.1', port: upstreamPort } },
  };
}

async function intoData(c: Dialogue, to = 'owner@example.test'): Promise<void> {
  await c.ehloDone();
  c.send('MAIL FROM:<sender@example.org>');
  await c.expect(/^250 /);
  c.send(`RCPT TO:<${to}>`);
  await c.expect(/^250 /);
  c.send('DATA');
  await c.expect(/^354 /);
}

async function write(c: Dialogue, buf: Buffer): Promise<void> {
  if (!c.socket.write(buf)) await new Promise((r) => c.socket.once('drain', r));
}

describe('DATA streaming', () => {
  let sink: SmtpSinkInstance;
  let postfix: PostfixInstance;
  let fake: FakeUpstream;
  let viaSink: ProxyHandle;
  let viaPostfix: ProxyHandle;
  let viaFake: ProxyHandle;

  beforeAll(async () => {
    [sink, postfix, fake] = await Promise.all([startSmtpSink(), startPostfix(), startFakeUpstream()]);
    [viaSink, viaPostfix, viaFake] = await Promise.all([
      startProxy(config(sink.port)),
      startProxy(config(postfix.port)),
      startProxy(config(fake.port)),
    ]);
  });

  afterAll(async () => {
    await Promise.all([viaSink, viaPostfix, viaFake].map((p) => p?.stop()));
    await Promise.all([sink?.stop(), postfix?.stop(), fake?.stop()]);
  });

  it('a 50 MB message reaches smtp-sink with mailshim\'s memory growth under 64 MB', async () => {
    const c = await connect(viaSink.port);
    await intoData(c);
    // 1 MB of 100-byte lines, written 50 times (the client itself holds only this buffer).
    const line = Buffer.from('x'.repeat(98) + '\r\n');
    const block = Buffer.concat(Array.from({ length: (MB / 100) | 0 }, () => line));
    const header = Buffer.from('Subject: fifty megabytes\r\n\r\n');
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let sent = 0;
    try {
      await write(c, header);
      sent += header.length;
      for (let i = 0; i < 50; i++) {
        await write(c, block);
        sent += block.length;
      }
      await write(c, Buffer.from('.\r\n'));
      sent += 3;
      const r = await c.reply(60_000);
      expect(r.raw).toMatch(/^250 /);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(sent).toBeGreaterThan(50 * 1000 * 1000);
    expect(peak - rss0, `RSS grew by ${((peak - rss0) / MB).toFixed(1)} MB`).toBeLessThan(64 * MB);
    c.send('QUIT');
    await c.expect(/^221 /);
    const [summary] = await viaSink.waitForSessionEnd(1);
    expect(summary.messages).toBe(1);
    const commit = viaSink.events.find((e) => e.type === 'tx.commit');
    expect(commit && 'size' in commit ? commit.size : 0).toBe(sent);
    const [dump] = await sink.waitForMessages(1, 20_000);
    // smtp-sink stores LF line ends: every CRLF of the 50 MB became one LF, nothing else changed.
    expect(dump.content.length).toBe(sent - 3 - (2 + 50 * block.length / line.length));
  });

  it('a binary-looking body (every byte value but CR and LF) reaches the upstream unchanged', async () => {
    const bytes: number[] = [];
    for (let round = 0; round < 8; round++) for (let b = 0; b < 256; b++) if (b !== 10 && b !== 13) bytes.push(b);
    const lines: Buffer[] = [Buffer.from('Subject: binary\r\n\r\n')];
    for (let i = 0; i < bytes.length; i += 60) {
      // Lines that start with '.' are dot-stuffed by the client, as SMTP requires.
      const chunk = Buffer.from(bytes.slice(i, i + 60));
      lines.push(chunk[0] === 0x2e ? Buffer.concat([Buffer.from('.'), chunk]) : chunk, Buffer.from('\r\n'));
    }
    lines.push(Buffer.from('..leading dot\r\n'));
    const body = Buffer.concat([...lines, Buffer.from('.\r\n')]);
    const before = fake.connections.length;
    const c = await connect(viaFake.port);
    await intoData(c);
    c.sendRaw(body);
    await c.expect(/^250 2\.0\.0 Ok: queued/);
    c.send('QUIT');
    await c.closed();
    const up = fake.connections[before];
    expect(up.messages).toHaveLength(1);
    expect(up.messages[0].equals(body)).toBe(true);
  });

  it('bare LF / CR smuggling attempts give exactly one message at Postfix, with the smuggled text inside', async () => {
    const variants = ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r\n'];
    for (const [i, v] of variants.entries()) {
      const c = await connect(viaPostfix.port);
      await intoData(c);
      c.sendRaw(
        `Subject: attempt ${i}\r\n\r\nbefore${v}` +
          'MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n' +
          `Subject: smuggled ${i}\r\n\r\nevil\r\n.\r\n`,
      );
      const r = await c.reply();
      expect(r.raw).toMatch(/^250 2\.0\.0 Ok: queued/);
      c.send('QUIT');
      await c.expect(/^221 /);
      await c.closed();
      // One reply for the DATA, then the 221: nothing answered the smuggled commands.
      expect(c.received.match(/^\d{3} /gm)?.map((l) => l.slice(0, 3))).toEqual(['220', '250', '250', '250', '354', '250', '221']);
    }
    const all = await postfix.waitForDeliveries(variants.length);
    await new Promise((r) => setTimeout(r, 300)); // a second message per attempt would arrive by now
    const delivered = await postfix.deliveries();
    expect(delivered).toHaveLength(variants.length);
    for (const d of all) {
      expect(d.sender).toBe('sender@example.org');
      expect(d.recipients).toEqual(['owner@example.test']);
      expect(d.content).toMatch(/^Subject: attempt \d\r\n\r\nbefore\r\n\.\r\nMAIL FROM:<evil@example\.org>\r\n/);
      expect(d.content).toMatch(/Subject: smuggled \d\r\n\r\nevil\r\n$/);
    }
  });
});
