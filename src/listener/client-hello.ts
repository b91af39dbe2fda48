// What a client offered in its TLS ClientHello: the highest version, the cipher suites by IANA name and the
// SNI name. Read from the first bytes before TLS takes the socket, so that a failed handshake can be
// explained ("the doorphone offered only TLS 1.0 with CBC-SHA suites"). Pure: bytes in, a value out.

export interface ClientHelloInfo {
  /** Highest version offered: from supported_versions when present (TLS 1.3 clients), else legacy_version. */
  highestVersion: string;
  /** ClientHello.legacy_version (client_version before TLS 1.3). */
  legacyVersion: string;
  /** The supported_versions extension, in the client's order (GREASE removed); empty when absent. */
  supportedVersions: string[];
  /** Cipher suites in the client's order: IANA names, unknown ones as 0xXXXX (GREASE removed). */
  ciphers: string[];
  /** server_name (host_name) or null. */
  sni: string | null;
  /** The record ended before the ClientHello did: what is shown is what could be read. */
  truncated: boolean;
  /** Old clients may still send the SSL 2.0-compatible ClientHello format. */
  format: 'tls' | 'sslv2-compatible';
}

export type SniffResult =
  | { kind: 'client-hello'; hello: ClientHelloInfo }
  /** Not a TLS handshake at all, e.g. plaintext SMTP on an implicit-TLS port. `text` is a printable excerpt. */
  | { kind: 'not-tls'; text: string }
  | { kind: 'malformed'; reason: string };

const VERSIONS: Record<number, string> = {
  0x0002: 'SSLv2',
  0x0300: 'SSLv3',
  0x0301: 'TLSv1',
  0x0302: 'TLSv1.1',
  0x0303: 'TLSv1.2',
  0x0304: 'TLSv1.3',
};

export function versionName(v: number): string {
  if (VERSIONS[v]) return VERSIONS[v];
  if (v >> 8 === 0x7f) return `TLSv1.3-draft-${v & 0xff}`;
  return hex(v);
}

/** Order of versions for "highest"; unknown values rank by their number. */
function rank(v: number): number {
  return v >> 8 === 0x7f ? 0x0304 : v;
}

// The suites real clients send, from the IANA TLS Cipher Suites registry. Anything else is shown as hex.
const SUITES: Record<number, string> = {
  0x0001: 'TLS_RSA_WITH_NULL_MD5',
  0x0002: 'TLS_RSA_WITH_NULL_SHA',
  0x0003: 'TLS_RSA_EXPORT_WITH_RC4_40_MD5',
  0x0004: 'TLS_RSA_WITH_RC4_128_MD5',
  0x0005: 'TLS_RSA_WITH_RC4_128_SHA',
  0x0006: 'TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5',
  0x0008: 'TLS_RSA_EXPORT_WITH_DES40_CBC_SHA',
  0x0009: 'TLS_RSA_WITH_DES_CBC_SHA',
  0x000a: 'TLS_RSA_WITH_3DES_EDE_CBC_SHA',
  0x0011: 'TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA',
  0x0012: 'TLS_DHE_DSS_WITH_DES_CBC_SHA',
  0x0013: 'TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA',
  0x0014: 'TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA',
  0x0015: 'TLS_DHE_RSA_WITH_DES_CBC_SHA',
  0x0016: 'TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA',
  0x002f: 'TLS_RSA_WITH_AES_128_CBC_SHA',
  0x0032: 'TLS_DHE_DSS_WITH_AES_128_CBC_SHA',
  0x0033: 'TLS_DHE_RSA_WITH_AES_128_CBC_SHA',
  0x0035: 'TLS_RSA_WITH_AES_256_CBC_SHA',
  0x0038: 'TLS_DHE_DSS_WITH_AES_256_CBC_SHA',
  0x0039: 'TLS_DHE_RSA_WITH_AES_256_CBC_SHA',
  0x003c: 'TLS_RSA_WITH_AES_128_CBC_SHA256',
  0x003d: 'TLS_RSA_WITH_AES_256_CBC_SHA256',
  0x0040: 'TLS_DHE_DSS_WITH_AES_128_CBC_SHA256',
  0x0041: 'TLS_RSA_WITH_CAMELLIA_128_CBC_SHA',
  0x0044: 'TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA',
  0x0045: 'TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA',
  0x0067: 'TLS_DHE_RSA_WITH_AES_128_CBC_SHA256',
  0x006a: 'TLS_DHE_DSS_WITH_AES_256_CBC_SHA256',
  0x006b: 'TLS_DHE_RSA_WITH_AES_256_CBC_SHA256',
  0x0084: 'TLS_RSA_WITH_CAMELLIA_256_CBC_SHA',
  0x0087: 'TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA',
  0x0088: 'TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA',
  0x0096: 'TLS_RSA_WITH_SEED_CBC_SHA',
  0x009c: 'TLS_RSA_WITH_AES_128_GCM_SHA256',
  0x009d: 'TLS_RSA_WITH_AES_256_GCM_SHA384',
  0x009e: 'TLS_DHE_RSA_WITH_AES_128_GCM_SHA256',
  0x009f: 'TLS_DHE_RSA_WITH_AES_256_GCM_SHA384',
  0x00a2: 'TLS_DHE_DSS_WITH_AES_128_GCM_SHA256',
  0x00a3: 'TLS_DHE_DSS_WITH_AES_256_GCM_SHA384',
  0x00ff: 'TLS_EMPTY_RENEGOTIATION_INFO_SCSV',
  0x1301: 'TLS_AES_128_GCM_SHA256',
  0x1302: 'TLS_AES_256_GCM_SHA384',
  0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
  0x1304: 'TLS_AES_128_CCM_SHA256',
  0x1305: 'TLS_AES_128_CCM_8_SHA256',
  0x5600: 'TLS_FALLBACK_SCSV',
  0xc007: 'TLS_ECDHE_ECDSA_WITH_RC4_128_SHA',
  0xc008: 'TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA',
  0xc009: 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA',
  0xc00a: 'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA',
  0xc011: 'TLS_ECDHE_RSA_WITH_RC4_128_SHA',
  0xc012: 'TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA',
  0xc013: 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
  0xc014: 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
  0xc023: 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256',
  0xc024: 'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384',
  0xc027: 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256',
  0xc028: 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384',
  0xc02b: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
  0xc02c: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
  0xc02f: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  0xc030: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  0xc09c: 'TLS_RSA_WITH_AES_128_CCM',
  0xc09d: 'TLS_RSA_WITH_AES_256_CCM',
  0xc09e: 'TLS_DHE_RSA_WITH_AES_128_CCM',
  0xc09f: 'TLS_DHE_RSA_WITH_AES_256_CCM',
  0xc0ac: 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM',
  0xc0ad: 'TLS_ECDHE_ECDSA_WITH_AES_256_CCM',
  0xcca8: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
  0xcca9: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
  0xccaa: 'TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
};

