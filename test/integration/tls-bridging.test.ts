// FIELD-NOTES 1 with real peers: TLS 1.0 clients (openssl s_client, Python smtplib pinned to TLS 1.0) reach a
// Postfix that refuses anything below TLS 1.2, through every combination of none/starttls/implicit on each side.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCerts, type TestCerts } from './harness/certs.js';
import { opensslSClient, run } from './harness/peers.js';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';
import { startMailshim, type Mailshim } from './tls-helpers.js';

const MODES = ['none', 'starttls', 'implicit'] as const;
const LEGACY = 'DEFAULT:@SECLEVEL=0';

let certs: TestCerts;
let pf: PostfixInstance;
let ms: Mailshim;

beforeAll(async () => {
  certs = await createCerts();
  pf = await startPostfix({ tls: { ...certs.server, protocols: '>=TLSv1.2', wrapperPort: true } });
  const listeners = MODES.flatMap((cm) =>
    MODES.map((um) => ({
      name: `${cm}-${um}`,
      upstream: um,
      tls: { mode: cm, cert: certs.server.cert, key: certs.server.key, minVersion: 'TLSv1' },
    })),
  );
  ms = await startMailshim({
    listeners,
    upstreams: {
      none: { host: '127.0.0.1', port: pf.port },
      starttls: { host: '127.0.0.1', port: pf.port, tls: { mode: 'starttls', ca: certs.ca.cert } },
      implicit: { host: '127.0.0.1', port: pf.wrapperPort, tls: { mode: 'implicit', ca: certs.ca.cert } },
    },
  });
});

afterAll(async () => {
  await ms?.stop();
  await pf?.stop();
  await certs?.cleanup();
});

const PY = `
import smtplib, ssl, sys
mode, port, subject = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
msg = 'From: doorphone@example.org\\r\\nTo: owner@example.test\\r\\nSubject: ' + subject + '\\r\\n\\r\\nSomeone rang.\\r\\n'
s = smtplib.SMTP_SSL('127.0.0.1', port, context=ctx, timeout=15) if mode == 'implicit' else smtplib.SMTP('127.0.0.1', port, timeout=15)
s.ehlo('doorphone')
if mode == 'starttls':
    s.starttls(context=ctx)
    s.ehlo('doorphone')
if hasattr(s.sock, 'version'):
    print('TLS', s.sock.version(), s.sock.cipher()[0])
s.sendmail('doorphone@example.org', ['owner@example.test'], msg)
s.quit()
print('SENT')
`;

describe('Python smtplib pinned to TLS 1.0 -> mailshim -> Postfix (TLS 1.2+ only): every mode on each side', () => {
  for (const cm of MODES) {
    for (const um of MODES) {
      it(`client ${cm} -> upstream ${um}`, async () => {
        const name = `${cm}-${um}`;
        const before = ms.ended().length;
        const r = await run('python3', ['-c', PY, cm, String(ms.port(name)), `matrix ${name}`], { timeoutMs: 30_000 });
        expect(r.stderr).not.toMatch(/Traceback|Error:/);
        expect(r.stdout).toContain('SENT');
        if (cm !== 'none') expect(r.stdout).toMatch(/^TLS TLSv1 \S+/m);
        const d = await waitForSubject(`matrix ${name}`);
        // Postfix's own Received header says how mailshim reached it.
        if (um === 'none') expect(d.receivedHeader).not.toMatch(/using TLS/);
        else expect(d.receivedHeader).toMatch(/\(using TLSv1\.[23] with cipher \S+/);
        const s = await ms.waitFor(() => ms.ended().slice(before).find((x) => x.listener === name), 'session end');
        expect(s.result).toBe('ok');
        expect(s.messages).toBe(1);
        expect(s.clientTls?.version ?? 'none').toBe(cm === 'none' ? 'none' : 'TLSv1');
        expect(s.upstreamTls?.version ?? 'none').toMatch(um === 'none' ? /^none$/ : /^TLSv1\.[23]$/);
        // smtplib closes without close_notify after QUIT: no warning for that.
        expect(ms.events.some((e) => e.type === 'link.tls-failed' && e.sid === s.sid)).toBe(false);
        expect(ms.logs.some((l) => l.sid === s.sid && l.level >= 40)).toBe(false);
      });
    }
  }
});

describe('openssl s_client -starttls smtp -tls1 -> mailshim -> Postfix over TLS 1.2+', () => {
  for (const um of ['starttls', 'implicit'] as const) {
    it(`upstream ${um}`, async () => {
      const subject = `s_client ${um}`;
      const r = await opensslSClient(
        ['-connect', `127.0.0.1:${ms.port(`starttls-${um}`)}`, '-starttls', 'smtp', '-tls1', '-cipher', LEGACY, '-crlf'],
        [
          { waitFor: /Verify return code/ },
          { send: 'EHLO doorphone\n' },
          { waitFor: /^250 /m },
          { send: 'MAIL FROM:<doorphone@example.org>\n' },
          { waitFor: /^250 /m },
          { send: 'RCPT TO:<owner@example.test>\n' },
          { waitFor: /^250 /m },
          { send: 'DATA\n' },
          { waitFor: /^354 /m },
          { send: `Subject: ${subject}\n\nSomeone rang.\n.\n` },
          { waitFor: /^250 /m },
          { send: 'QUIT\n' },
          { waitFor: /^221 /m },
        ],
        { timeoutMs: 20_000 },
      );
      expect(r.stdout).toMatch(/Protocol\s*:\s*TLSv1\n/);
      const d = await waitForSubject(subject);
      expect(d.receivedHeader).toMatch(/\(using TLSv1\.[23] with cipher \S+/);
      const log = await pf.log();
      expect(log).toMatch(/TLS connection established (from|to) [^:]+: TLSv1\.[23] with cipher/);
      expect(log).not.toMatch(/established[^\n]*: TLSv1(\.1)? with/);
    });
  }
});

async function waitForSubject(subject: string) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = (await pf.deliveries()).find((d) => d.content.includes(`Subject: ${subject}\r\n`));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no delivery with subject ${subject}; Postfix log:\n${await pf.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
