// TLS on both legs against peers that misbehave on purpose: the version matrix on one legacy listener
// (openssl s_client TLS 1.0 .. 1.3), what a refused client offered, client certificates, fail-closed
// upstreams, and STARTTLS injection in both directions as real bytes on real sockets.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCerts, type TestCerts } from './harness/certs.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { opensslSClient } from './harness/peers.js';
import { startTlsFake, type TlsFake } from './tls-fake-upstream.js';
import { LineClient, startMailshim, type Mailshim } from './tls-helpers.js';
import { readFileSync } from 'node:fs';

let certs: TestCerts;
let plainUp: FakeUpstream;
let fakes: Record<'selfSigned' | 'expired' | 'noStarttls' | 'tls10only' | 'inject' | 'good', TlsFake>;
let ms: Mailshim;

const LEGACY = 'DEFAULT:@SECLEVEL=0';

beforeAll(async () => {
  certs = await createCerts();
  const read = (p: string) => readFileSync(p);
  plainUp = await startFakeUpstream();
  const srv = { cert: read(certs.server.cert), key: read(certs.server.key) };
  fakes = {
    selfSigned: await startTlsFake({ cert: read(certs.selfSigned.cert), key: read(certs.selfSigned.key) }),
    expired: await startTlsFake({ cert: read(certs.expired.cert), key: read(certs.expired.key) }),
    noStarttls: await startTlsFake({ ...srv, noStarttls: true }),
    tls10only: await startTlsFake({ ...srv, minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: LEGACY }),
    inject: await startTlsFake({ ...srv, starttlsReply: '220 2.0.0 ready\r\n250 injected\r\n' }),
    good: await startTlsFake(srv),
  };
  const up = (port: number) => ({ host: '127.0.0.1', port, tls: { mode: 'starttls', ca: certs.ca.cert } });
  const legacyTls = { cert: certs.server.cert, key: certs.server.key, minVersion: 'TLSv1' };
  ms = await startMailshim({
    listeners: [
      { name: 'legacy-starttls', upstream: 'plain', tls: { mode: 'starttls', ...legacyTls } },
      { name: 'legacy-implicit', upstream: 'plain', tls: { mode: 'implicit', ...legacyTls } },
      { name: 'default-starttls', upstream: 'plain', tls: { mode: 'starttls', cert: certs.server.cert, key: certs.server.key } },
      { name: 'default-implicit', upstream: 'plain', tls: { mode: 'implicit', cert: certs.server.cert, key: certs.server.key } },
      { name: 'sha1', upstream: 'plain', tls: { mode: 'starttls', cert: certs.sha1Server.cert, key: certs.sha1Server.key, minVersion: 'TLSv1' } },
      {
        name: 'client-certs',
        upstream: 'plain',
        tls: { mode: 'implicit', ...legacyTls, requestClientCert: true, ca: certs.ca.cert, crl: certs.crl },
      },
      ...(['selfSigned', 'expired', 'noStarttls', 'tls10only', 'inject', 'good'] as const).map((n) => ({ name: `to-${n}`, upstream: n })),
    ],
    upstreams: {
      plain: { host: '127.0.0.1', port: plainUp.port },
      ...Object.fromEntries(Object.entries(fakes).map(([n, f]) => [n, up(f.port)])),
    },
  });
});

afterAll(async () => {
  await ms?.stop();
  await Promise.all([plainUp?.stop(), ...Object.values(fakes ?? {}).map((f) => f.stop())]);
  await certs?.cleanup();
});

/** The first session of `listener` that ended after `before` sessions had ended. */
const endOf = (listener: string, before: number) =>
  ms.waitFor(() => ms.ended().slice(before).find((s) => s.listener === listener), `session end on ${listener}`);

