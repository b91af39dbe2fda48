// PROXY protocol v1 (text) and v2 (binary), as HAProxy's proxy-protocol.txt specifies them: a pure parser
// plus a socket adapter that reads the header before any SMTP byte. A small parser of our own rather than
// a dependency: the format is fixed, short, and every byte of it is security-relevant (it decides the
// client address that allowlists and limits apply to).
import net from 'node:net';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** v1: "PROXY " ... CRLF, at most 107 bytes (spec 2.1). */
const V1_MAX = 107;
/** v2: the spec allows 65535 bytes of addresses + TLVs; nothing we use needs more than this. */
const V2_MAX_PAYLOAD = 4096;

export interface ProxyHeader {
  version: 1 | 2;
  /** 'local': the proxy's own connection (health check); use the real peer address. */
  command: 'proxy' | 'local';
  /** 'unknown' (v1 UNKNOWN, v2 UNSPEC/unix): no usable address; use the real peer address. */
  family: 'tcp4' | 'tcp6' | 'udp4' | 'udp6' | 'unknown';
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
}

export type ParseResult =
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string }
  | { status: 'ok'; header: ProxyHeader; length: number };

/** Parse a header at the start of `buf`. `incomplete` means: read more bytes and call again. */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return { status: 'incomplete' };
  // Decide the version from the first bytes we have: both signatures start with distinct bytes.
  const v2Prefix = V2_SIGNATURE.subarray(0, Math.min(buf.length, V2_SIGNATURE.length));
  if (buf.subarray(0, v2Prefix.length).equals(v2Prefix)) return buf.length < 16 ? { status: 'incomplete' } : parseV2(buf);
  const v1Prefix = Buffer.from('PROXY ');
  const n = Math.min(buf.length, v1Prefix.length);
  if (buf.subarray(0, n).equals(v1Prefix.subarray(0, n))) return parseV1(buf);
  return { status: 'invalid', reason: 'no PROXY protocol header' };
}

function parseV1(buf: Buffer): ParseResult {
  const end = buf.indexOf('\r\n');
  if (end === -1) return buf.length >= V1_MAX ? { status: 'invalid', reason: 'v1 header longer than 107 bytes' } : { status: 'incomplete' };
  if (end + 2 > V1_MAX) return { status: 'invalid', reason: 'v1 header longer than 107 bytes' };
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN') return { status: 'ok', header: { version: 1, command: 'proxy', family: 'unknown' }, length };
  if (parts.length !== 6) return { status: 'invalid', reason: 'v1 header needs protocol, two addresses and two ports' };
  const [, proto, src, dst, sport, dport] = parts;
  const want = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (!want) return { status: 'invalid', reason: `v1 protocol ${JSON.stringify(proto)} is not TCP4, TCP6 or UNKNOWN` };
  if (net.isIP(src) !== want || net.isIP(dst) !== want) return { status: 'invalid', reason: `v1 addresses are not ${proto}` };
  const sp = port(sport);
  const dp = port(dport);
  if (sp === undefined || dp === undefined) return { status: 'invalid', reason: 'v1 port is not a number from 0 to 65535' };
  return {
    status: 'ok',
    header: { version: 1, command: 'proxy', family: want === 4 ? 'tcp4' : 'tcp6', source: { address: src, port: sp }, destination: { address: dst, port: dp } },
    length,
  };
}

function port(s: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

function parseV2(buf: Buffer): ParseResult {
  if (!buf.subarray(0, 12).equals(V2_SIGNATURE)) return { status: 'invalid', reason: 'bad v2 signature' };
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return { status: 'invalid', reason: `v2 version ${verCmd >> 4} is not 2` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { status: 'invalid', reason: `v2 command ${cmd} is neither LOCAL nor PROXY` };
  const fam = buf[13];
  const len = buf.readUInt16BE(14);
  if (len > V2_MAX_PAYLOAD) return { status: 'invalid', reason: `v2 header of ${len} bytes is longer than ${V2_MAX_PAYLOAD}` };
  if (buf.length < 16 + len) return { status: 'incomplete' };
  const body = buf.subarray(16, 16 + len);
  const length = 16 + len;
  if (cmd === 0) return { status: 'ok', header: { version: 2, command: 'local', family: 'unknown' }, length };
  const af = fam >> 4;
  const proto = fam & 0x0f;
  // Spec 2.2: other address families and transports "must be rejected as invalid".
  if (af > 3) return { status: 'invalid', reason: `v2 address family ${af} is not defined` };
  if (proto > 2) return { status: 'invalid', reason: `v2 transport ${proto} is not defined` };
  if (af === 1 || af === 2) {
    const size = af === 1 ? 4 : 16;
    if (body.length < size * 2 + 4) return { status: 'invalid', reason: 'v2 address block too short' };
    const family = `${proto === 2 ? 'udp' : 'tcp'}${af === 1 ? 4 : 6}` as ProxyHeader['family'];
    if (proto !== 1 && proto !== 2) return { status: 'invalid', reason: `v2 transport ${proto} is neither STREAM nor DGRAM` };
    const ip = (off: number) => (af === 1 ? [...body.subarray(off, off + 4)].join('.') : ipv6(body.subarray(off, off + 16)));
    return {
      status: 'ok',
      header: {
        version: 2,
        command: 'proxy',
        family,
        source: { address: ip(0), port: body.readUInt16BE(size * 2) },
        destination: { address: ip(size), port: body.readUInt16BE(size * 2 + 2) },
      },
      length,
    };
  }
  // AF_UNSPEC or AF_UNIX: no IP address to use (spec: the receiver uses the real connection's address).
  return { status: 'ok', header: { version: 2, command: 'proxy', family: 'unknown' }, length };
}

function ipv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Let the URL parser produce the canonical compressed form ("::1", "::ffff:1.2.3.4" as hex groups).
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** Bytes a header may occupy at most; the adapter refuses a peer that sends more without completing one. */
export const MAX_HEADER_BYTES = 16 + V2_MAX_PAYLOAD;

export class ProxyHeaderError extends Error {
  override readonly name = 'ProxyHeaderError';
}

/**
 * Read a PROXY header from a freshly accepted socket before anything else reads it. Bytes after the
 * header (a client that talks first, a TLS ClientHello) are pushed back with unshift(), and the socket is
 * left paused for the next owner. Rejects on a malformed header, the peer closing, or `timeoutMs`.
 */
export function readProxyHeader(sock: net.Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | undefined, header?: ProxyHeader, rest?: Buffer) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('error', onError);
      sock.pause();
      if (err) reject(err);
      else {
        if (rest && rest.length > 0) sock.unshift(rest);
        resolve(header!);
      }
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = parseProxyHeader(buf);
      if (r.status === 'ok') done(undefined, r.header, buf.subarray(r.length));
      else if (r.status === 'invalid') done(new ProxyHeaderError(r.reason));
      else if (buf.length > MAX_HEADER_BYTES) done(new ProxyHeaderError('PROXY header too long'));
    };
    const onEnd = () => done(new ProxyHeaderError('connection closed before the PROXY header'));
    const onError = (e: Error) => done(new ProxyHeaderError(`connection error before the PROXY header: ${e.message}`));
    const timer = setTimeout(() => done(new ProxyHeaderError(`no PROXY header within ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('error', onError);
  });
}
