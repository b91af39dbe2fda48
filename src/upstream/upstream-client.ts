// The upstream leg: its own small state machine (connect -> greeting -> [EHLO -> STARTTLS -> handshake]
// -> relay). Commands may be pipelined when the upstream offers PIPELINING; otherwise they are queued and
// written one at a time (strict towards the upstream). Replies are matched to commands in FIFO order.
import type net from 'node:net';
import type tls from 'node:tls';
import { ReplyParser, ReplyParseError } from '../protocol/reply-parser.js';
import { formatReply } from '../protocol/reply.js';
import { parseEhlo, hasCap } from '../protocol/capabilities.js';
import type { Capability, EhloReply, SmtpReply } from '../types.js';
import type { TlsInfo } from '../observe/events.js';
import { retire } from '../session/closed-socket.js';
import { connectTcp, connectTcpCb, upgradeToTls, DialError, type UpstreamTlsOptions } from './dial.js';
// Plain-TCP upstream reads land in the shared onread buffer (the reply parser copies what it keeps); that
// spares the stream path an ArrayBuffer, a Buffer and a 'data' event per read.
import { READ_BUFFER } from '../listener/fast-read.js';

export type ReplyHandler = (reply: SmtpReply) => void;

export interface UpstreamTarget {
  name: string;
  host: string;
  port: number;
  tlsMode: 'none' | 'starttls' | 'implicit';
  tls: UpstreamTlsOptions;
  ehloName: string;
  connectTimeoutMs: number;
}

/** RFC 5321 4.5.3.2 client-side timeouts for waiting on a reply. */
export const REPLY_TIMEOUT = { greeting: 300_000, command: 300_000, dataStart: 120_000, dataEnd: 600_000 } as const;

interface Pending {
  handler: ReplyHandler;
  timeoutMs: number;
  /** Called instead of `handler` when the connection breaks first (promise-based callers). */
  onFail?: (reason: string) => void;
}

export class UpstreamClient {
  /** Undefined until the TCP connection is up. */
  socket!: net.Socket | tls.TLSSocket;
  private parser = new ReplyParser();
  private pending: Pending[] = [];
  /** Commands held back because the upstream does not pipeline. */
  private held: { line: string; shown: string; p: Pending }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the oldest outstanding command must have its reply (ms since epoch); 0 when none is waiting. */
  private deadline = 0;
  private deadlineMs = 0;
  /** When the current timer fires. */
  private timerDue = 0;
  /** The capabilities of the upstream's latest EHLO reply. */
  caps: Capability[] = [];
  pipelining = false;
  tls: TlsInfo | undefined;
  closed = false;
  /** Set while the socket is handed to TLS: bytes still in hand are not ours to read. */
  private detached = false;
  /** The 'data' listener of a socket read as a stream (TLS, XCLIENT); undefined for `onread` sockets. */
  private dataListener: ((chunk: Buffer) => void) | undefined;
  bytesIn = 0;
  bytesOut = 0;

  /** A reply that answers no command (e.g. 421 before closing). */
  onUnsolicited: (reply: SmtpReply) => void = ignore;
  /** The connection ended or broke; `reason` says why, for logs and the client's reply. */
  onClose: (reason: string) => void = ignore;
  /** The TCP connection is up (before any TLS or greeting); `ms` is how long the connect took. */
  onConnected: ((ms: number) => void) | undefined;
  /** Each line as it goes out or comes in (already redacted by the caller for outgoing secrets). */
  onLine: ((dir: 'out' | 'in', line: string) => void) | undefined;

  constructor(readonly target: UpstreamTarget) {}

