// `mailshim trace pcap ID`: a session's cleartext streams as a classic libpcap file (LINKTYPE_RAW, IPv4 or
// IPv6) of synthesized TCP packets, so Wireshark/tshark dissect it as SMTP with no keys:
//   client:port <-> mailshim:587 (or 25)   and   mailshim:ephemeral <-> upstream:25 (or 587)
// Each conversation has a handshake, PSH/ACK segments with consistent seq/ack, and a FIN exchange.
// Server ports are 25 or 587 whatever the real ports were, because those are the ports Wireshark's SMTP
// dissector claims. After a STARTTLS upgrade the rest of that leg starts a new TCP conversation (next
// client port): in one conversation Wireshark would read everything after `220 Ready to start TLS` as TLS
// records. Lines are the transcript's, so secrets stay masked (as base64 of `********`, see MASK_B64); a body that was not captured
// (capture.body) is replaced by a one-line note.
import net from 'node:net';
import { joinData, type CaptureRecord } from './transcript.js';
import { MASK } from './redact.js';

/**
 * Masked SASL data goes into the pcap as valid base64 of the mask, so a tool that decodes AUTH lines
 * (Wireshark with smtp.decryption on) shows `********` where the secret was instead of failing to decode.
 * PLAIN carries `\0user\0password`, so its mask has that shape too (Wireshark then shows User and Pass as
 * `********`). With smtp.decryption off (the default), tshark 4.0 flags every AUTH PLAIN credential line
 * "base64 decode failed or is not enabled" whatever it holds: that note is about the preference.
 */
const MASK_B64 = Buffer.from(MASK).toString('base64'); // KioqKioqKio=
const PLAIN_MASK_B64 = Buffer.from(`\0${MASK}\0${MASK}`).toString('base64');

/** Rewrites one direction's client lines for the pcap; remembers an `AUTH PLAIN` awaiting its response. */
class MaskedSasl {
  private plainPending = false;

  line(line: string): string {
    if (line === MASK) {
      const plain = this.plainPending;
      this.plainPending = false;
      return plain ? PLAIN_MASK_B64 : MASK_B64;
    }
    const m = /^AUTH[ \t]+(\S+)(?:[ \t]+(\S+))?$/i.exec(line);
    const plain = m?.[1]!.toUpperCase() === 'PLAIN';
    this.plainPending = Boolean(plain && m![2] === undefined);
    if (m?.[2] === MASK) return line.slice(0, -MASK.length) + (plain ? PLAIN_MASK_B64 : MASK_B64);
    return line;
  }
}

const LINKTYPE_RAW = 101;
const MSS = 1400;

interface Endpoint {
  ip: string;
  port: number;
}

class Conversation {
  private open = false;
  private seqA = 0; // next seq from A (the connecting side)
  private seqB = 0;
  private generation = 0;

  constructor(
    private readonly out: Packet[],
    private a: Endpoint,
    private readonly b: Endpoint,
    private readonly isn: number,
  ) {}

  private emit(ts: number, fromA: boolean, flags: number, payload: Buffer = Buffer.alloc(0)): void {
    const [src, dst] = fromA ? [this.a, this.b] : [this.b, this.a];
    const seq = fromA ? this.seqA : this.seqB;
    const ack = flags & SYN && !(flags & ACK) ? 0 : fromA ? this.seqB : this.seqA;
    this.out.push({ ts, data: ipPacket(src, dst, tcpSegment(src, dst, seq, ack, flags, payload)) });
    const used = payload.length + (flags & (SYN | FIN) ? 1 : 0);
    if (fromA) this.seqA = (this.seqA + used) >>> 0;
    else this.seqB = (this.seqB + used) >>> 0;
  }

  private ensureOpen(ts: number): void {
    if (this.open) return;
    this.open = true;
    this.seqA = (this.isn + this.generation * 0x10000) >>> 0;
    this.seqB = (this.isn * 7 + 0x1000 + this.generation * 0x10000) >>> 0;
    this.emit(ts, true, SYN);
    this.emit(ts, false, SYN | ACK);
    this.emit(ts, true, ACK);
  }