export function cipherName(id: number): string {
  return SUITES[id] ?? hex(id);
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(4, '0')}`;
}

/** RFC 8701 GREASE values (0x0a0a, 0x1a1a, ...): noise by design, left out of what we show. */
function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);
}

const RECORD_HEADER = 5;
/** A TLS record carries at most 2^14 bytes of plaintext (RFC 8446 5.1). */
const MAX_RECORD = 16384;

/**
 * How many bytes make the first record (the ClientHello) complete, given what arrived so far:
 * 0 when `buf` already holds it (or is not TLS, so waiting for more would not help).
 */
export function bytesStillNeeded(buf: Buffer): number {
  if (buf.length === 0) return 1;
  if (buf[0] !== 0x16) {
    if (buf[0] & 0x80 && buf.length >= 2) return Math.max(0, (((buf[0] & 0x7f) << 8) | buf[1]) + 2 - buf.length);
    return 0;
  }
  if (buf.length < RECORD_HEADER) return RECORD_HEADER - buf.length;
  const len = buf.readUInt16BE(3);
  if (len > MAX_RECORD) return 0;
  return Math.max(0, RECORD_HEADER + len - buf.length);
}

/** Parse the first bytes a client sent on a TLS connection. Never throws. */
export function sniffClientHello(buf: Buffer): SniffResult {
  if (buf.length === 0) return { kind: 'malformed', reason: 'no bytes' };
  if (buf[0] === 0x16) return parseTlsRecord(buf);
  if (buf[0] & 0x80 && buf.length >= 5 && buf[2] === 0x01) return parseSslv2Hello(buf);
  return { kind: 'not-tls', text: printable(buf.subarray(0, 60)) };
}

function printable(b: Buffer): string {
  return b.toString('latin1').replace(/\r\n/g, '\\r\\n').replace(/[^\x20-\x7e]/g, '.');
}

/** A bounds-checked reader: running past the end marks the result truncated instead of throwing. */
class Reader {
  pos = 0;
  short = false;
  constructor(private readonly b: Buffer) {}
  get left(): number {
    return this.b.length - this.pos;
  }
  has(n: number): boolean {
    if (this.pos + n <= this.b.length) return true;
    this.short = true;
    return false;
  }
  u8(): number | undefined {
    return this.has(1) ? this.b[this.pos++] : undefined;
  }
  u16(): number | undefined {
    if (!this.has(2)) return undefined;
    const v = this.b.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number | undefined {
    if (!this.has(3)) return undefined;
    const v = this.b.readUIntBE(this.pos, 3);
    this.pos += 3;
    return v;
  }
  /** Up to n bytes (fewer when the buffer ends first, which marks the read short). */
  bytes(n: number): Buffer {
    const end = Math.min(this.b.length, this.pos + n);
    if (end < this.pos + n) this.short = true;
    const out = this.b.subarray(this.pos, end);
    this.pos = end;
    return out;
  }
}

function parseTlsRecord(buf: Buffer): SniffResult {
  if (buf.length < RECORD_HEADER) return { kind: 'malformed', reason: 'TLS record header incomplete' };
  const recLen = buf.readUInt16BE(3);
  const body = buf.subarray(RECORD_HEADER, RECORD_HEADER + recLen);
  const r = new Reader(body);
  if (r.u8() !== 0x01) return { kind: 'malformed', reason: 'first handshake message is not a ClientHello' };
  const hsLen = r.u24();
  if (hsLen === undefined) return { kind: 'malformed', reason: 'ClientHello header incomplete' };
  const legacy = r.u16();
  if (legacy === undefined) return { kind: 'malformed', reason: 'ClientHello version missing' };
  const hello: ClientHelloInfo = {
    highestVersion: versionName(legacy),
    legacyVersion: versionName(legacy),
    supportedVersions: [],
    ciphers: [],
    sni: null,
    truncated: false,
    format: 'tls',
  };
  r.bytes(32); // random
  const sidLen = r.u8();
  if (sidLen !== undefined) r.bytes(sidLen);
  const csLen = r.u16();
  if (csLen !== undefined) {
    const cs = r.bytes(csLen);
    for (let i = 0; i + 1 < cs.length; i += 2) {
      const id = cs.readUInt16BE(i);
      if (!isGrease(id)) hello.ciphers.push(cipherName(id));
    }
  }
  const compLen = r.u8();
  if (compLen !== undefined) r.bytes(compLen);
  let best = legacy;
  const extLen = r.u16();
  if (extLen !== undefined) {
    const ext = new Reader(r.bytes(extLen));
    for (let guard = 0; guard < 512 && ext.left > 0; guard++) {
      const type = ext.u16();
      const len = ext.u16();
      if (type === undefined || len === undefined) break;
      const data = ext.bytes(len);
      if (type === 0x0000) hello.sni = parseSni(data);
      else if (type === 0x002b) {
        const versions = parseSupportedVersions(data).filter((v) => !isGrease(v));
        hello.supportedVersions = versions.map(versionName);
        for (const v of versions) if (rank(v) > rank(best)) best = v;
      }
    }
    if (ext.short) r.short = true;
  }
  hello.highestVersion = versionName(best);
  hello.truncated = r.short || buf.length < RECORD_HEADER + recLen;
  return { kind: 'client-hello', hello };
}

function parseSni(data: Buffer): string | null {
  const r = new Reader(data);
  const listLen = r.u16();
  if (listLen === undefined) return null;
  while (r.left > 0) {
    const type = r.u8();
    const len = r.u16();
    if (type === undefined || len === undefined) return null;
    const name = r.bytes(len);
    if (type === 0) return name.toString('latin1');
  }
  return null;
}

function parseSupportedVersions(data: Buffer): number[] {
  const n = data[0] ?? 0;
  const out: number[] = [];
  for (let i = 1; i + 1 < Math.min(data.length, n + 1); i += 2) out.push(data.readUInt16BE(i));
  return out;
}

/** The SSL 2.0-compatible ClientHello (RFC 5246 appendix E.2): 3-byte cipher specs, no extensions. */
function parseSslv2Hello(buf: Buffer): SniffResult {
  const r = new Reader(buf);
  r.u16(); // length with the high bit set
  r.u8(); // msg type 1
  const version = r.u16()!;
  const specLen = r.u16();
  r.u16(); // session id length
  r.u16(); // challenge length
  const ciphers: string[] = [];
  if (specLen !== undefined) {
    const specs = r.bytes(specLen);
    for (let i = 0; i + 2 < specs.length; i += 3) {
      // Specs whose first byte is 0 are TLS suites; others are SSL 2.0 kinds, shown in hex.
      ciphers.push(specs[i] === 0 ? cipherName(specs.readUInt16BE(i + 1)) : `0x${specs.subarray(i, i + 3).toString('hex')}`);
    }
  }
  return {
    kind: 'client-hello',
    hello: {
      highestVersion: versionName(version),
      legacyVersion: versionName(version),
      supportedVersions: [],
      ciphers,
      sni: null,
      truncated: r.short,
      format: 'sslv2-compatible',
    },
  };
}

/** The short form for logs and the `link.tls-failed` event. */
export interface Offered {
  version: string;
  versions?: string[];
  ciphers: string[];
  sni: string | null;
  truncated?: boolean;
  format?: 'sslv2-compatible';
  /** Set instead of the above when the client did not start a TLS handshake at all. */
  notTls?: string;
}

export function describeOffer(s: SniffResult): Offered | undefined {
  if (s.kind === 'not-tls') return { version: 'none', ciphers: [], sni: null, notTls: s.text };
  if (s.kind === 'malformed') return undefined;
  const h = s.hello;
  return {
    version: h.highestVersion,
    ...(h.supportedVersions.length > 0 ? { versions: h.supportedVersions } : {}),
    ciphers: h.ciphers,
    sni: h.sni,
    ...(h.truncated ? { truncated: true } : {}),
    ...(h.format === 'sslv2-compatible' ? { format: 'sslv2-compatible' as const } : {}),
  };
}
