// `mailshim probe` against real Postfix instances on loopback and against a mailshim listener.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { App } from '../../src/app.js';
import { run } from '../../src/cli/probe.js';
import { parseConfig } from '../../src/config/load.js';
import { createCerts, type TestCerts } from './harness/certs.js';
import { freePort } from './harness/ports.js';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/probe');

let certs: TestCerts;
/** The hardened provider of FIELD-NOTES 1: TLS 1.2+, PLAIN LOGIN only after STARTTLS, implicit TLS too. */
let modern: PostfixInstance;
/** An old-style server: TLS 1.0+, CRAM-MD5 and DIGEST-MD5. */
let legacy: PostfixInstance;
/** A server whose certificate expired in 2020. */
let expired: PostfixInstance;
/** A server with a self-signed certificate that no CA vouches for, and PLAIN LOGIN after STARTTLS. */
let selfSigned: PostfixInstance;
let app: App;
let appPort: number;

beforeAll(async () => {
  certs = await createCerts();
  [modern, legacy, expired, selfSigned] = await Promise.all([
    startPostfix({
      hostname: 'smtp.provider.test',
      domain: 'provider.test',
      tls: { ...certs.server, protocols: '>=TLSv1.2', wrapperPort: true },
      sasl: { users: [{ user: 'notify', password: 'n0tify-secret' }], mechanisms: 'PLAIN LOGIN', requireTls: true },
    }),
    startPostfix({
      hostname: 'old.example.test',
      // Debian's OpenSSL 3 needs the security level lowered in the cipher list as well as the protocol floor.
      tls: { ...certs.server, protocols: '>=TLSv1', cipherList: 'DEFAULT:@SECLEVEL=0' },
      sasl: { users: [{ user: 'doorphone', password: 'ring-ring' }], mechanisms: 'PLAIN LOGIN CRAM-MD5 DIGEST-MD5' },
    }),
    startPostfix({ hostname: 'stale.example.test', tls: { ...certs.expired } }),
    startPostfix({
      hostname: 'self.example.test',
      tls: { ...certs.selfSigned },
      sasl: { users: [{ user: 'notify', password: 'n0tify-secret' }], mechanisms: 'PLAIN LOGIN', requireTls: true },
    }),
  ]);
  const yaml = `
listeners:
  - name: doorphone
    listen: 127.0.0.1:0
    hostname: mailshim.test
    tls: { mode: starttls, cert: ${certs.server.cert}, key: ${certs.server.key}, minVersion: TLSv1, ciphers: "DEFAULT:@SECLEVEL=0" }
    upstream: provider
    auth:
      mode: local
      mechanisms: [CRAM-MD5, LOGIN, PLAIN]
      users:
        - { name: doorphone, password: ring-ring, upstreamAccount: notify }
    ehlo:
      - add-auth-equals: true
upstreams:
  provider:
    host: 127.0.0.1
    port: ${modern.port}
    tls: { mode: starttls, ca: ${certs.ca.cert} }
    accounts:
      notify: { user: notify, password: n0tify-secret }
log: { level: silent }
`;
  app = await App.start(parseConfig(yaml, join(certs.dir, 'mailshim.yaml'), {}));
  appPort = app.listeners[0]!.address().port;
});

afterAll(async () => {
  await app?.stop(1000);
  await Promise.all([modern?.stop(), legacy?.stop(), expired?.stop(), selfSigned?.stop()]);
  await certs?.cleanup();
});

async function probe(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await run([...args, '--timeout', '5000'], {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
    stdin: process.stdin,
  });
  return { code, stdout, stderr };
}