  /**
   * connect() with a callback. A plain-TCP upstream without XCLIENT (the common case) takes a path without
   * promises: per session they cost more than the rest of the connect in allocation and microtask work.
   */
  open(cb: (err: Error | undefined, greeting?: SmtpReply) => void): void {
    const t = this.target;
    if (t.tlsMode !== 'none' || this.xclient) {
      this.connect().then(
        (g) => cb(undefined, g),
        (err: Error) => cb(err),
      );
      return;
    }
    const started = performance.now();
    connectTcpCb(
      t.host,
      t.port,
      t.connectTimeoutMs,
      (err, sock) => {
        if (err) {
          cb(err);
          return;
        }
        this.onConnected?.(Math.round(performance.now() - started));
        if (this.closed) {
          sock!.destroy();
          cb(new DialError('client went away before the upstream answered', 'connect'));
          return;
        }
        this.attach(sock!, false);
        this.expectReply((g) => cb(undefined, g), REPLY_TIMEOUT.greeting, (reason) => cb(new DialError(reason, 'connect')));
      },
      // This socket is never handed to TLS, so it can be read without the stream machinery.
      { buffer: READ_BUFFER, callback: this.onRead },
    );
  }

  /** Connect, read the greeting and, for STARTTLS upstreams, secure the connection. Rejects with DialError. */
  async connect(): Promise<SmtpReply> {
    const t = this.target;
    const started = performance.now();
    let sock: net.Socket = await connectTcp(t.host, t.port, t.connectTimeoutMs);
    this.onConnected?.(Math.round(performance.now() - started));
    if (this.closed) {
      // The client left while we were dialling.
      sock.destroy();
      throw new DialError('client went away before the upstream answered', 'connect');
    }
    if (t.tlsMode === 'implicit') {
      const up = await upgradeToTls(sock, t.tls, t.connectTimeoutMs);
      if (this.closed) {
        up.socket.destroy();
        throw new DialError('client went away before the upstream answered', 'connect');
      }
      sock = up.socket;
      this.tls = up.info;
    }
    this.attach(sock);
    const greeting = await this.expect(REPLY_TIMEOUT.greeting);
    if (greeting.code !== 220 || t.tlsMode !== 'starttls') return this.xclientHandover(greeting);

    const ehlo = await this.request(`EHLO ${t.ehloName}`);
    if (ehlo.code !== 250) throw new DialError(`upstream refused EHLO before STARTTLS: ${oneLine(ehlo)}`, 'tls');
    if (!hasCap(parseEhlo(ehlo).caps, 'STARTTLS')) throw new DialError('upstream does not offer STARTTLS', 'tls');
    const raw = await new Promise<net.Socket>((resolve, reject) => {
      this.command(
        'STARTTLS',
        (r) => {
          if (r.code !== 220) {
            reject(new DialError(`upstream refused STARTTLS: ${oneLine(r)}`, 'tls'));
            return;
          }
          // Detach synchronously, inside the reply handler: anything the upstream sent after its 220 and
          // before the handshake is discarded, never read as a reply (STARTTLS response injection).
          const injected = this.parser.hasPartial();
          resolve(this.detach());
          if (injected) this.onLine?.('in', '[discarded bytes the upstream sent after 220 before TLS]');
        },
        { onFail: (reason) => reject(new DialError(reason, 'tls')) },
      );
    });
    this.parser = new ReplyParser();
    const up = await upgradeToTls(raw, this.target.tls, this.target.connectTimeoutMs);
    this.tls = up.info;
    this.attach(up.socket);
    this.caps = [];
    this.pipelining = false; // nothing learned before TLS is trusted after it
    return this.xclientHandover(greeting);
  }

  /** Set for `upstreams[].xclient`: the original client, announced with XCLIENT (Postfix XCLIENT_README). */
  xclient: { addr: string } | undefined;

  /**
   * EHLO, then `XCLIENT ADDR=... NAME=[UNAVAILABLE] PROTO=ESMTP` when the upstream offers it; its 220 starts
   * a new SMTP session, and that greeting is the one the client sees. An upstream that does not offer
   * XCLIENT is used as is; one that refuses it fails the connection (it was configured to expect it).
   */
  private async xclientHandover(greeting: SmtpReply): Promise<SmtpReply> {
    if (!this.xclient || greeting.code !== 220) return greeting;
    const ehlo = await this.request(`EHLO ${this.target.ehloName}`);
    const offer = parseEhlo(ehlo).caps.find((c) => c.keyword === 'XCLIENT');
    if (ehlo.code !== 250 || !offer) return greeting;
    const a = this.xclient.addr;
    const r = await this.request(`XCLIENT ADDR=${a.includes(':') ? `IPV6:${a}` : a} NAME=[UNAVAILABLE] PROTO=ESMTP`);
    if (r.code !== 220) throw new DialError(`upstream refused XCLIENT: ${oneLine(r)}`, 'connect');
    this.caps = [];
    this.pipelining = false;
    return r;
  }