  send(ts: number, fromA: boolean, bytes: Buffer): void {
    this.ensureOpen(ts);
    for (let off = 0; off < bytes.length; off += MSS) this.emit(ts, fromA, PSH | ACK, bytes.subarray(off, off + MSS));
  }

  close(ts: number): void {
    if (!this.open) return;
    this.emit(ts, true, FIN | ACK);
    this.emit(ts, false, FIN | ACK);
    this.emit(ts, true, ACK);
    this.open = false;
  }

  /** Close and continue on a fresh connection from the next port of side A (after STARTTLS). */
  restart(ts: number): void {
    if (!this.open) return;
    this.close(ts);
    this.generation++;
    this.a = { ip: this.a.ip, port: this.a.port >= 65535 ? 1024 : this.a.port + 1 };
  }
}

interface Packet {
  ts: number;
  data: Buffer;
}

const FIN = 0x01;
const SYN = 0x02;
const PSH = 0x08;
const ACK = 0x10;

/** The whole pcap file for one transcript. */
export function transcriptToPcap(records: CaptureRecord[]): Buffer {
  const start = records.find((r) => r.type === 'session.start') as Extract<CaptureRecord, { type: 'session.start' }> | undefined;
  const connect = records.find((r) => r.type === 'link.connect') as Extract<CaptureRecord, { type: 'link.connect' }> | undefined;
  const t0 = start ? Date.parse(start.at) : 0;
  const local = splitHostPort(start?.local);
  const clientIp = ipOr(start?.client, '192.0.2.1');
  const proxyIp = sameFamily(local?.host, clientIp) ?? (net.isIPv6(clientIp) ? '::1' : '127.0.0.1');
  const upstreamIp = ipOr(connect?.host, net.isIPv6(proxyIp) ? '2001:db8::25' : '192.0.2.25');
  const proxyUpIp = sameFamily(proxyIp, upstreamIp) ?? (net.isIPv6(upstreamIp) ? '::1' : '127.0.0.1');

  const packets: Packet[] = [];
  const clientLeg = new Conversation(packets, { ip: clientIp, port: start?.clientPort || 40000 }, { ip: proxyIp, port: smtpPort(local?.port, 587) }, 0x1000_0000);
  const upLeg = new Conversation(packets, { ip: proxyUpIp, port: 41000 }, { ip: upstreamIp, port: smtpPort(connect?.port, 25) }, 0x2000_0000);

  const clientSasl = new MaskedSasl();
  const upSasl = new MaskedSasl();
  let lastTs = t0;
  for (const r of joinData(records)) {
    const ts = t0 + r.t;
    lastTs = Math.max(lastTs, ts);
    switch (r.type) {
      case 'protocol': {
        const line = r.leg === 'client->proxy' ? clientSasl.line(r.line) : r.leg === 'proxy->upstream' ? upSasl.line(r.line) : r.line;
        const bytes = Buffer.from(r.line.startsWith('[') ? '' : line + '\r\n', 'latin1');
        if (bytes.length === 0) break; // mailshim's own notes ("[line too long, discarded]") were not on the wire
        if (r.leg === 'client->proxy') clientLeg.send(ts, true, bytes);
        else if (r.leg === 'proxy->client') clientLeg.send(ts, false, bytes);
        else if (r.leg === 'proxy->upstream') upLeg.send(ts, true, bytes);
        else upLeg.send(ts, false, bytes);
        break;
      }
      case 'link.tls':
        (r.side === 'client' ? clientLeg : upLeg).restart(ts);
        break;
      case 'data': {
        const body = bodyBytes(r);
        clientLeg.send(ts, true, body);
        upLeg.send(ts, true, body);
        break;
      }
      default:
        break;
    }
  }
  clientLeg.close(lastTs);
  upLeg.close(lastTs);
  return pcapFile(packets);
}

