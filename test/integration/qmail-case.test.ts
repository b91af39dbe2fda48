// FIELD-NOTES §2 with swaks as the client: an MTA that advertises `AUTH LOGIN CRAM-MD5 PLAIN` but fails
// every CRAM-MD5 login with `535 authorization failed (#5.7.0)`. The upstream is the fake replaying qmail's
// own greeting, EHLO and failure bytes: Debian's Cyrus SASL cannot be made to offer CRAM-MD5 while only
// PLAIN/LOGIN verify (its sasldb keeps the plaintext secret, so CRAM-MD5 always works there).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { swaks } from './harness/peers.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';

const QMAIL_EHLO = ['AUTH LOGIN CRAM-MD5 PLAIN', 'STARTTLS', 'PIPELINING', 'SIZE 10485760', '8BITMIME'];
const USER = 'nokia@servidor.example';
const PASSWORD = 'e51-s3cret';

describe('the qmail that advertises CRAM-MD5 it cannot do', () => {
  let qmailPlain: FakeUpstream;
  let qmailRuled: FakeUpstream;
  let withoutRule: ProxyHandle;
  let withRule: ProxyHandle;

  const qmail = () =>
    startFakeUpstream({ greeting: '220 servidor ESMTP', ehloFirstLine: 'servidor', ehlo: QMAIL_EHLO, users: { [USER]: PASSWORD } });
  const proxy = (port: number, ehlo: object[]) =>
    startProxy({
      listeners: [{ name: 'qmail', hostname: 'proxy.test', upstream: 'qmail', ehlo }],
      upstreams: { qmail: { host: '127.0.0.1', port } },
    });
  const send = (port: number, auth: string[]) =>
    swaks([
      '--server', `127.0.0.1:${port}`,
      '--ehlo', 'nokia-e51',
      ...auth,
      '--auth-user', USER,
      '--auth-password', PASSWORD,
      '--from', USER,
      '--to', 'friend@example.test',
      '--header', 'Subject: from the phone',
    ]);

  beforeAll(async () => {
    [qmailPlain, qmailRuled] = await Promise.all([qmail(), qmail()]);
    [withoutRule, withRule] = await Promise.all([proxy(qmailPlain.port, []), proxy(qmailRuled.port, [{ 'remove-auth': 'CRAM-MD5' }])]);
  });

  afterAll(async () => {
    await Promise.all([withoutRule?.stop(), withRule?.stop()]);
    await Promise.all([qmailPlain?.stop(), qmailRuled?.stop()]);
  });

  it('without the rule, the client picks CRAM-MD5 and the login fails with qmail\'s own 535', async () => {
    // Like the Nokia E51: the strongest mechanism offered, and nothing else.
    const phone = await send(withoutRule.port, ['--auth', 'CRAM-MD5']);
    expect(phone.code).not.toBe(0);
    expect(phone.stdout).toMatch(/^<-\s+250-AUTH LOGIN CRAM-MD5 PLAIN$/m);
    expect(phone.stdout).toMatch(/^ -> AUTH CRAM-MD5$/m);
    expect(phone.stdout).toMatch(/^<\*\* 535 authorization failed \(#5\.7\.0\)$/m);
    expect(phone.stdout).not.toMatch(/^ -> MAIL FROM/m);
    // swaks told to use any offered mechanism also goes for CRAM-MD5 first and gets the 535; it only gets
    // in because, unlike the phone, it retries with the next mechanism.
    const any = await send(withoutRule.port, ['--auth']);
    const tried = [...any.stdout.matchAll(/^ -> (AUTH \S+)$/gm)].map((m) => m[1]);
    expect(tried).toEqual(['AUTH CRAM-MD5', 'AUTH LOGIN']);
    expect(any.stdout).toMatch(/^<\*\* 535 authorization failed \(#5\.7\.0\)$/m);
  });

  it('with remove-auth: CRAM-MD5, swaks (any mechanism) logs in with LOGIN and the message is delivered', async () => {
    const r = await send(withRule.port, ['--auth']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^<-\s+250-AUTH LOGIN PLAIN$/m);
    expect(r.stdout).not.toMatch(/CRAM-MD5/);
    expect(r.stdout).toMatch(/^ -> AUTH LOGIN$/m);
    expect(r.stdout).toMatch(/^<-\s+235 /m);
    expect(r.stdout).toMatch(/^<-\s+250 2\.0\.0 Ok: queued/m);

    const [up] = qmailRuled.connections;
    expect(up.messages).toHaveLength(1);
    expect(up.messages[0].toString('latin1')).toContain('Subject: from the phone\r\n');
    // Passthrough: the AUTH exchange reached qmail exactly as swaks sent it.
    const sent = [...r.stdout.matchAll(/^ -> (.*)$/gm)].map((m) => m[1]);
    const from = sent.indexOf('AUTH LOGIN');
    expect(sent.slice(from, from + 3)).toEqual([
      'AUTH LOGIN',
      Buffer.from(USER).toString('base64'),
      Buffer.from(PASSWORD).toString('base64'),
    ]);
    const atUp = up.commands.indexOf('AUTH LOGIN');
    expect(up.commands.slice(atUp, atUp + 3)).toEqual(sent.slice(from, from + 3));
    expect(up.commands.some((l) => /CRAM/.test(l))).toBe(false);
  });
});