  /**
   * Take over a socket: every byte in goes through the reply parser. `stream` is false for a socket opened
   * with `onread` (its bytes already come to onRead).
   */
  private attach(sock: net.Socket, stream = true): void {
    this.socket = sock;
    this.detached = false;
    if (stream) {
      this.dataListener = (chunk) => this.received(chunk);
      sock.on('data', this.dataListener);
    }
    sock.on('error', this.onError);
    sock.on('close', this.onSocketClose);
  }

  private detach(): net.Socket {
    const s = this.socket;
    this.detached = true;
    this.unlisten(s);
    return s;
  }

  private unlisten(s: net.Socket): void {
    if (this.dataListener) s.off('data', this.dataListener);
    this.dataListener = undefined;
    s.off('error', this.onError);
    s.off('close', this.onSocketClose);
  }

  /** `onread`: `n` bytes at the start of READ_BUFFER, which the next read (on any connection) overwrites. */
  private onRead = (n: number, buf: Uint8Array): boolean => {
    this.received((buf as Buffer).subarray(0, n));
    return true;
  };

  private received(chunk: Buffer): void {
    if (this.closed || this.detached) return;
    this.bytesIn += chunk.length;
    let replies: readonly SmtpReply[];
    try {
      replies = this.parser.push(chunk);
    } catch (err) {
      this.fail(err instanceof ReplyParseError ? err.message : String(err));
      return;
    }
    for (let i = 0; i < replies.length; i++) {
      const r = replies[i];
      if (this.onLine) for (const l of formatReply(r).split('\r\n')) if (l) this.onLine('in', l);
      const p = this.pending.shift();
      if (p) {
        this.armTimer();
        p.handler(r);
        if (this.detached) {
          if (i < replies.length - 1) this.onLine?.('in', '[discarded replies the upstream sent after 220 before TLS]');
          return;
        }
        this.releaseHeld();
      } else this.onUnsolicited(r);
      if (this.closed) return;
    }
  }

  private onError = (err: NodeJS.ErrnoException): void => {
    this.fail(`upstream connection error: ${err.code ?? err.message}`);
  };

  private onSocketClose = (): void => {
    this.fail('upstream closed the connection');
  };