/** What went over the wire for one message body, or a note where it was not captured. */
function bodyBytes(r: Extract<CaptureRecord, { type: 'data' }>): Buffer {
  const text = r.text ?? '';
  if (r.captured === 'full' && !r.truncated) return Buffer.from(text, 'latin1');
  const kept = text && !text.endsWith('\r\n') ? text + '\r\n' : text;
  const note = `[mailshim: ${r.size - Buffer.byteLength(text, 'latin1')} more bytes of this message were not captured (capture.body: ${r.captured})]\r\n.\r\n`;
  return Buffer.from(kept + note, 'latin1');
}

function smtpPort(real: number | undefined, fallback: 25 | 587): number {
  return real === 25 || real === 587 ? real : fallback;
}

function splitHostPort(s: string | undefined): { host: string; port: number } | undefined {
  if (!s) return undefined;
  const i = s.lastIndexOf(':');
  if (i < 0) return undefined;
  return { host: unmap(s.slice(0, i)), port: Number(s.slice(i + 1)) };
}

function unmap(ip: string): string {
  return ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

function ipOr(host: string | undefined, fallback: string): string {
  const h = host ? unmap(host) : '';
  return net.isIP(h) ? h : fallback;
}

function sameFamily(ip: string | undefined, like: string): string | undefined {
  if (!ip || !net.isIP(ip)) return undefined;
  return net.isIPv6(ip) === net.isIPv6(like) ? ip : undefined;
}

// --- packet bytes ----------------------------------------------------------------------------------

function ipBytes(ip: string): Buffer {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  // Expand "::" then write 8 groups.
  const [head, tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return b;
}

function checksum(...parts: Buffer[]): number {
  let sum = 0;
  for (const buf of parts) {
    for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
    if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function tcpSegment(src: Endpoint, dst: Endpoint, seq: number, ack: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(src.port, 0);
  h.writeUInt16BE(dst.port, 2);
  h.writeUInt32BE(seq >>> 0, 4);
  h.writeUInt32BE(ack >>> 0, 8);
  h[12] = 5 << 4;
  h[13] = flags;
  h.writeUInt16BE(65535, 14);
  const seg = Buffer.concat([h, payload]);
  const s = ipBytes(src.ip);
  const d = ipBytes(dst.ip);
  const pseudo = s.length === 4 ? Buffer.alloc(12) : Buffer.alloc(40);
  if (s.length === 4) {
    s.copy(pseudo, 0);
    d.copy(pseudo, 4);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(seg.length, 10);
  } else {
    s.copy(pseudo, 0);
    d.copy(pseudo, 16);
    pseudo.writeUInt32BE(seg.length, 32);
    pseudo[39] = 6;
  }
  seg.writeUInt16BE(checksum(pseudo, seg), 16);
  return seg;
}

function ipPacket(src: Endpoint, dst: Endpoint, segment: Buffer): Buffer {
  const s = ipBytes(src.ip);
  const d = ipBytes(dst.ip);
  if (s.length === 4) {
    const h = Buffer.alloc(20);
    h[0] = 0x45;
    h.writeUInt16BE(20 + segment.length, 2);
    h.writeUInt16BE(0x4000, 6); // don't fragment
    h[8] = 64;
    h[9] = 6;
    s.copy(h, 12);
    d.copy(h, 16);
    h.writeUInt16BE(checksum(h), 10);
    return Buffer.concat([h, segment]);
  }
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(segment.length, 4);
  h[6] = 6;
  h[7] = 64;
  s.copy(h, 8);
  d.copy(h, 24);
  return Buffer.concat([h, segment]);
}

function pcapFile(packets: Packet[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(LINKTYPE_RAW, 20);
  const parts: Buffer[] = [head];
  for (const p of packets) {
    const rec = Buffer.alloc(16);
    const us = Math.round(p.ts * 1000);
    rec.writeUInt32LE(Math.floor(us / 1e6), 0);
    rec.writeUInt32LE(us % 1e6, 4);
    rec.writeUInt32LE(p.data.length, 8);
    rec.writeUInt32LE(p.data.length, 12);
    parts.push(rec, p.data);
  }
  return Buffer.concat(parts);
}
