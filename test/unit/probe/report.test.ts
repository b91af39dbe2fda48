// The verdict, the suggested config and the text report, from probe results built by hand (no sockets).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { analyse, renderText } from '../../../src/probe/report.js';
import type { ProbeReport } from '../../../src/probe/types.js';

type Facts = Omit<ProbeReport, 'findings' | 'verdict' | 'suggestedConfig'>;

const FIXTURES = join(import.meta.dirname, '../../fixtures/probe');
const ALERT = 'TLS alert protocol_version (ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION)';

// The provider of FIELD-NOTES section 1 after it hardened its submission server.
const PLALA_EHLO = ['AUTH=LOGIN PLAIN', 'AUTH LOGIN PLAIN', 'PIPELINING', 'DSN', '8BITMIME', 'SIZE 20971520'];

function hardenedProvider(): Facts {
  return {
    target: { host: 'msc12.plala.or.jp', port: 587, mode: 'starttls', servername: 'msc12.plala.or.jp' },
    greeting: ['msc12.plala.or.jp ESMTP'],
    greetingCode: 220,
    starttlsOffered: true,
    ehlo: { beforeTls: [...PLALA_EHLO, 'STARTTLS'], afterTls: PLALA_EHLO },
    auth: { beforeTls: ['LOGIN', 'PLAIN'], afterTls: ['LOGIN', 'PLAIN'] },
    tls: {
      TLSv1: { accepted: false, error: ALERT },
      'TLSv1.1': { accepted: false, error: ALERT },
      'TLSv1.2': { accepted: true, cipher: 'ECDHE-RSA-AES256-GCM-SHA384' },
      'TLSv1.3': { accepted: true, cipher: 'TLS_AES_256_GCM_SHA384' },
    },
    certificate: {
      chain: [
        {
          subject: 'CN=msc12.plala.or.jp',
          issuer: 'C=JP, O=Example Trust, CN=Example RSA CA',
          subjectAltNames: ['DNS:msc12.plala.or.jp'],
          validFrom: '2026-01-01T00:00:00.000Z',
          validTo: '2027-01-01T00:00:00.000Z',
          serialNumber: '1000',
          fingerprint256: 'AA:BB',
        },
      ],
      expired: false,
      notYetValid: false,
      verified: true,
      trustedBy: 'system CAs',
      checkedName: 'msc12.plala.or.jp',
      hostnameMatch: true,
      protocol: 'TLSv1.3',
      cipher: 'TLS_AES_256_GCM_SHA384',
    },
    authResults: null,
    notes: [],
  };
}

function legacyFriendly(): Facts {
  const f = hardenedProvider();
  f.tls.TLSv1 = { accepted: true, cipher: 'ECDHE-RSA-AES256-SHA' };
  f.tls['TLSv1.1'] = { accepted: true, cipher: 'ECDHE-RSA-AES256-SHA' };
  f.ehlo.afterTls = ['AUTH LOGIN PLAIN CRAM-MD5', 'PIPELINING'];
  f.auth = { beforeTls: [], afterTls: ['LOGIN', 'PLAIN', 'CRAM-MD5'] };
  return f;
}

const ENV = { DEVICE_PASSWORD: 'ring-ring', UPSTREAM_PASSWORD: 'himitsunokotoba' };
const load = (yaml: string) => parseConfig(yaml, '/etc/mailshim/mailshim.yaml', ENV, () => '');

