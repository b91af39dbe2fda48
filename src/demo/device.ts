// The demo's legacy client: a raw socket that talks like the doorphone of FIELD-NOTES section 1 (EHLO,
// STARTTLS with TLS 1.0 only, EHLO, AUTH CRAM-MD5, one notification) or, for section 2, like a phone that
// picks the first mechanism it likes from the EHLO reply. It reports how far it got and why it stopped.
import net from 'node:net';
import tls from 'node:tls';
import { cramMd5ClientResponse } from '../auth/mechanisms/cram-md5.js';
import { plainClientResponse } from '../auth/mechanisms/plain.js';

export type DeviceMechanism = 'CRAM-MD5' | 'PLAIN' | 'LOGIN';

export interface DeviceOptions {
  host: string;
  port: number;
  heloName: string;
  /** STARTTLS with exactly these TLS settings, or stay in plaintext. */
  starttls?: { minVersion: tls.SecureVersion; maxVersion: tls.SecureVersion; ciphers?: string; ca?: string };
  user: string;
  password: string;
  /** Mechanisms in the device's order of preference; it uses the first one the server offers. */
  mechanisms: DeviceMechanism[];
  from: string;
  to: string;
  /** Message text with LF or CRLF line ends; dot-stuffed and CRLF-terminated here. */
  message: string;
  timeoutMs?: number;
}

export interface DeviceResult {
  ok: boolean;
  /** Where it stopped: connect, greeting, ehlo, starttls, tls, auth, mail, rcpt, data, quit, done. */
  stage: string;
  /** Why it stopped (undefined when ok). */
  reason?: string;
  tls?: { version: string | null; cipher: string | null };
  mechanism?: DeviceMechanism;
  /** The server's final reply to the message. */
  dataReply?: string;
}

interface Reply {
  code: number;
  lines: string[];
}

/** Line reader over a socket that can be swapped for its TLS wrapper mid-session. */
class Conversation {
  private buf = '';
  private lines: string[] = [];
  private waiter: (() => void) | undefined;
  private ended: string | undefined;
  sock: net.Socket;

  constructor(sock: net.Socket) {
    this.sock = sock;
    this.attach(sock);
  }

  attach(sock: net.Socket): void {
    this.sock = sock;
    this.buf = '';
    this.ended = undefined;
    sock.on('data', this.onData);
    sock.on('error', this.onEnd);
    sock.on('close', this.onEnd);
  }

  detach(): net.Socket {
    this.sock.off('data', this.onData);
    this.sock.off('error', this.onEnd);
    this.sock.off('close', this.onEnd);
    return this.sock;
  }

  private onData = (chunk: Buffer): void => {
    this.buf += chunk.toString('latin1');
    let nl: number;
    while ((nl = this.buf.indexOf('\r\n')) >= 0) {
      this.lines.push(this.buf.slice(0, nl));
      this.buf = this.buf.slice(nl + 2);
    }
    this.wake();
  };

  private onEnd = (err?: unknown): void => {
    this.ended ??= err instanceof Error ? err.message : 'connection closed';
    this.wake();
  };

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  write(line: string): void {
    this.sock.write(line + '\r\n', 'latin1');
  }

  /** The next (possibly multi-line) reply. */
  async reply(timeoutMs: number): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) {
        const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
        if (!m) throw new Error(`not an SMTP reply: ${JSON.stringify(line.slice(0, 80))}`);
        lines.push(m[3]!);
        if (m[2] !== '-') return { code: Number(m[1]), lines };
        continue;
      }
      if (this.ended) throw new Error(this.ended);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }
}

class Stop extends Error {
  constructor(
    readonly stage: string,
    message: string,
  ) {
    super(message);
  }
}

function show(r: Reply): string {
  return `${r.code} ${r.lines.join(' / ')}`;
}

