// Proves the real-peer harness on its own (no mailshim): Postfix, smtp-sink, swaks, openssl, python.
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCerts, type TestCerts } from './harness/certs.js';
import { msmtp, opensslSClient, pythonSmtplib, run, swaks, swaksData } from './harness/peers.js';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';
import { startSmtpSink, type SmtpSinkInstance } from './harness/smtp-sink.js';

const MESSAGE =
  'From: Door Phone <doorphone@example.org>\r\n' +
  'To: owner@example.test\r\n' +
  'Subject: Visitor at the door\r\n' +
  'X-Device: VL-SWH705KL\r\n' +
  '\r\n' +
  'Someone rang at 12:00.\r\n' +
  '.a line that starts with a dot\r\n' +
  'From the start of a line\r\n' +
  '\r\n' +
  'Tr\u00e4ger 100 \u20ac\r\n';

let certs: TestCerts;
let plain: PostfixInstance;
let secure: PostfixInstance;
let sink: SmtpSinkInstance;
let dataFile: string;

beforeAll(async () => {
  certs = await createCerts();
  [plain, secure, sink] = await Promise.all([
    startPostfix(),
    startPostfix({
      hostname: 'smtp.provider.test',
      domain: 'provider.test',
      tls: { ...certs.server, protocols: '>=TLSv1.2', wrapperPort: true },
      sasl: {
        users: [
          { user: 'notify', password: 'n0tify-secret' },
          { user: 'someone@example.net', password: 'himitsunokotoba' },
        ],
        mechanisms: 'PLAIN LOGIN',
        requireTls: true,
      },
    }),
    startSmtpSink(),
  ]);
  dataFile = join(certs.dir, 'message.txt');
  await writeFile(dataFile, swaksData(MESSAGE));
});

afterAll(async () => {
  await Promise.all([plain?.stop(), secure?.stop(), sink?.stop()]);
  await certs?.cleanup();
});

describe('throwaway certificates', () => {
  const verify = (...args: string[]) => run('openssl', ['verify', '-CAfile', certs.ca.cert, ...args]);

  it('signs a server certificate for localhost that verifies against the CA', async () => {
    const r = await verify('-verify_hostname', 'localhost', '-verify_ip', '127.0.0.1', certs.server.cert);
    expect(r.stdout).toContain(': OK');
    expect(r.code).toBe(0);
  });

  it('makes an expired, a foreign self-signed and a revoked certificate that do not verify', async () => {
    const expired = await verify(certs.expired.cert);
    expect(expired.code).not.toBe(0);
    expect(expired.stdout + expired.stderr).toMatch(/certificate has expired/);

    const self = await verify(certs.selfSigned.cert);
    expect(self.code).not.toBe(0);
    expect(self.stdout + self.stderr).toMatch(/self-signed certificate/);

    const revoked = await verify('-crl_check', '-CRLfile', certs.crl, certs.revokedClient.cert);
    expect(revoked.stdout + revoked.stderr).toMatch(/certificate revoked/);
    const client = await verify('-crl_check', '-CRLfile', certs.crl, certs.client.cert);
    expect(client.code).toBe(0);
  });

  it('makes one certificate signed with SHA-1', async () => {
    const text = await run('openssl', ['x509', '-in', certs.sha1Server.cert, '-noout', '-text']);
    expect(text.stdout).toContain('Signature Algorithm: sha1WithRSAEncryption');
    const server = await run('openssl', ['x509', '-in', certs.server.cert, '-noout', '-text']);
    expect(server.stdout).toContain('Signature Algorithm: sha256WithRSAEncryption');
  });
});