const sClient = (port: number, args: string[]) =>
  opensslSClient(
    ['-connect', `127.0.0.1:${port}`, '-crlf', ...args],
    [{ waitFor: /Verify return code/ }, { send: 'EHLO doorphone\n' }, { waitFor: /^250 /m }, { send: 'QUIT\n' }, { waitFor: /^221 /m }],
    { timeoutMs: 15_000 },
  );
const protocolOf = (out: string) => /^\s*Protocol\s*:\s*(\S+)/m.exec(out)?.[1];
const cipherOf = (out: string) => /Cipher is (\S+)/.exec(out)?.[1];

describe('one listener with minVersion TLSv1 (Node 20 / OpenSSL 3.0: per-context SECLEVEL=0, no global flags)', () => {
  const cases = [
    ['-tls1', 'TLSv1'],
    ['-tls1_1', 'TLSv1.1'],
    ['-tls1_2', 'TLSv1.2'],
    ['-tls1_3', 'TLSv1.3'],
  ] as const;
  for (const mode of ['starttls', 'implicit'] as const) {
    for (const [flag, version] of cases) {
      it(`${mode}: openssl s_client ${flag} completes a handshake and gets the EHLO reply`, async () => {
        const before = ms.ended().length;
        const extra = mode === 'starttls' ? ['-starttls', 'smtp'] : [];
        const r = await sClient(ms.port(`legacy-${mode}`), [...extra, flag, '-cipher', LEGACY, '-servername', 'doorphone.local']);
        expect(protocolOf(r.stdout)).toBe(version);
        expect(cipherOf(r.stdout)).toMatch(/^[A-Z0-9_-]+$/);
        const s = await endOf(`legacy-${mode}`, before);
        expect(s.clientTls?.version).toBe(version);
        expect(s.clientTls?.servername).toBe('doorphone.local');
        // An unclean TLS EOF after QUIT from s_client is a normal end.
        expect(s.result).toBe('ok');
      });
    }
  }

  it('leaves Node’s global defaults alone', () => {
    expect(tls.DEFAULT_MIN_VERSION).toBe('TLSv1.2');
    expect(process.execArgv.join(' ')).not.toMatch(/tls-min-v1\.0/);
  });

  it('TLS 1.0 works with a SHA-1-signed server certificate', async () => {
    const r = await sClient(ms.port('sha1'), ['-starttls', 'smtp', '-tls1', '-cipher', LEGACY]);
    expect(protocolOf(r.stdout)).toBe('TLSv1');
    expect(r.stdout).toMatch(/Peer signature type|Server certificate/);
  });
});

describe('a listener at the default (TLS 1.2+) refuses TLS 1.0 and logs what the client offered', () => {
  for (const mode of ['starttls', 'implicit'] as const) {
    it(mode, async () => {
      const before = ms.events.length;
      const extra = mode === 'starttls' ? ['-starttls', 'smtp'] : [];
      const r = await opensslSClient(['-connect', `127.0.0.1:${ms.port(`default-${mode}`)}`, ...extra, '-tls1', '-cipher', LEGACY, '-servername', 'doorphone.local'], '', {
        timeoutMs: 15_000,
      });
      expect(r.stdout + r.stderr).toMatch(/alert protocol version|SSL alert number 70/);
      const ev = await ms.waitFor(
        () => ms.events.slice(before).find((e) => e.type === 'link.tls-failed' && e.side === 'client'),
        'link.tls-failed',
      );
      if (ev.type !== 'link.tls-failed') throw new Error('unreachable');
      expect(ev.reason).toMatch(/unsupported protocol/);
      expect(ev.offered).toMatchObject({ version: 'TLSv1', sni: 'doorphone.local' });
      const offered = ev.offered as { ciphers: string[] };
      expect(offered.ciphers).toContain('TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA');
      expect(offered.ciphers).toContain('TLS_RSA_WITH_AES_128_CBC_SHA');
      // The log line owners read carries the same answer.
      const line = ms.logs.find((l) => l.msg === 'TLS handshake failed' && l.sid === ev.sid);
      expect(line?.offered).toMatchObject({ version: 'TLSv1' });
    });
  }

  it('a plaintext client on an implicit-TLS port is logged as not TLS', async () => {
    const before = ms.events.length;
    const c = await LineClient.connect(ms.port('default-implicit'));
    c.write('EHLO doorphone\r\n');
    const ev = await ms.waitFor(() => ms.events.slice(before).find((e) => e.type === 'link.tls-failed'), 'link.tls-failed');
    expect(ev).toMatchObject({ offered: { notTls: 'EHLO doorphone\\r\\n' } });
    c.socket.destroy();
  });
});