describe('verdict for a legacy device', () => {
  it('says what the hardened provider of FIELD-NOTES 1 means for a TLS 1.0 / CRAM-MD5 device', () => {
    const a = analyse(hardenedProvider());
    expect(a.verdict).toBe(
      'A TLS 1.0-only client cannot use STARTTLS here; CRAM-MD5 is not offered; ' +
        'route it through a mailshim listener with tls.minVersion TLSv1 and auth.mode local.',
    );
    expect(a.findings).toContain(
      'A TLS 1.0-only client cannot use STARTTLS here, nor can a TLS 1.1 one (TLS alert protocol_version). The oldest version the server accepts is TLS 1.2.',
    );
    expect(a.findings).toContain('CRAM-MD5 and DIGEST-MD5 are not offered (mechanisms: LOGIN PLAIN).');
    expect(a.findings.some((f) => /LOGIN and PLAIN are offered before TLS/.test(f))).toBe(true);
  });

  it('needs no mailshim when TLS 1.0 and CRAM-MD5 both work and the certificate verifies', () => {
    const a = analyse(legacyFriendly());
    expect(a.verdict).toBe('A legacy client with TLS 1.0 and CRAM-MD5 can use this server directly.');
    expect(a.findings).toContain('AUTH is offered only after STARTTLS.');
    expect(a.findings).toContain('TLS 1.0 clients can use STARTTLS here (cipher ECDHE-RSA-AES256-SHA).');
  });

  it('names an expired certificate with its date', () => {
    const f = legacyFriendly();
    f.certificate = { ...f.certificate!, verified: false, expired: true, verifyError: 'CERT_HAS_EXPIRED: certificate has expired' };
    f.certificate.chain[0]!.validTo = '2020-02-01T00:00:00.000Z';
    const a = analyse(f);
    expect(a.verdict).toMatch(/^Its certificate does not verify \(it expired on 2020-02-01\); a device that does not check certificates/);
    expect(a.suggestedConfig).toContain('# the certificate did not verify (CERT_HAS_EXPIRED: certificate has expired)');
  });

  it('reports a server without STARTTLS and a version this OpenSSL cannot offer', () => {
    const f = hardenedProvider();
    f.starttlsOffered = false;
    f.ehlo.afterTls = null;
    f.auth.afterTls = null;
    f.certificate = null;
    const a = analyse(f);
    expect(a.verdict).toMatch(/^The server does not offer STARTTLS; CRAM-MD5 is not offered; route it through/);

    const g = hardenedProvider();
    g.tls.TLSv1 = { accepted: false, error: 'ERR_SSL_NO_PROTOCOLS_AVAILABLE: no protocols available', localLimit: true };
    const b = analyse(g);
    expect(b.findings).toContain("This machine's OpenSSL cannot offer TLS 1.0, so the server was not asked about it.");
    expect(b.verdict).not.toMatch(/TLS 1\.0-only client cannot/);
  });
});