describe('plain Postfix instance', () => {
  it('delivers a message from swaks byte for byte, with only its Received header added', async () => {
    const before = (await plain.deliveries()).length;
    const r = await swaks([
      '--server', `127.0.0.1:${plain.port}`,
      '--from', 'doorphone@example.org',
      '--to', 'owner@example.test',
      '--data', `@${dataFile}`,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/<- {2}250 2\.0\.0 Ok: queued as [0-9A-F]+/);

    const all = await plain.waitForDeliveries(before + 1);
    const got = all[before];
    expect(got?.content).toBe(MESSAGE);
    expect(got?.sender).toBe('doorphone@example.org');
    expect(got?.recipients).toEqual(['owner@example.test']);
    expect(got?.receivedHeader).toMatch(/^Received: from \S+ \(unknown \[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(Postfix\) with ESMTP id /);
    expect(got?.text).toBe(got?.receivedHeader + MESSAGE);
    await plain.waitForLog(/status=sent \(delivered via mailshim-capture service\)/);
  });

  it('accepts mail from python smtplib and msmtp as well', async () => {
    // msmtp adds From, Date and Message-ID when they are missing; with all three it sends the text unchanged.
    const MSMTP_MESSAGE =
      'From: ms@example.org\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n' +
      'Subject: msmtp\r\n\r\nfrom msmtp\r\n';
    const before = (await plain.deliveries()).length;
    const py = await pythonSmtplib(`
import smtplib
with smtplib.SMTP('127.0.0.1', ${plain.port}, local_hostname='pyclient') as s:
    s.ehlo()
    print(s.sendmail('py@example.org', ['a@example.test', 'b@elsewhere.test'], b'Subject: py\\r\\n\\r\\nfrom python\\r\\n'))
`);
    expect(py.code, py.stderr).toBe(0);
    expect(py.stdout.trim()).toBe('{}');

    const ms = await msmtp(
      ['--host=127.0.0.1', `--port=${plain.port}`, '--from=ms@example.org', 'c@example.test'],
      MSMTP_MESSAGE,
    );
    expect(ms.code, ms.stdout + ms.stderr).toBe(0);

    const all = await plain.waitForDeliveries(before + 2);
    const py1 = all.find((d) => d.sender === 'py@example.org');
    expect([...(py1?.recipients ?? [])].sort()).toEqual(['a@example.test', 'b@elsewhere.test']);
    expect(py1?.content).toBe('Subject: py\r\n\r\nfrom python\r\n');
    expect(all.find((d) => d.sender === 'ms@example.org')?.content).toBe(MSMTP_MESSAGE);
  });
});

describe('Postfix with STARTTLS, implicit TLS and SASL', () => {
  it('authenticates swaks with AUTH PLAIN over STARTTLS TLS 1.2 and logs method, user and TLS version', async () => {
    const before = (await secure.deliveries()).length;
    const r = await swaks([
      '--server', `127.0.0.1:${secure.port}`,
      '--tls', '--tls-protocol', 'tlsv1_2',
      '--auth', 'PLAIN', '--auth-user', 'notify', '--auth-password', 'n0tify-secret',
      '--from', 'notify@provider.test', '--to', 'owner@elsewhere.test',
      '--data', `@${dataFile}`,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('TLS started with cipher TLSv1.2');
    expect(r.stdout).toContain('235 2.7.0 Authentication successful');

    const log = await secure.waitForLog(/sasl_method=PLAIN, sasl_username=notify@provider\.test/);
    expect(log).toMatch(/TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.2 with cipher/);
    const got = (await secure.waitForDeliveries(before + 1))[before];
    expect(got?.content).toBe(MESSAGE);
    expect(got?.receivedHeader).toContain('(Authenticated sender: notify@provider.test)');
    expect(got?.receivedHeader).toContain('with ESMTPSA');
    expect(got?.receivedHeader).toContain('(using TLSv1.2 with cipher');
  });

  it('accepts a user@realm login with AUTH LOGIN on the implicit-TLS port (TLS 1.3)', async () => {
    expect(secure.wrapperPort).toBeGreaterThan(0);
    const r = await swaks([
      '--server', `127.0.0.1:${secure.wrapperPort}`, '--tlsc',
      '--auth', 'LOGIN', '--auth-user', 'someone@example.net', '--auth-password', 'himitsunokotoba',
      '--from', 'someone@example.net', '--to', 'owner@elsewhere.test',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('TLS started with cipher TLSv1.3');
    await secure.waitForLog(/smtps\/smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.1\], sasl_method=LOGIN, sasl_username=someone@example\.net/);
  });

  it('rejects a wrong password, AUTH before STARTTLS and unauthenticated relaying', async () => {
    const wrong = await swaks([
      '--server', `127.0.0.1:${secure.port}`, '--tls',
      '--auth', 'PLAIN', '--auth-user', 'notify', '--auth-password', 'wrong',
      '--to', 'owner@elsewhere.test',
    ]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout).toMatch(/535 5\.7\.8 Error: authentication failed/);

    const cleartext = await swaks([
      '--server', `127.0.0.1:${secure.port}`,
      '--auth', 'PLAIN', '--auth-user', 'notify', '--auth-password', 'n0tify-secret',
      '--to', 'owner@elsewhere.test',
    ]);
    expect(cleartext.code).not.toBe(0);
    expect(cleartext.stdout).not.toMatch(/250-AUTH/);

    const relay = await swaks(['--server', `127.0.0.1:${secure.port}`, '--tls', '--to', 'owner@elsewhere.test']);
    expect(relay.code).not.toBe(0);
    expect(relay.stdout).toContain('554 5.7.1 <owner@elsewhere.test>: Relay access denied');
  });

  it('refuses a TLS 1.0 STARTTLS handshake with protocol_version but completes TLS 1.2', async () => {
    const tls1 = await opensslSClient(
      ['-connect', `127.0.0.1:${secure.port}`, '-starttls', 'smtp', '-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0'],
      'QUIT\r\n',
      { timeoutMs: 10_000 },
    );
    expect(tls1.timedOut).toBe(false);
    expect(tls1.code).not.toBe(0);
    expect(tls1.stderr).toMatch(/alert protocol version/);
    expect(tls1.stderr).toMatch(/SSL alert number 70/);

    const tls12 = await opensslSClient(
      ['-connect', `127.0.0.1:${secure.port}`, '-starttls', 'smtp', '-tls1_2', '-CAfile', certs.ca.cert, '-verify_return_error'],
      'QUIT\r\n',
      { timeoutMs: 10_000 },
    );
    expect(tls12.code, tls12.stderr).toBe(0);
    expect(tls12.stdout).toContain('Protocol  : TLSv1.2');
    expect(tls12.stdout).toContain('Verify return code: 0 (ok)');
    expect(tls12.stdout).toContain('221 2.0.0 Bye');
  });

  it('runs a scripted dialogue through openssl s_client', async () => {
    const before = (await secure.deliveries()).length;
    const plainAuth = Buffer.from('\0notify\0n0tify-secret').toString('base64');
    const r = await opensslSClient(
      ['-connect', `127.0.0.1:${secure.port}`, '-starttls', 'smtp', '-crlf', '-quiet'],
      [
        { send: 'EHLO scripted\n' },
        { waitFor: /^250 /m },
        { send: `AUTH PLAIN ${plainAuth}\n` },
        { waitFor: /^235 /m },
        { send: 'MAIL FROM:<notify@provider.test>\n' },
        { waitFor: /^250 /m },
        { send: 'RCPT TO:<owner@elsewhere.test>\n' },
        { waitFor: /^250 /m },
        { send: 'DATA\n' },
        { waitFor: /^354 /m },
        { send: 'Subject: scripted\n\nhello\n.\n' },
        { waitFor: /^250 2\.0\.0 Ok: queued/m },
        { send: 'QUIT\n' },
      ],
      { timeoutMs: 15_000 },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/221 2\.0\.0 Bye/);
    const got = (await secure.waitForDeliveries(before + 1))[before];
    expect(got?.content).toBe('Subject: scripted\r\n\r\nhello\r\n');
  });
});

describe('legacy TLS Postfix', () => {
  it('accepts a TLS 1.0 client when told to (protocols >=TLSv1, cipher list at SECLEVEL=0)', async () => {
    const legacy = await startPostfix({ tls: { ...certs.sha1Server, protocols: '>=TLSv1', cipherList: 'DEFAULT:@SECLEVEL=0' } });
    try {
      const r = await swaks([
        '--server', `127.0.0.1:${legacy.port}`, '--tls', '--tls-protocol', 'tlsv1', '--tls-cipher', 'DEFAULT:@SECLEVEL=0',
        '--to', 'x@example.test',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('TLS started with cipher TLSv1:');
      await legacy.waitForLog(/TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1 with cipher/);
      expect(await legacy.waitForMessages(1)).toHaveLength(1);
    } finally {
      await legacy.stop();
    }
  });
});

describe('smtp-sink', () => {
  it('stores a message from swaks byte for byte (LF line ends) with its envelope', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${sink.port}`, '--ehlo', 'device.local',
      '--from', 'doorphone@example.org', '--to', 'owner@example.test,second@example.test',
      '--data', `@${dataFile}`,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const [dump] = await sink.waitForMessages(1);
    expect(dump?.content).toBe(MESSAGE.replace(/\r\n/g, '\n'));
    expect(dump?.helo).toBe('device.local');
    expect(dump?.mailArgs).toMatch(/^<doorphone@example\.org>/);
    expect(dump?.rcptArgs).toEqual(['<owner@example.test>', '<second@example.test>']);
    expect(await sink.messages()).toEqual([MESSAGE.replace(/\r\n/g, '\n')]);
  });
});

describe('instances side by side', () => {
  it('runs two more Postfix instances at once and leaves no process behind after stop', async () => {
    const started = Date.now();
    const [a, b] = await Promise.all([startPostfix({ hostname: 'a.test' }), startPostfix({ hostname: 'b.test' })]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(a.port).not.toBe(b.port);
    const sendTo = (i: PostfixInstance, subject: string) =>
      swaks(['--server', `127.0.0.1:${i.port}`, '--to', 'x@example.test', '--header', `Subject: ${subject}`]);
    expect((await sendTo(a, 'to-a')).code).toBe(0);
    expect((await sendTo(b, 'to-b')).code).toBe(0);
    const [ma] = await a.waitForMessages(1);
    const [mb] = await b.waitForMessages(1);
    expect(ma).toContain('Subject: to-a');
    expect(ma).toContain('by a.test (Postfix)');
    expect(mb).toContain('Subject: to-b');
    expect(await a.messages()).toHaveLength(1);

    const pids = [...(await a.processes()), ...(await b.processes())];
    // master, qmgr, pickup, postlogd, smtpd ... of two instances
    expect(pids.length).toBeGreaterThanOrEqual(8);
    await Promise.all([a.stop(), b.stop()]);
    expect(existsSync(a.dir) || existsSync(b.dir)).toBe(false);
    expect(await a.processes()).toEqual([]);
    const alive = pids.filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return !/^\d+ \(.*\) [ZX]/.test(stat);
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
    const refused = await swaks(['--server', `127.0.0.1:${a.port}`, '--to', 'x@example.test'], { timeoutMs: 10_000 });
    expect(refused.code).not.toBe(0);
  });
});