describe('client certificates (requestClientCert, ca, crl)', () => {
  const connectWith = (pair?: { cert: string; key: string }) =>
    LineClient.connectTls(ms.port('client-certs'), pair ? { cert: readFileSync(pair.cert), key: readFileSync(pair.key) } : {});

  it('a verified certificate: the session knows its subject', async () => {
    const before = ms.ended().length;
    const c = await connectWith(certs.client);
    expect(await c.reply()).toMatch(/^220 /);
    c.write('QUIT\r\n');
    expect(await c.reply()).toMatch(/^221 /);
    const s = await endOf('client-certs', before);
    expect(s.clientTls?.peerSubject).toBe('CN=doorphone');
    expect(s.clientTls?.peerIssuer).toBe('CN=mailshim-test-ca');
    expect(s.clientTls?.authorized).toBe(true);
    expect(s.result).toBe('ok');
  });

  it('no certificate: an ordinary session', async () => {
    const c = await connectWith();
    expect(await c.reply()).toMatch(/^220 /);
    c.socket.destroy();
  });

  for (const [what, pair, reason] of [
    ['revoked', () => certs.revokedClient, /client certificate refused: certificate revoked/],
    // With a CRL configured OpenSSL looks for the issuer's CRL first, so an unknown CA shows as that.
    ['unknown CA', () => certs.selfSigned, /client certificate refused: (self-signed certificate|unable to get certificate CRL)/],
  ] as const) {
    it(`a ${what} certificate is refused right after the handshake, with the reason in the log`, async () => {
      const before = ms.events.length;
      const c = await connectWith(pair());
      expect(await c.reply(5000)).toBeNull();
      expect(c.received).toBe('');
      const ev = await ms.waitFor(() => ms.events.slice(before).find((e) => e.type === 'link.tls-failed'), 'link.tls-failed');
      expect(ev).toMatchObject({ side: 'client', reason: expect.stringMatching(reason) });
    });
  }
});

describe('fail closed towards the upstream: 421 4.7.0 at connect, nothing sent in the clear', () => {
  const cases = [
    ['selfSigned', /certificate not trusted: self-signed certificate/],
    ['expired', /certificate not trusted: certificate has expired/],
    ['noStarttls', /upstream does not offer STARTTLS/],
    ['tls10only', /TLS alert protocol_version/],
  ] as const;
  for (const [name, reason] of cases) {
    it(name, async () => {
      const before = ms.ended().length;
      const c = await LineClient.connect(ms.port(`to-${name}`));
      // A client that talks first anyway: none of this may reach the upstream.
      c.write('EHLO doorphone\r\nMAIL FROM:<a@example.org>\r\n');
      const first = await c.reply();
      expect(first).toMatch(/^421 4\.7\.0 .*TLS with the upstream server failed/);
      expect(await c.reply()).toBeNull();
      const s = await endOf(`to-${name}`, before);
      expect(s.result).toBe('upstream-unreachable');
      expect(s.reason).toMatch(reason);
      const failed = ms.events.find((e) => e.type === 'link.tls-failed' && e.sid === s.sid);
      expect(failed).toMatchObject({ side: 'upstream', reason: expect.stringMatching(reason) });
      const f = fakes[name];
      expect(f.commands.filter((c) => c.tls)).toEqual([]);
      expect(f.commands.map((c) => c.line.split(' ')[0])).not.toContain('MAIL');
      expect(f.commands.every((c) => /^(EHLO|STARTTLS|QUIT)\b/.test(c.line))).toBe(true);
    });
  }
});

