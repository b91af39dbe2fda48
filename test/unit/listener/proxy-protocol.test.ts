import net from 'node:net';
import { describe, it, expect, afterEach } from 'vitest';
import { parseProxyHeader, readProxyHeader, V2_SIGNATURE } from '../../../src/listener/proxy-protocol.js';

/** A v2 header as HAProxy's send-proxy-v2 writes it (spec 2.2). */
function v2(opts: { cmd?: number; fam: number; addr: Buffer; tlv?: Buffer }): Buffer {
  const payload = Buffer.concat([opts.addr, opts.tlv ?? Buffer.alloc(0)]);
  const head = Buffer.alloc(4);
  head[0] = 0x20 | (opts.cmd ?? 1);
  head[1] = opts.fam;
  head.writeUInt16BE(payload.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, payload]);
}

function v4addr(src: string, dst: string, sp: number, dp: number): Buffer {
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => (b[i] = Number(o)));
  dst.split('.').forEach((o, i) => (b[4 + i] = Number(o)));
  b.writeUInt16BE(sp, 8);
  b.writeUInt16BE(dp, 10);
  return b;
}

describe('PROXY v1', () => {
  it('parses TCP4 and says how many bytes the header took', () => {
    const buf = Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.1 56324 587\r\nEHLO x\r\n');
    const r = parseProxyHeader(buf);
    expect(r).toEqual({
      status: 'ok',
      header: { version: 1, command: 'proxy', family: 'tcp4', source: { address: '192.0.2.10', port: 56324 }, destination: { address: '198.51.100.1', port: 587 } },
      length: 46,
    });
    expect(buf.subarray(46).toString()).toBe('EHLO x\r\n');
  });

  it('parses TCP6 and UNKNOWN', () => {
    const r = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1000 25\r\n'));
    expect(r.status === 'ok' && r.header.source).toEqual({ address: '2001:db8::1', port: 1000 });
    const u = parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'));
    expect(u).toEqual({ status: 'ok', header: { version: 1, command: 'proxy', family: 'unknown' }, length: 15 });
  });

  it('waits for more bytes at every split point of a valid header', () => {
    const full = Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.1 56324 587\r\n');
    for (let i = 1; i < full.length; i++) expect(parseProxyHeader(full.subarray(0, i)).status).toBe('incomplete');
  });

  it('refuses SMTP without a header, bad addresses, bad ports, a mismatched family and overlong lines', () => {
    expect(parseProxyHeader(Buffer.from('EHLO client\r\n'))).toMatchObject({ status: 'invalid' });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 999.0.2.10 198.51.100.1 1 2\r\n'))).toMatchObject({ status: 'invalid' });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.1 65536 2\r\n'))).toMatchObject({ status: 'invalid' });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.1 01 2\r\n'))).toMatchObject({ status: 'invalid' });
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 192.0.2.10 198.51.100.1 1 2\r\n'))).toMatchObject({ status: 'invalid' });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 ' + '1'.repeat(120)))).toMatchObject({ status: 'invalid' });
  });
});