async function probeJson(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = await probe([...args, '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  return reportSchema.parse(JSON.parse(r.stdout));
}

// The --json contract, written independently of src/probe/types.ts.
const tlsResult = z
  .object({ accepted: z.boolean(), cipher: z.string().min(1).optional(), error: z.string().min(1).optional(), localLimit: z.boolean().optional() })
  .strict()
  .refine((t) => (t.accepted ? t.cipher !== undefined && t.error === undefined : t.error !== undefined), 'accepted has a cipher, refused has an error');
const mechanisms = z.array(z.string().regex(/^[A-Z0-9-]+$/)).nullable();
const certSummary = z.object({
  subject: z.string(),
  issuer: z.string(),
  subjectAltNames: z.array(z.string()),
  validFrom: z.iso.datetime(),
  validTo: z.iso.datetime(),
  serialNumber: z.string(),
  fingerprint256: z.string().regex(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
});
const reportSchema = z.object({
  target: z.object({ host: z.string(), port: z.number().int(), mode: z.enum(['starttls', 'implicit', 'plain']), servername: z.string() }),
  greeting: z.array(z.string()).nullable(),
  greetingCode: z.number().int().nullable(),
  starttlsOffered: z.boolean(),
  tls: z.object({ TLSv1: tlsResult, 'TLSv1.1': tlsResult, 'TLSv1.2': tlsResult, 'TLSv1.3': tlsResult }).strict(),
  ehlo: z.object({ beforeTls: z.array(z.string()).nullable(), afterTls: z.array(z.string()).nullable() }),
  auth: z.object({ beforeTls: mechanisms, afterTls: mechanisms }),
  certificate: z
    .object({
      chain: z.array(certSummary).min(1),
      expired: z.boolean(),
      notYetValid: z.boolean(),
      verified: z.boolean(),
      verifyError: z.string().optional(),
      trustedBy: z.string(),
      checkedName: z.string(),
      hostnameMatch: z.boolean(),
      protocol: z.string().nullable(),
      cipher: z.string().nullable(),
    })
    .nullable(),
  authUser: z.string().optional(),
  authResults: z
    .array(
      z.union([
        z.object({ mechanism: z.string(), tried: z.literal(true), ok: z.boolean(), overTls: z.boolean(), detail: z.string(), unverifiedTls: z.literal(true).optional() }).strict(),
        z.object({ mechanism: z.string(), tried: z.literal(false), ok: z.literal(false), overTls: z.boolean(), reason: z.string().min(1) }).strict(),
      ]),
    )
    .nullable(),
  authWarning: z.string().min(1).optional(),
  notes: z.array(z.string()),
  findings: z.array(z.string()),
  verdict: z.string().min(20),
  suggestedConfig: z.string().min(1),
});

/** Replace what changes between runs (ports, temp paths, certificate dates and fingerprints, ciphers). */
function mask(text: string): string {
  return text
    .replaceAll(certs.dir, '<certs>')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
    .replace(/^(\s*port: )\d+$/gm, '$1<port>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, '<date>')
    .replace(/([0-9A-F]{2}:){31}[0-9A-F]{2}/g, '<sha256>')
    .replace(/(accepted {2})\S+/g, '$1<cipher>')
    .replace(/^(Certificate \(seen with [^,]+, )[^)]+\)/m, '$1<cipher>)');
}

function golden(name: string, text: string): void {
  const file = join(FIXTURES, name);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, text);
  expect(text).toBe(readFileSync(file, 'utf8'));
}

describe('a TLS 1.2+ server with PLAIN and LOGIN (the hardened provider)', () => {
  it('prints the text report: 1.0 and 1.1 refused with protocol_version, 1.2 accepted, PLAIN LOGIN after STARTTLS', async () => {
    const r = await probe([`127.0.0.1:${modern.port}`, '--ca', certs.ca.cert]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}TLSv1 {4}refused {3}TLS alert protocol_version/m);
    expect(r.stdout).toMatch(/^ {2}TLSv1\.1 {2}refused {3}TLS alert protocol_version/m);
    expect(r.stdout).toMatch(/^ {2}TLSv1\.2 {2}accepted {2}ECDHE-/m);
    expect(r.stdout).toContain('  after TLS:  PLAIN LOGIN');
    golden('postfix-tls12-starttls.txt', mask(r.stdout));
  });

  it('prints the same as JSON that matches the schema', async () => {
    const j = await probeJson([`127.0.0.1:${modern.port}`, '--ca', certs.ca.cert]);
    expect(j.tls.TLSv1).toEqual({ accepted: false, error: expect.stringMatching(/^TLS alert protocol_version/) });
    expect(j.tls['TLSv1.1'].accepted).toBe(false);
    expect(j.tls['TLSv1.2'].accepted).toBe(true);
    expect(j.tls['TLSv1.3']).toMatchObject({ accepted: true, cipher: expect.stringMatching(/^TLS_/) });
    expect(j.greeting).toEqual(['smtp.provider.test ESMTP Postfix']);
    expect(j.ehlo.beforeTls).toContain('STARTTLS');
    expect(j.ehlo.afterTls).toContain('AUTH PLAIN LOGIN');
    expect(j.auth).toEqual({ beforeTls: [], afterTls: ['PLAIN', 'LOGIN'] });
    expect(j.certificate).toMatchObject({ verified: true, expired: false, hostnameMatch: true, checkedName: '127.0.0.1' });
    expect(j.certificate!.chain[0]).toMatchObject({ subject: 'CN=localhost', issuer: 'CN=mailshim-test-ca' });
    expect(j.certificate!.chain[0]!.subjectAltNames).toContain('DNS:localhost');
    expect(j.verdict).toBe(
      'A TLS 1.0-only client cannot use STARTTLS here; CRAM-MD5 is not offered; route it through a mailshim listener with tls.minVersion TLSv1 and auth.mode local.',
    );
    // The suggestion is a config mailshim loads.
    const cfg = parseConfig(j.suggestedConfig, '/etc/mailshim/mailshim.yaml', { DEVICE_PASSWORD: 'x', UPSTREAM_PASSWORD: 'y' });
    expect(cfg.upstreams.probed).toMatchObject({ port: modern.port, tls: { mode: 'starttls', minVersion: 'TLSv1.2', ca: certs.ca.cert } });
  });

  it('without --ca says the certificate does not verify against the system CAs, and a wrong --servername does not match', async () => {
    const j = await probeJson([`127.0.0.1:${modern.port}`, '--servername', 'smtp.provider.test', '--auth', 'notify'], { MAILSHIM_PROBE_PASSWORD: 'n0tify-secret' });
    expect(j.certificate).toMatchObject({ verified: false, hostnameMatch: false, checkedName: 'smtp.provider.test' });
    expect(j.certificate!.trustedBy).toMatch(/system CAs|root CAs/);
    expect(j.findings.join('\n')).toMatch(/does not name smtp\.provider\.test/);
    // Neither problem lets the password out; the reason names both and what fixes each.
    const reason =
      'certificate did not verify: UNABLE_TO_VERIFY_LEAF_SIGNATURE: issuer not in the trust store, or intermediate missing; ' +
      'certificate does not name smtp.provider.test; pass --ca FILE and --servername NAME, or --insecure-auth to try anyway';
    expect(j.authResults).toEqual([
      { mechanism: 'PLAIN', tried: false, ok: false, overTls: true, reason },
      { mechanism: 'LOGIN', tried: false, ok: false, overTls: true, reason },
    ]);
  });

  it('--auth logs in with each offered mechanism over TLS and never prints the password', async () => {
    const ok = await probeJson([`127.0.0.1:${modern.port}`, '--ca', certs.ca.cert, '--auth', 'notify'], { MAILSHIM_PROBE_PASSWORD: 'n0tify-secret' });
    expect(ok.authResults).toEqual([
      { mechanism: 'PLAIN', ok: true, tried: true, overTls: true, detail: '235 2.7.0 Authentication successful' },
      { mechanism: 'LOGIN', ok: true, tried: true, overTls: true, detail: '235 2.7.0 Authentication successful' },
    ]);
    const bad = await probe([`127.0.0.1:${modern.port}`, '--ca', certs.ca.cert, '--auth', 'notify'], { MAILSHIM_PROBE_PASSWORD: 'wrong-secret' });
    expect(bad.code).toBe(0);
    expect(bad.stdout).toMatch(/^ {2}PLAIN {7}FAILED {3}535 5\.7\.8 Error: authentication failed/m);
    expect(bad.stdout + bad.stderr).not.toContain('wrong-secret');
    expect(JSON.stringify(ok)).not.toContain('n0tify-secret');
  });

  it('--auth without a password and without a terminal is a usage error', async () => {
    const r = await probe([`127.0.0.1:${modern.port}`, '--auth', 'notify']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/MAILSHIM_PROBE_PASSWORD/);
  });

  it('probes the implicit-TLS port: no plaintext phase, the greeting and EHLO after the handshake', async () => {
    const j = await probeJson([`127.0.0.1:${modern.wrapperPort}`, '--implicit', '--ca', certs.ca.cert]);
    expect(j.target.mode).toBe('implicit');
    expect(j.greeting).toEqual(['smtp.provider.test ESMTP Postfix']);
    expect(j.ehlo.beforeTls).toBeNull();
    expect(j.auth).toEqual({ beforeTls: null, afterTls: ['PLAIN', 'LOGIN'] });
    expect(j.tls.TLSv1.error).toMatch(/^TLS alert protocol_version/);
    expect(j.tls['TLSv1.2'].accepted).toBe(true);
    expect(j.verdict).toMatch(/^A TLS 1\.0-only client cannot use implicit TLS here; CRAM-MD5 is not offered;/);
    const text = await probe([`127.0.0.1:${modern.wrapperPort}`, '--implicit', '--ca', certs.ca.cert]);
    golden('postfix-tls12-implicit.txt', mask(text.stdout));
  });
});

describe('--auth against a self-signed certificate that no CA vouches for', () => {
  /** The Postfix log lines written since `from` characters; "disconnect from" lines carry per-command counts. */
  async function logSince(from: number, connections: number): Promise<string[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const lines = (await selfSigned.log()).slice(from).split('\n');
      if (lines.filter((l) => / disconnect from /.test(l)).length >= connections || Date.now() > deadline) return lines;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const env = { MAILSHIM_PROBE_PASSWORD: 'n0tify-secret' };
  // The main connection and one per TLS version; the auth connections come on top.
  const BASE_CONNECTIONS = 5;

  it('sends no AUTH command and says why, in the text and the JSON', async () => {
    const from = (await selfSigned.log()).length;
    const r = await probe([`127.0.0.1:${selfSigned.port}`, '--auth', 'notify'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}verifies: NO \(DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate\)/m);
    const why = 'certificate did not verify: DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate; pass --ca FILE, or --insecure-auth to try anyway';
    expect(r.stdout).toContain(`  PLAIN       skipped  ${why}\n  LOGIN       skipped  ${why}\n`);
    expect(r.stdout).toContain(`  - Logging in as the given user was not tried: ${why}.`);
    expect(r.stdout).not.toMatch(/WARNING/);

    const lines = await logSince(from, BASE_CONNECTIONS);
    const disconnects = lines.filter((l) => / disconnect from /.test(l));
    expect(disconnects.length).toBe(BASE_CONNECTIONS);
    // Postfix counts every command on the disconnect line ("auth=0/1" for a failed AUTH); none was AUTH.
    for (const l of disconnects) expect(l).not.toMatch(/ auth=/);
    expect(lines.join('\n')).not.toMatch(/SASL|sasl_method/);

    const j = await probeJson([`127.0.0.1:${selfSigned.port}`, '--auth', 'notify'], env);
    expect(j.authResults).toEqual([
      { mechanism: 'PLAIN', tried: false, ok: false, overTls: true, reason: why },
      { mechanism: 'LOGIN', tried: false, ok: false, overTls: true, reason: why },
    ]);
    expect(j).not.toHaveProperty('authWarning');
  });

  it('logs in when --ca makes the certificate verify', async () => {
    const from = (await selfSigned.log()).length;
    const j = await probeJson([`127.0.0.1:${selfSigned.port}`, '--ca', certs.selfSigned.cert, '--auth', 'notify'], env);
    expect(j.certificate).toMatchObject({ verified: true, hostnameMatch: true });
    expect(j.authResults).toEqual([
      { mechanism: 'PLAIN', tried: true, ok: true, overTls: true, detail: '235 2.7.0 Authentication successful' },
      { mechanism: 'LOGIN', tried: true, ok: true, overTls: true, detail: '235 2.7.0 Authentication successful' },
    ]);
    expect(j).not.toHaveProperty('authWarning');
    const lines = await logSince(from, BASE_CONNECTIONS + 2);
    expect(lines.filter((l) => / disconnect from .* auth=1 /.test(l))).toHaveLength(2);
  });

  it('tries anyway with --insecure-auth, and the report warns that the password crossed unverified TLS', async () => {
    const from = (await selfSigned.log()).length;
    const r = await probe([`127.0.0.1:${selfSigned.port}`, '--auth', 'notify', '--insecure-auth'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      '  WARNING: --insecure-auth: the password was sent over TLS that did not verify (certificate did not verify: ' +
        'DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate); anyone between this machine and the server could have read it\n' +
        '  PLAIN       ok       235 2.7.0 Authentication successful\n',
    );
    expect(r.stdout).toContain('  - The password was sent over TLS that did not verify (--insecure-auth).');
    expect(r.stdout).not.toContain('n0tify-secret');
    const lines = await logSince(from, BASE_CONNECTIONS + 2);
    expect(lines.filter((l) => / disconnect from .* auth=1 /.test(l))).toHaveLength(2);

    const j = await probeJson([`127.0.0.1:${selfSigned.port}`, '--auth', 'notify', '--insecure-auth'], env);
    expect(j.authResults!.map((a) => [a.mechanism, a.tried, a.ok])).toEqual([
      ['PLAIN', true, true],
      ['LOGIN', true, true],
    ]);
    expect(j.authResults![0]).toMatchObject({ unverifiedTls: true });
    expect(j.authWarning).toMatch(/^--insecure-auth: the password was sent over TLS that did not verify \(certificate did not verify: DEPTH_ZERO/);
  });
});

describe('an old-style server with TLS 1.0 and CRAM-MD5', () => {
  it('reports TLS 1.0 and 1.1 accepted, CRAM-MD5 offered, and needs no mailshim', async () => {
    const j = await probeJson([`127.0.0.1:${legacy.port}`, '--ca', certs.ca.cert, '--auth', 'doorphone'], { MAILSHIM_PROBE_PASSWORD: 'ring-ring' });
    expect(j.tls.TLSv1).toMatchObject({ accepted: true });
    expect(j.tls['TLSv1.1']).toMatchObject({ accepted: true });
    expect(j.auth.afterTls).toEqual(['PLAIN', 'LOGIN', 'CRAM-MD5', 'DIGEST-MD5']);
    expect(j.authResults!.map((a) => [a.mechanism, a.ok])).toEqual([
      ['PLAIN', true],
      ['LOGIN', true],
      ['CRAM-MD5', true],
      ['DIGEST-MD5', true],
    ]);
    expect(j.verdict).toBe('A legacy client with TLS 1.0 and CRAM-MD5 can use this server directly.');
  });
});

describe('a server with an expired certificate', () => {
  it('says the certificate expired, when, and that it does not verify', async () => {
    const r = await probe([`127.0.0.1:${expired.port}`, '--ca', certs.ca.cert]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('valid    2020-01-01T00:00:00.000Z .. 2020-02-01T00:00:00.000Z');
    expect(r.stdout).toContain('verifies: NO (CERT_HAS_EXPIRED: certificate has expired)');
    expect(r.stdout).toContain('expired:  YES');
    expect(r.stdout).toMatch(/its certificate does not verify \(it expired on 2020-02-01\)/);
    const j = await probeJson([`127.0.0.1:${expired.port}`, '--ca', certs.ca.cert]);
    expect(j.certificate).toMatchObject({ expired: true, verified: false, hostnameMatch: true });
  });
});

describe('a mailshim listener in front of the hardened provider', () => {
  it('shows what the device sees: TLS 1.0 accepted, the rewritten AUTH lines, CRAM-MD5 that works', async () => {
    const j = await probeJson([`127.0.0.1:${appPort}`, '--ca', certs.ca.cert, '--auth', 'doorphone'], { MAILSHIM_PROBE_PASSWORD: 'ring-ring' });
    // The provider behind it refuses TLS 1.0 (see above); the listener accepts it.
    expect(j.tls.TLSv1).toMatchObject({ accepted: true });
    expect(j.tls['TLSv1.2']).toMatchObject({ accepted: true });
    expect(j.ehlo.afterTls).toContain('AUTH CRAM-MD5 LOGIN PLAIN');
    expect(j.ehlo.afterTls).toContain('AUTH=CRAM-MD5 LOGIN PLAIN');
    expect(j.auth.afterTls).toEqual(['CRAM-MD5', 'LOGIN', 'PLAIN']);
    expect(j.authResults!.find((a) => a.mechanism === 'CRAM-MD5')).toMatchObject({ ok: true });
    expect(j.verdict).toBe('A legacy client with TLS 1.0 and CRAM-MD5 can use this server directly.');
  });
});

describe('an unreachable host', () => {
  it('exits 2 with the reason', async () => {
    const port = await freePort();
    const r = await probe([`127.0.0.1:${port}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`cannot reach 127\\.0\\.0\\.1:${port}: connect to 127\\.0\\.0\\.1:${port} failed: ECONNREFUSED`));
    expect(r.stdout).toBe('');
    const j = await probe([`127.0.0.1:${port}`, '--json']);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ reachable: false, error: expect.stringMatching(/ECONNREFUSED/) });
  });
});
