// One probe connection: a strictly sequential SMTP client (send a command, wait for its reply) over a
// plain or TLS socket. The probe never pipelines, so replies need no bookkeeping beyond one queue.
import type net from 'node:net';
import type tls from 'node:tls';
import { ReplyParser } from '../protocol/reply-parser.js';
import { formatCapability, parseEhlo } from '../protocol/capabilities.js';
import { connectTcp, DialError, upgradeToTls, type UpstreamTlsOptions } from '../upstream/dial.js';
import type { Capability, SmtpReply } from '../types.js';

export class ProbeError extends Error {}

export interface Ehlo {
  reply: SmtpReply;
  caps: Capability[];
  /** Capability lines as the server wrote them (after the first line). */
  lines: string[];
}

export class Dialogue {
  private parser = new ReplyParser();
  private replies: SmtpReply[] = [];
  private waiter: ((r: SmtpReply | Error) => void) | null = null;
  private failure: Error | null = null;

  private constructor(
    private socket: net.Socket | tls.TLSSocket,
    private readonly timeoutMs: number,
  ) {
    this.attach(socket);
  }

  /** TCP connect; throws DialError (stage 'connect') when the host cannot be reached. */
  static async open(host: string, port: number, timeoutMs: number): Promise<Dialogue> {
    return new Dialogue(await connectTcp(host, port, timeoutMs), timeoutMs);
  }

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const r of this.parser.push(chunk)) this.deliver(r);
      } catch (err) {
        this.fail(err as Error);
      }
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new ProbeError('the server closed the connection')));
  }

  private detach(socket: net.Socket | tls.TLSSocket): void {
    socket.removeAllListeners('data');
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
  }

  private deliver(r: SmtpReply): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(r);
    } else this.replies.push(r);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(err);
    }
  }

  /** The next reply from the server (the greeting first). */
  read(): Promise<SmtpReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new ProbeError(`no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
    });
  }

  async command(line: string): Promise<SmtpReply> {
    if (this.failure) throw this.failure;
    this.socket.write(line + '\r\n');
    return this.read();
  }

  async ehlo(name: string): Promise<Ehlo> {
    const reply = await this.command(`EHLO ${name}`);
    if (reply.code !== 250) return { reply, caps: [], lines: [] };
    const parsed = parseEhlo(reply);
    return { reply, caps: parsed.caps, lines: parsed.caps.map(formatCapability) };
  }

  /** TLS handshake on the current socket (right after connect, or after a 220 to STARTTLS). */
  async startTls(opts: UpstreamTlsOptions): Promise<tls.TLSSocket> {
    const plain = this.socket;
    this.detach(plain);
    // The server must not speak before the handshake; anything buffered would be injected plaintext.
    this.parser.reset();
    this.replies = [];
    try {
      const { socket } = await upgradeToTls(plain, opts, this.timeoutMs);
      this.socket = socket;
      this.attach(socket);
      return socket;
    } catch (err) {
      plain.destroy();
      this.failure = err as Error;
      throw err;
    }
  }

  /** QUIT politely when the connection is still usable, then close. Never throws. */
  async close(): Promise<void> {
    if (!this.failure) {
      try {
        this.socket.write('QUIT\r\n');
        await this.read();
      } catch {
        // closing anyway
      }
    }
    this.socket.destroy();
  }
}

/** "TLS alert protocol_version (...)" from an upgradeToTls failure, without its "TLS handshake failed: " prefix. */
export function errorText(err: unknown): string {
  if (err instanceof DialError) return err.message.replace(/^TLS handshake failed: /, '');
  return err instanceof Error ? err.message : String(err);
}