describe('STARTTLS injection, both directions', () => {
  it('client: "STARTTLS\\r\\nRSET\\r\\n" in one write -> RSET is never executed', async () => {
    const before = ms.events.length;
    const c = await LineClient.connect(ms.port('legacy-starttls'));
    expect(await c.reply()).toMatch(/^220 /);
    c.write('EHLO doorphone\r\n');
    expect(await c.reply()).toMatch(/STARTTLS/);
    const seenBefore = plainUp.connections.at(-1)!.commands.length;
    c.write('STARTTLS\r\nRSET\r\n');
    expect(await c.reply()).toMatch(/^220 2\.0\.0/);
    await c.startTls({ minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: LEGACY });
    c.write('EHLO doorphone\r\n');
    // The first reply inside TLS answers EHLO, not an RSET smuggled in before the handshake.
    expect(await c.reply()).toMatch(/^250-/);
    c.write('QUIT\r\n');
    expect(await c.reply()).toMatch(/^221 /);
    const up = plainUp.connections.at(-1)!;
    await up.closedPromise;
    expect(up.commands.slice(seenBefore).map((l) => l.split(' ')[0])).toEqual(['EHLO', 'QUIT']);
    const discarded = ms.events.slice(before).find((e) => e.type === 'protocol' && /discarded 6 bytes sent after STARTTLS/.test(e.line));
    expect(discarded).toBeDefined();
  });

  it('upstream: "220 ready\\r\\n250 injected\\r\\n" to STARTTLS -> the injected reply is discarded', async () => {
    const before = ms.ended().length;
    const c = await LineClient.connect(ms.port('to-inject'));
    expect(await c.reply()).toMatch(/^220 /);
    c.write('EHLO doorphone\r\n');
    const ehlo = await c.reply();
    expect(ehlo).toMatch(/^250-fake\.tls\.test/);
    c.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    expect(await c.reply()).toMatch(/^250 /);
    expect(await c.reply()).toMatch(/^250 /);
    expect(await c.reply()).toMatch(/^354 /);
    c.write('Subject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n');
    expect(await c.reply()).toMatch(/^250 2\.0\.0 queued/);
    expect(await c.reply()).toMatch(/^221 /);
    expect(c.received).not.toMatch(/injected/);
    const s = await endOf('to-inject', before);
    expect(s.upstreamTls?.version).toBe('TLSv1.3');
    expect(s.messages).toBe(1);
    // Every command after STARTTLS went inside TLS; the client's own EHLO is the post-TLS EHLO.
    const inTls = fakes.inject.commands.filter((x) => x.tls).map((x) => x.line.split(' ')[0]);
    expect(inTls).toEqual(['EHLO', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
    expect(fakes.inject.commands.filter((x) => !x.tls).map((x) => x.line.split(' ')[0])).toEqual(['EHLO', 'STARTTLS']);
  });

  it('a verified upstream: TlsInfo for both sides reaches the session end log line', async () => {
    const c = await LineClient.connect(ms.port('to-good'));
    expect(await c.reply()).toMatch(/^220 /);
    c.write('QUIT\r\n');
    expect(await c.reply()).toMatch(/^221 /);
    const line = await ms.waitFor(
      () => ms.logs.find((l) => l.msg === 'session end' && l.listener === 'to-good'),
      'session end log line',
    );
    expect(line.upstreamTls).toMatchObject({ version: 'TLSv1.3', authorized: true, peerSubject: 'CN=localhost', peerIssuer: 'CN=mailshim-test-ca' });
    expect((line.upstreamTls as { handshakeMs: number }).handshakeMs).toBeGreaterThan(0);
    expect(line.level).toBe(30);
  });
});