/** Run one device session to the end; never throws. */
export async function runDevice(o: DeviceOptions): Promise<DeviceResult> {
  const timeoutMs = o.timeoutMs ?? 15_000;
  const result: DeviceResult = { ok: false, stage: 'connect' };
  let conv: Conversation | undefined;
  const expect = async (stage: string, ok: (code: number) => boolean): Promise<Reply> => {
    result.stage = stage;
    let r: Reply;
    try {
      r = await conv!.reply(timeoutMs);
    } catch (err) {
      throw new Stop(stage, err instanceof Error ? err.message : String(err));
    }
    if (!ok(r.code)) throw new Stop(stage, `server answered ${show(r)}`);
    return r;
  };
  try {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: o.host, port: o.port }, () => resolve(s));
      s.once('error', reject);
      s.setTimeout(timeoutMs, () => s.destroy(new Error('connect timed out')));
    }).catch((err: Error) => {
      throw new Stop('connect', err.message);
    });
    sock.setTimeout(0);
    conv = new Conversation(sock);
    await expect('greeting', (c) => c === 220);
    conv.write(`EHLO ${o.heloName}`);
    let ehlo = await expect('ehlo', (c) => c === 250);

    if (o.starttls) {
      if (!ehlo.lines.some((l) => /^STARTTLS\b/i.test(l))) throw new Stop('starttls', 'server does not offer STARTTLS');
      conv.write('STARTTLS');
      await expect('starttls', (c) => c === 220);
      result.stage = 'tls';
      const raw = conv.detach();
      const t = o.starttls;
      const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({
          socket: raw,
          minVersion: t.minVersion,
          maxVersion: t.maxVersion,
          ciphers: t.ciphers,
          ca: t.ca,
          // A doorphone does not check names; with `ca` it still checks the chain.
          rejectUnauthorized: t.ca !== undefined,
          checkServerIdentity: () => undefined,
        });
        const timer = setTimeout(() => s.destroy(new Error('TLS handshake timed out')), timeoutMs);
        s.once('secureConnect', () => {
          clearTimeout(timer);
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      }).catch((err: NodeJS.ErrnoException) => {
        throw new Stop('tls', describeHandshakeError(err));
      });
      result.tls = { version: secure.getProtocol(), cipher: secure.getCipher()?.name ?? null };
      conv.attach(secure);
      conv.write(`EHLO ${o.heloName}`);
      ehlo = await expect('ehlo', (c) => c === 250);
    }

    const offered = offeredMechanisms(ehlo.lines);
    const mech = o.mechanisms.find((m) => offered.includes(m));
    if (!mech) throw new Stop('auth', `server offers none of ${o.mechanisms.join(', ')} (offered: ${offered.join(' ') || 'no AUTH'})`);
    result.mechanism = mech;
    const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
    if (mech === 'CRAM-MD5') {
      conv.write('AUTH CRAM-MD5');
      const ch = await expect('auth', (c) => c === 334);
      const challenge = Buffer.from(ch.lines[0] ?? '', 'base64');
      conv.write(b64(cramMd5ClientResponse(o.user, o.password, challenge)));
    } else if (mech === 'PLAIN') {
      conv.write(`AUTH PLAIN ${b64(plainClientResponse(o.user, o.password))}`);
    } else {
      conv.write('AUTH LOGIN');
      await expect('auth', (c) => c === 334);
      conv.write(b64(o.user));
      await expect('auth', (c) => c === 334);
      conv.write(b64(o.password));
    }
    await expect('auth', (c) => c === 235);

    conv.write(`MAIL FROM:<${o.from}>`);
    await expect('mail', (c) => c === 250);
    conv.write(`RCPT TO:<${o.to}>`);
    await expect('rcpt', (c) => c === 250 || c === 251);
    conv.write('DATA');
    await expect('data', (c) => c === 354);
    const body = o.message
      .replace(/\r?\n/g, '\r\n')
      .replace(/\r\n$/, '')
      .split('\r\n')
      .map((l) => (l.startsWith('.') ? '.' + l : l))
      .join('\r\n');
    conv.sock.write(body + '\r\n.\r\n', 'latin1');
    const final = await expect('data', (c) => c === 250);
    result.dataReply = show(final);
    conv.write('QUIT');
    await expect('quit', (c) => c === 221);
    result.stage = 'done';
    result.ok = true;
  } catch (err) {
    result.stage = err instanceof Stop ? err.stage : result.stage;
    result.reason = err instanceof Error ? err.message : String(err);
  } finally {
    conv?.sock.end();
    // Legacy stacks close without close_notify; the peer treats that as normal. Do not linger.
    const s = conv?.sock;
    if (s) setTimeout(() => s.destroy(), 500).unref();
  }
  return result;
}

/** Mechanisms from `AUTH a b c` (and the legacy `AUTH=a b c`) lines of an EHLO reply, upper case. */
export function offeredMechanisms(ehloLines: string[]): string[] {
  const out = new Set<string>();
  for (const l of ehloLines) {
    const m = /^AUTH[ =](.*)$/i.exec(l);
    if (m) for (const mech of m[1]!.trim().split(/\s+/)) if (mech) out.add(mech.toUpperCase());
  }
  return [...out];
}

function describeHandshakeError(err: NodeJS.ErrnoException): string {
  const alert = /alert ([a-z ]+)/i.exec(err.message);
  if (alert) return `TLS alert ${alert[1]!.trim().replace(/ /g, '_')}`;
  return err.code ? `${err.code}: ${err.message}` : err.message;
}
