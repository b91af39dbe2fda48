// The upstream reply deadline: one timer per connection that commands move instead of re-creating.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamClient } from '../../../src/upstream/upstream-client.js';

/** A server that greets, answers NOOP at once and never answers anything else. */
async function silentServer(): Promise<{ port: number; close: () => void }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.write('220 silent.test ESMTP\r\n');
    s.on('data', (d) => {
      for (const line of d.toString().split('\r\n')) if (line === 'NOOP') s.write('250 2.0.0 Ok\r\n');
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => {
      for (const s of socks) s.destroy();
      srv.close();
    },
  };
}

function client(port: number): UpstreamClient {
  return new UpstreamClient({
    name: 'silent',
    host: '127.0.0.1',
    port,
    tlsMode: 'none',
    tls: { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', verify: true, servername: 'silent.test' },
    ehloName: 'mailshim.test',
    connectTimeoutMs: 2000,
  });
}

describe('upstream reply deadline', () => {
  let server: { port: number; close: () => void } | undefined;
  afterEach(() => server?.close());

  it('gives up on a reply that does not come within the command timeout and says why', async () => {
    server = await silentServer();
    const up = client(server.port);
    await up.connect();
    const started = Date.now();
    const reason = await new Promise<string>((resolve) => {
      up.onClose = resolve;
      up.command('RCPT TO:<a@b.example>', () => resolve('answered?'), { timeoutMs: 300 });
    });
    expect(reason).toMatch(/did not answer within 0\.3 s/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('moves the deadline with each answered command, and a later longer wait is honoured', async () => {
    server = await silentServer();
    const up = client(server.port);
    await up.connect();
    let closedAt = 0;
    up.onClose = () => (closedAt = Date.now());
    // Answered commands with a short timeout must not leave a deadline behind...
    for (let i = 0; i < 3; i++) await new Promise((r) => up.command('NOOP', r, { timeoutMs: 200 }));
    // ...so a command allowed 700 ms is not cut off by the earlier 200 ms timer.
    const started = Date.now();
    up.command('DATA', () => {}, { timeoutMs: 700 });
    await new Promise((r) => setTimeout(r, 450));
    expect(closedAt).toBe(0);
    await new Promise((r) => setTimeout(r, 600));
    expect(closedAt - started).toBeGreaterThanOrEqual(650);
  });
});