describe('suggested config', () => {
  it('is YAML that parseConfig accepts: TLS 1.0 + local CRAM-MD5 in front, TLS 1.2 + PLAIN behind', () => {
    const f = hardenedProvider();
    f.authUser = 'someone@somehost.plala.or.jp';
    const cfg = load(analyse(f).suggestedConfig);
    const l = cfg.listeners[0]!;
    expect(l.tls).toMatchObject({ mode: 'starttls', minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    expect(l.auth.mode).toBe('local');
    expect(l.auth.mechanisms).toContain('CRAM-MD5');
    expect(l.auth.users[0]).toMatchObject({ name: 'device', password: 'ring-ring', upstreamAccount: 'main' });
    const u = cfg.upstreams[l.upstream]!;
    expect(u).toMatchObject({ host: 'msc12.plala.or.jp', port: 587 });
    expect(u.tls).toMatchObject({ mode: 'starttls', minVersion: 'TLSv1.2', verify: true });
    expect(u.accounts.main).toEqual({ user: 'someone@somehost.plala.or.jp', password: 'himitsunokotoba' });
  });

  it('passes AUTH through when the server already offers CRAM-MD5', () => {
    const text = analyse(legacyFriendly()).suggestedConfig;
    expect(text).toMatch(/^# Not needed for a TLS 1\.0 \/ CRAM-MD5 device/);
    const cfg = load(text);
    expect(cfg.listeners[0]!.auth.mode).toBe('passthrough');
    expect(cfg.upstreams.probed!.accounts).toEqual({});
  });

  it('keeps --ca and --servername, asks for LOGIN when PLAIN is missing, and handles implicit TLS', () => {
    const f = hardenedProvider();
    f.target = { host: '192.0.2.7', port: 465, mode: 'implicit', servername: 'mail.example.net', caFile: '/etc/ssl/private-ca.pem' };
    f.auth = { beforeTls: null, afterTls: ['LOGIN'] };
    const cfg = load(analyse(f).suggestedConfig);
    const u = cfg.upstreams.probed!;
    expect(u.tls).toMatchObject({ mode: 'implicit', servername: 'mail.example.net', ca: '/etc/ssl/private-ca.pem' });
    expect(u.auth.mechanism).toBe('LOGIN');
  });

  it('says allowAuthWithoutVerifiedTls when the server has no TLS at all', () => {
    const f = hardenedProvider();
    f.target.mode = 'plain';
    f.ehlo.afterTls = null;
    f.auth.afterTls = null;
    f.certificate = null;
    const cfg = load(analyse(f).suggestedConfig);
    expect(cfg.upstreams.probed!.tls.mode).toBe('none');
    expect(cfg.upstreams.probed!.allowAuthWithoutVerifiedTls).toBe(true);
  });
});

describe('--auth results in the verdict', () => {
  const why = 'certificate did not verify: DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate; pass --ca FILE, or --insecure-auth to try anyway';

  it('says logging in was not tried, and why, instead of "no mechanism succeeded"', () => {
    const f: Facts = { ...hardenedProvider(), authUser: 'notify' };
    f.authResults = [
      { mechanism: 'LOGIN', tried: false, ok: false, overTls: true, reason: why },
      { mechanism: 'PLAIN', tried: false, ok: false, overTls: true, reason: why },
    ];
    const r = { ...f, ...analyse(f) };
    expect(r.findings).toContain(`Logging in as the given user was not tried: ${why}.`);
    expect(r.findings.join('\n')).not.toMatch(/no mechanism succeeded/);
    const text = renderText(r);
    expect(text).toContain(`AUTH as "notify" (one connection per mechanism)\n  LOGIN       skipped  ${why}\n  PLAIN       skipped  ${why}\n`);
  });

  it('puts the --insecure-auth warning first in the AUTH section and in the findings', () => {
    const f: Facts = { ...hardenedProvider(), authUser: 'notify' };
    f.authWarning = '--insecure-auth: the password was sent over TLS that did not verify (certificate did not verify: DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate)';
    f.authResults = [{ mechanism: 'LOGIN', tried: true, ok: true, overTls: true, unverifiedTls: true, detail: '235 2.7.0 Authentication successful' }];
    const r = { ...f, ...analyse(f) };
    expect(r.findings).toContain('Logging in as the given user: LOGIN succeeded.');
    expect(r.findings).toContain('The password was sent over TLS that did not verify (--insecure-auth).');
    expect(renderText(r)).toContain(`(one connection per mechanism)\n  WARNING: ${f.authWarning}\n  LOGIN       ok       235`);
  });
});

describe('text report', () => {
  it('matches the golden report for the hardened provider', () => {
    const f: Facts = { ...hardenedProvider(), authUser: 'someone@somehost.plala.or.jp' };
    f.authResults = [
      { mechanism: 'LOGIN', ok: true, tried: true, overTls: true, detail: '235 2.7.0 Authentication successful' },
      { mechanism: 'PLAIN', ok: false, tried: true, overTls: true, detail: '535 5.7.8 Error: authentication failed' },
    ];
    const text = renderText({ ...f, ...analyse(f) });
    const golden = join(FIXTURES, 'hardened-provider.txt');
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, text);
    expect(text).toBe(readFileSync(golden, 'utf8'));
    expect(text).not.toContain('himitsunokotoba');
  });
});
