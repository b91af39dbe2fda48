// ClientHellos captured from real clients (openssl s_client 3.0 with -tls1 .. -tls1_3, Python ssl pinned
// to TLS 1.0): the parser must name the version, suites and SNI a user would see in the log.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bytesStillNeeded, cipherName, describeOffer, sniffClientHello } from '../../../src/listener/client-hello.js';

const fixture = (name: string) =>
  Buffer.from(readFileSync(new URL(`../../fixtures/client-hello/${name}.hex`, import.meta.url), 'utf8').replace(/\s+/g, ''), 'hex');

describe('sniffClientHello on captured ClientHellos', () => {
  it('openssl s_client -tls1 -cipher DEFAULT:@SECLEVEL=0 -servername doorphone.example', () => {
    const buf = fixture('openssl-tls1');
    expect(bytesStillNeeded(buf)).toBe(0);
    expect(describeOffer(sniffClientHello(buf))).toEqual({
      version: 'TLSv1',
      ciphers: [
        'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA',
        'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
        'TLS_DHE_RSA_WITH_AES_256_CBC_SHA',
        'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA',
        'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
        'TLS_DHE_RSA_WITH_AES_128_CBC_SHA',
        'TLS_RSA_WITH_AES_256_CBC_SHA',
        'TLS_RSA_WITH_AES_128_CBC_SHA',
        'TLS_EMPTY_RENEGOTIATION_INFO_SCSV',
      ],
      sni: 'doorphone.example',
    });
  });

  it('openssl s_client -tls1_1: TLS 1.1, no SNI', () => {
    const r = sniffClientHello(fixture('openssl-tls1_1'));
    expect(r.kind).toBe('client-hello');
    if (r.kind !== 'client-hello') return;
    expect(r.hello).toMatchObject({ highestVersion: 'TLSv1.1', legacyVersion: 'TLSv1.1', supportedVersions: [], sni: null, truncated: false });
  });

  it('openssl s_client -tls1_2: TLS 1.2 suites named, no TLS 1.3 suites', () => {
    const r = sniffClientHello(fixture('openssl-tls1_2'));
    if (r.kind !== 'client-hello') throw new Error(r.kind);
    expect(r.hello.highestVersion).toBe('TLSv1.2');
    expect(r.hello.ciphers).toContain('TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384');
    expect(r.hello.ciphers).toContain('TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256');
    expect(r.hello.ciphers).not.toContain('TLS_AES_128_GCM_SHA256');
    expect(r.hello.sni).toBe('mail.example.net');
  });

  it('openssl s_client -tls1_3: the version comes from supported_versions, legacy_version stays TLS 1.2', () => {
    const r = sniffClientHello(fixture('openssl-tls1_3'));
    if (r.kind !== 'client-hello') throw new Error(r.kind);
    expect(r.hello).toMatchObject({ highestVersion: 'TLSv1.3', legacyVersion: 'TLSv1.2', supportedVersions: ['TLSv1.3'] });
    expect(r.hello.ciphers).toEqual(['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256', 'TLS_EMPTY_RENEGOTIATION_INFO_SCSV']);
  });

  it('openssl s_client default: offers 1.3 down to 1.0 in supported_versions', () => {
    const r = sniffClientHello(fixture('openssl-default'));
    if (r.kind !== 'client-hello') throw new Error(r.kind);
    expect(r.hello.supportedVersions).toEqual(['TLSv1.3', 'TLSv1.2', 'TLSv1.1', 'TLSv1']);
    expect(r.hello.highestVersion).toBe('TLSv1.3');
  });

  it('Python ssl pinned to TLS 1.0 with SNI', () => {
    const o = describeOffer(sniffClientHello(fixture('python-tls1')));
    expect(o).toMatchObject({ version: 'TLSv1', sni: 'doorphone.local' });
    expect(o?.ciphers).toContain('TLS_RSA_WITH_AES_128_CBC_SHA');
  });
});

describe('partial and foreign input', () => {
  it('a ClientHello cut short: says how much is missing, and shows what could be read', () => {
    const full = fixture('openssl-tls1');
    const part = full.subarray(0, 60);
    expect(bytesStillNeeded(part)).toBe(full.length - 60);
    expect(bytesStillNeeded(full.subarray(0, 3))).toBe(2);
    const r = sniffClientHello(part);
    if (r.kind !== 'client-hello') throw new Error(r.kind);
    expect(r.hello.truncated).toBe(true);
    expect(r.hello.highestVersion).toBe('TLSv1');
    expect(r.hello.ciphers.slice(0, 2)).toEqual(['TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA']);
  });

  it('every prefix of a real ClientHello parses without throwing', () => {
    const full = fixture('openssl-default');
    for (let n = 0; n <= full.length; n++) expect(() => sniffClientHello(full.subarray(0, n))).not.toThrow();
  });

  it('plaintext SMTP on an implicit-TLS port is reported as not TLS', () => {
    expect(sniffClientHello(Buffer.from('EHLO doorphone\r\n'))).toEqual({ kind: 'not-tls', text: 'EHLO doorphone\\r\\n' });
    expect(bytesStillNeeded(Buffer.from('EHLO'))).toBe(0);
  });

  it('an SSL 2.0-format ClientHello (very old stacks) still names its version and suites', () => {
    // len 0x801b, type 1, version 3.1, 6 bytes of specs, no session id, 16-byte challenge
    const specs = Buffer.from('00002f000035', 'hex');
    const hello = Buffer.concat([Buffer.from([0x80, 0x1f, 0x01, 0x03, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x10]), specs, Buffer.alloc(16)]);
    const o = describeOffer(sniffClientHello(hello));
    expect(o).toEqual({ version: 'TLSv1', ciphers: ['TLS_RSA_WITH_AES_128_CBC_SHA', 'TLS_RSA_WITH_AES_256_CBC_SHA'], sni: null, format: 'sslv2-compatible' });
  });

  it('unknown suites show as hex, GREASE is left out', () => {
    expect(cipherName(0xc0ff)).toBe('0xc0ff');
    const body = Buffer.concat([
      Buffer.from([0x01, 0x00, 0x00, 0x2b, 0x03, 0x03]),
      Buffer.alloc(32),
      Buffer.from([0x00, 0x00, 0x06, 0x0a, 0x0a, 0x13, 0x01, 0xc0, 0xff, 0x01, 0x00, 0x00, 0x00]),
    ]);
    const rec = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, body.length]), body]);
    const r = sniffClientHello(rec);
    if (r.kind !== 'client-hello') throw new Error(r.kind);
    expect(r.hello.ciphers).toEqual(['TLS_AES_128_GCM_SHA256', '0xc0ff']);
  });
});
