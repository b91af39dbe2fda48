// Connection limits: the N+1st concurrent connection from one client, and the N+1st within a minute,
// get 421 4.7.0 and are closed; behind the PROXY protocol the limits count the original client.
import { describe, it, expect, afterEach } from 'vitest';
import tls from 'node:tls';
import net from 'node:net';
import { rm } from 'node:fs/promises';
import { createCerts } from './harness/certs.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';
import { connect, type Dialogue } from './harness/dialogue.js';
import { scrape, sampleSum } from './ops-prom-text.js';

describe('limits', () => {
  let up: FakeUpstream | undefined;
  let proxy: ProxyHandle | undefined;
  const open: Dialogue[] = [];

  afterEach(async () => {
    for (const d of open.splice(0)) d.destroy();
    await proxy?.stop();
    await up?.stop();
    proxy = undefined;
    up = undefined;
  });

  async function setup(limits: object, listener: object = {}) {
    up = await startFakeUpstream();
    proxy = await startProxy({
      listeners: [{ name: 'main', upstream: 'up', ...listener }],
      upstreams: { up: { host: '127.0.0.1', port: up.port } },
      limits,
      metrics: { listen: '127.0.0.1:0' },
    });
    return proxy;
  }

  it('maxPerClient: the third concurrent connection from one client gets 421 4.7.0; after one leaves, a new one is served', async () => {
    const p = await setup({ maxPerClient: 2 });
    for (let i = 0; i < 2; i++) {
      const d = await connect(p.port);
      await d.greeted();
      open.push(d);
    }
    const third = await connect(p.port);
    await third.expect(/^421 4\.7\.0 .*Too many connections/);
    await third.closed();

    open[0].send('QUIT');
    await open[0].expect(/^221 /);
    await p.waitForSessionEnd(1);
    const again = await connect(p.port);
    await again.greeted();
    open.push(again);

    const m = await scrape(p.app.metricsServer!.address().port);
    expect(sampleSum(m, 'mailshim_connections_refused_total', { listener: 'main', reason: 'max-per-client' })).toBe(1);
  });

  it('ratePerClient: the fourth connection within a minute gets 421 4.7.0 even though the others closed', async () => {
    const p = await setup({ ratePerClient: 3 });
    for (let i = 0; i < 3; i++) {
      const d = await connect(p.port);
      await d.greeted();
      d.send('QUIT');
      await d.expect(/^221 /);
      await d.closed();
    }
    const fourth = await connect(p.port);
    await fourth.expect(/^421 4\.7\.0 /);
    await fourth.closed();
    const m = await scrape(p.app.metricsServer!.address().port);
    expect(sampleSum(m, 'mailshim_connections_refused_total', { reason: 'rate' })).toBe(1);
  });

  it('behind the PROXY protocol the limit counts each original client, not the proxy', async () => {
    const p = await setup({ maxPerClient: 1 }, { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] });
    const via = async (client: string) => {
      const d = await connect(p.port);
      d.sendRaw(`PROXY TCP4 ${client} 127.0.0.1 40000 25\r\n`);
      open.push(d);
      return d;
    };
    await (await via('192.0.2.1')).greeted();
    await (await via('192.0.2.2')).greeted();
    const again = await via('192.0.2.1');
    await again.expect(/^421 4\.7\.0 /);
    await again.closed();
    const starts = p.events.flatMap((e) => (e.type === 'session.start' ? [e] : []));
    expect(starts.map((s) => [s.client, s.proxiedFrom])).toEqual([
      ['192.0.2.1', '127.0.0.1'],
      ['192.0.2.2', '127.0.0.1'],
    ]);
  });

  it('a trusted peer that sends no valid PROXY header is dropped without SMTP', async () => {
    const p = await setup({}, { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] });
    const d = await connect(p.port);
    d.send('EHLO not-a-proxy');
    await d.closed();
    expect(d.received).toBe('');
    expect(p.events.filter((e) => e.type === 'session.start')).toHaveLength(0);
    const m = await scrape(p.app.metricsServer!.address().port);
    expect(sampleSum(m, 'mailshim_connections_refused_total', { reason: 'proxy-protocol' })).toBe(1);
  });

  it('implicit TLS behind the PROXY protocol: header and ClientHello in one write, the handshake and session work', async () => {
    const certs = await createCerts();
    try {
      const p = await setup({}, { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'], tls: { mode: 'implicit', cert: certs.server.cert, key: certs.server.key } });
      const raw = net.connect({ host: '127.0.0.1', port: p.port });
      await new Promise((r) => raw.once('connect', r));
      // Cork so the header and the ClientHello leave in one segment: the adapter must hand the rest to TLS.
      raw.cork();
      raw.write('PROXY TCP4 198.51.100.9 127.0.0.1 5555 465\r\n');
      const t = tls.connect({ socket: raw, servername: 'localhost', rejectUnauthorized: false });
      setTimeout(() => raw.uncork(), 50);
      const greeting = await new Promise<string>((resolve, reject) => {
        t.once('data', (d) => resolve(d.toString()));
        t.once('error', reject);
      });
      expect(greeting).toMatch(/^220 /);
      t.write('QUIT\r\n');
      await new Promise((r) => t.once('close', r));
      const start = p.events.find((e) => e.type === 'session.start');
      expect(start).toMatchObject({ client: '198.51.100.9', proxiedFrom: '127.0.0.1' });
    } finally {
      await rm(certs.dir, { recursive: true, force: true });
    }
  });
});