  private fail(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.quitTimer);
    this.socket?.destroy();
    const waiting = [...this.pending, ...this.held.map((h) => h.p)];
    this.release();
    for (const p of waiting) p.onFail?.(reason);
    this.onClose(reason);
    this.forgetHooks();
  }

  /**
   * After the end nothing more is reported, so the session's hooks are dropped: a socket read through
   * `onread` keeps its callback (and so this client) for as long as V8 keeps the socket, which the hooks
   * would extend to the whole ended session.
   */
  private forgetHooks(): void {
    this.onClose = ignore;
    this.onUnsolicited = ignore;
    this.onLine = undefined;
    this.onConnected = undefined;
  }

  /**
   * One timer per connection for the reply deadline of the oldest command. Commands only move the deadline
   * (no timer allocation per command); when the timer fires early it re-arms for what is left.
   */
  private armTimer(): void {
    const head = this.pending[0];
    if (!head) {
      this.deadline = 0;
      return;
    }
    const now = Date.now();
    this.deadline = now + head.timeoutMs;
    this.deadlineMs = head.timeoutMs;
    if (!this.timer || this.deadline < this.timerDue) {
      clearTimeout(this.timer);
      this.timerDue = this.deadline;
      this.timer = setTimeout(this.onTimer, head.timeoutMs);
    }
  }

  private onTimer = (): void => {
    this.timer = undefined;
    if (this.deadline === 0 || this.closed) return;
    const left = this.deadline - Date.now();
    if (left > 0) {
      this.timerDue = this.deadline;
      this.timer = setTimeout(this.onTimer, left);
      return;
    }
    this.fail(`upstream did not answer within ${this.deadlineMs / 1000} s`);
  };

  /** Send one command; `handler` gets its reply. `shown` is the transcript form (redacted for AUTH). */
  command(line: string, handler: ReplyHandler, opts: { shown?: string; timeoutMs?: number; onFail?: (reason: string) => void } = {}): void {
    if (this.closed) {
      opts.onFail?.('upstream connection is closed');
      return;
    }
    const p: Pending = { handler, timeoutMs: opts.timeoutMs ?? REPLY_TIMEOUT.command, onFail: opts.onFail };
    const shown = opts.shown ?? line;
    if (!this.pipelining && (this.pending.length > 0 || this.held.length > 0)) {
      this.held.push({ line, shown, p });
      return;
    }
    this.writeCommand(line, shown, p);
  }

  private writeCommand(line: string, shown: string, p: Pending): void {
    this.onLine?.('out', shown);
    this.pending.push(p);
    if (this.pending.length === 1) this.armTimer();
    this.bytesOut += line.length + 2;
    this.socket.write(line + '\r\n', 'latin1');
  }

  private releaseHeld(): void {
    while (this.held.length > 0 && this.pending.length === 0 && !this.closed) {
      const h = this.held.shift()!;
      this.writeCommand(h.line, h.shown, h.p);
    }
  }

  request(line: string, opts: { shown?: string; timeoutMs?: number } = {}): Promise<SmtpReply> {
    return new Promise((resolve, reject) => {
      this.command(line, resolve, { ...opts, onFail: (reason) => reject(new DialError(reason, 'connect')) });
    });
  }

  /** Wait for a reply without sending a command (the greeting, or the reply to end of DATA). */
  expectReply(handler: ReplyHandler, timeoutMs: number, onFail?: (reason: string) => void): void {
    this.pending.push({ handler, timeoutMs, onFail });
    if (this.pending.length === 1) this.armTimer();
  }

  private expect(timeoutMs: number): Promise<SmtpReply> {
    return new Promise((resolve, reject) => {
      this.expectReply(resolve, timeoutMs, (reason) => reject(new DialError(reason, 'connect')));
    });
  }

  /** Record what the upstream's EHLO reply offered (for PIPELINING, AUTH and the client's view). */
  learnEhlo(reply: SmtpReply): EhloReply {
    const parsed = parseEhlo(reply);
    this.caps = parsed.caps;
    this.pipelining = hasCap(this.caps, 'PIPELINING');
    return parsed;
  }

  /** Message bytes; false means wait for 'drain'. */
  writeData(buf: Buffer): boolean {
    this.bytesOut += buf.length;
    return this.socket.write(buf);
  }

  /** Commands written or held that still wait for a reply. */
  get outstanding(): number {
    return this.pending.length + this.held.length;
  }

  /** Polite end: QUIT, then close when the upstream answers or after a short grace. */
  quit(): void {
    if (this.closed) return;
    if (!this.socket) {
      this.close();
      return;
    }
    this.command('QUIT', () => this.close(), { timeoutMs: 5_000, onFail: () => {} });
    this.quitTimer = setTimeout(() => this.close(), 5_000).unref();
  }

  private quitTimer: NodeJS.Timeout | undefined;

  /** Close without another byte (e.g. the client vanished mid-DATA: no final dot may ever be sent). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.quitTimer);
    this.socket?.destroy();
    this.release();
    this.forgetHooks();
  }

  /** Drop the closed socket and what is left of the dialogue (see session/closed-socket.ts for why). */
  private release(): void {
    const s = this.socket;
    if (!s) return;
    this.unlisten(s);
    this.socket = retire(s);
    this.parser.reset();
    this.pending = [];
    this.held = [];
  }
}

/** The default hooks: one shared function rather than two new closures per connection. */
function ignore(): void {}

function oneLine(r: SmtpReply): string {
  return `${r.code} ${r.lines.join(' / ')}`;
}