describe('PROXY v2', () => {
  it('rejects an undefined address family or transport (spec 2.2: "must be rejected as invalid")', () => {
    expect(parseProxyHeader(v2({ fam: 0x51, addr: v4addr('203.0.113.7', '10.0.0.5', 40000, 2525) }))).toMatchObject({ status: 'invalid' });
    expect(parseProxyHeader(v2({ fam: 0x13, addr: v4addr('203.0.113.7', '10.0.0.5', 40000, 2525) }))).toMatchObject({ status: 'invalid' });
  });

  it('parses a TCP4 PROXY header with TLVs', () => {
    const tlv = Buffer.from([0x04, 0x00, 0x02, 0x41, 0x42]); // PP2_TYPE_NOOP
    const buf = Buffer.concat([v2({ fam: 0x11, addr: v4addr('203.0.113.7', '10.0.0.5', 40000, 2525), tlv }), Buffer.from('rest')]);
    const r = parseProxyHeader(buf);
    expect(r).toMatchObject({ status: 'ok', header: { version: 2, command: 'proxy', family: 'tcp4', source: { address: '203.0.113.7', port: 40000 }, destination: { address: '10.0.0.5', port: 2525 } } });
    expect(r.status === 'ok' && buf.subarray(r.length).toString()).toBe('rest');
  });

  it('parses TCP6 into the compressed form', () => {
    const a = Buffer.alloc(36);
    a[15] = 1; // ::1
    a[16] = 0x20; a[17] = 0x01; a[18] = 0x0d; a[19] = 0xb8; a[31] = 2; // 2001:db8::2
    a.writeUInt16BE(1234, 32);
    a.writeUInt16BE(25, 34);
    const r = parseProxyHeader(v2({ fam: 0x21, addr: a }));
    expect(r).toMatchObject({ status: 'ok', header: { family: 'tcp6', source: { address: '::1', port: 1234 }, destination: { address: '2001:db8::2', port: 25 } } });
  });

  it('LOCAL carries no client (the proxy checks health); UNSPEC neither', () => {
    expect(parseProxyHeader(v2({ cmd: 0, fam: 0, addr: Buffer.alloc(0) }))).toEqual({ status: 'ok', header: { version: 2, command: 'local', family: 'unknown' }, length: 16 });
    expect(parseProxyHeader(v2({ fam: 0, addr: Buffer.alloc(0) }))).toMatchObject({ status: 'ok', header: { command: 'proxy', family: 'unknown' } });
  });

  it('waits at every split point, refuses a wrong version, command, short address block or huge length', () => {
    const full = v2({ fam: 0x11, addr: v4addr('203.0.113.7', '10.0.0.5', 1, 2) });
    for (let i = 1; i < full.length; i++) expect(parseProxyHeader(full.subarray(0, i)).status).toBe('incomplete');
    const badVer = Buffer.from(full);
    badVer[12] = 0x11;
    expect(parseProxyHeader(badVer)).toMatchObject({ status: 'invalid' });
    const badCmd = Buffer.from(full);
    badCmd[12] = 0x22;
    expect(parseProxyHeader(badCmd)).toMatchObject({ status: 'invalid' });
    expect(parseProxyHeader(v2({ fam: 0x11, addr: Buffer.alloc(6) }))).toMatchObject({ status: 'invalid' });
    const huge = Buffer.from(full);
    huge.writeUInt16BE(60000, 14);
    expect(parseProxyHeader(huge)).toMatchObject({ status: 'invalid' });
  });
});

describe('readProxyHeader on a socket', () => {
  let server: net.Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  async function pair(): Promise<{ client: net.Socket; accepted: net.Socket }> {
    let accept!: (s: net.Socket) => void;
    const got = new Promise<net.Socket>((r) => (accept = r));
    server = net.createServer((s) => accept(s));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    return { client, accepted: await got };
  }

  it('reads a header split over writes and leaves the following bytes for the next reader', async () => {
    const { client, accepted } = await pair();
    const reading = readProxyHeader(accepted, 2000);
    client.write('PROXY TCP4 192.0.2.1 ');
    await new Promise((r) => setTimeout(r, 30));
    client.write('192.0.2.2 1111 25\r\nEHLO after-header\r\n');
    const h = await reading;
    expect(h.source).toEqual({ address: '192.0.2.1', port: 1111 });
    const rest = await new Promise<string>((resolve) => {
      accepted.once('data', (d) => resolve(d.toString()));
      accepted.resume();
    });
    expect(rest).toBe('EHLO after-header\r\n');
    client.destroy();
    accepted.destroy();
  });

  it('rejects a peer that sends SMTP instead of a header, and one that sends nothing in time', async () => {
    const a = await pair();
    const r1 = readProxyHeader(a.accepted, 2000);
    a.client.write('EHLO spoofer\r\n');
    await expect(r1).rejects.toThrow(/no PROXY protocol header/);
    a.client.destroy();
    a.accepted.destroy();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    const b = await pair();
    await expect(readProxyHeader(b.accepted, 100)).rejects.toThrow(/within 100 ms/);
    b.client.destroy();
    b.accepted.destroy();
  });
});
