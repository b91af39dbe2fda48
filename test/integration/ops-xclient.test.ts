// XCLIENT towards a real Postfix (upstreams[].xclient: true): the client connects from 127.0.0.2, mailshim
// from 127.0.0.1, and Postfix's Received header names 127.0.0.2 because mailshim announced it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';
import { Dialogue } from './harness/dialogue.js';

function connectFrom(localAddress: string, port: number): Promise<Dialogue> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => resolve(new Dialogue(s)));
    s.once('error', reject);
  });
}

async function send(port: number, subject: string): Promise<void> {
  const d = await connectFrom('127.0.0.2', port);
  await d.ehloDone('device.example.org');
  d.send('MAIL FROM:<device@example.org>');
  await d.expect(/^250 /);
  d.send('RCPT TO:<someone@example.test>');
  await d.expect(/^250 /);
  d.send('DATA');
  await d.expect(/^354 /);
  d.sendRaw(`Subject: ${subject}\r\n\r\nhello\r\n.\r\n`);
  await d.expect(/^250 /);
  d.send('QUIT');
  await d.expect(/^221 /);
}

describe('XCLIENT towards Postfix', () => {
  let pf: PostfixInstance;
  let proxy: ProxyHandle;

  beforeAll(async () => {
    pf = await startPostfix({ extraMain: { smtpd_authorized_xclient_hosts: '127.0.0.1' } });
    proxy = await startProxy({
      listeners: [
        { name: 'xc', upstream: 'pfx' },
        { name: 'plain', upstream: 'pf' },
      ],
      upstreams: {
        pfx: { host: '127.0.0.1', port: pf.port, xclient: true },
        pf: { host: '127.0.0.1', port: pf.port },
      },
    });
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await pf?.stop();
  });

  it('Postfix records the original client with xclient: true, and mailshim without it', async () => {
    await send(proxy.ports[0], 'via xclient');
    await send(proxy.ports[1], 'without xclient');
    const all = await pf.waitForDeliveries(2);
    const by = (subject: string) => all.find((d) => d.content.includes(`Subject: ${subject}`))!;
    expect(by('via xclient').receivedHeader).toMatch(/from device\.example\.org \(unknown \[127\.0\.0\.2\]\)/);
    expect(by('without xclient').receivedHeader).toMatch(/\[127\.0\.0\.1\]/);
    expect(by('without xclient').receivedHeader).not.toContain('127.0.0.2');
    // What mailshim said to Postfix, as the transcript shows it.
    const upstreamLines = proxy.events.flatMap((e) => (e.type === 'protocol' && e.leg === 'proxy->upstream' ? [e.line] : []));
    expect(upstreamLines).toContain('XCLIENT ADDR=127.0.0.2 NAME=[UNAVAILABLE] PROTO=ESMTP');
  });
});
