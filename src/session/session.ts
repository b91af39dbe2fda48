// The session state machine: one instance per client connection and the only owner of protocol state.
// It reads client lines only when it is ready for them, relays commands to its own upstream connection,
// and sends replies back strictly in command order, each exactly once (RFC 2920). Replies to MAIL, RCPT,
// DATA and the end of DATA are always the upstream's own; mailshim's own replies come from replies.ts.
import type net from 'node:net';
import tls from 'node:tls';
import { LineReader } from '../protocol/line-reader.js';
import { DataTerminator } from '../protocol/data-terminator.js';
import { formatReply } from '../protocol/reply.js';
import * as R from '../protocol/replies.js';
import { parseCommand } from '../protocol/command.js';
import { UpstreamClient, REPLY_TIMEOUT } from '../upstream/upstream-client.js';
import { DialError } from '../upstream/dial.js';
import { acceptClientTls, type ClientTlsError } from '../listener/tls-context.js';
import type { SmtpReply } from '../types.js';
import type { EventBus } from '../observe/bus.js';
import type { SessionEvent, SessionSummary, TlsInfo } from '../observe/events.js';
import type { AuthContext } from '../auth/mode.js';
import type { CompiledListener } from '../config/compile.js';
import { type SessionState, canEnter } from './states.js';
import { dispatch, isKnownVerb } from './dispatch.js';
import { retire } from './closed-socket.js';
import { setReadSink } from '../listener/fast-read.js';

/** RFC 4954 4: an AUTH exchange line may be up to 12288 octets. */
const AUTH_LINE_MAX = 12288;
/** Pipelined commands in flight before the session stops reading more (bounds memory per session). */
const MAX_IN_FLIGHT = 100;
/** Client bytes buffered ahead of the session before the socket is paused. */
const MAX_BUFFERED = 64 * 1024;
/** Error replies of mailshim's own before it gives up on a client (Postfix's smtpd_hard_error_limit). */
const HARD_ERROR_LIMIT = 20;
/** How long a closing connection may take to drain its last reply. */
const CLOSING_GRACE_MS = 10_000;

interface Slot {
  /** Serialized reply; null while waiting for the upstream. */
  text: string | null;
  /** Runs right after this reply is written (state changes that must follow the reply on the wire). */
  then: (() => void) | undefined;
  /** The command ends a pipelined group: no client line is read until this reply is written. */
  sync: boolean;
  /** Relayed commands: runs after the write with the upstream's own reply (before any `map`). */
  after: ((r: SmtpReply) => void) | undefined;
  reply: SmtpReply | undefined;
}

// One shape for every slot (the queue is on every command's path). Relayed commands fill `after` and
// `reply` instead of wrapping them in closures: a relayed command allocates one closure, not four.
function slot(text: string | null, then: (() => void) | undefined, sync: boolean): Slot {
  return { text, then, sync, after: undefined, reply: undefined };
}

export interface Transaction {
  from: string;
  recipients: string[];
  size: number;
}

export interface SessionOptions {
  listener: CompiledListener;
  bus: EventBus;
  sid: string;
  /** The client's address as seen by policy (after the PROXY protocol, when used). */
  clientAddress: string;
  clientPort: number;
  proxiedFrom?: string;
  /** Already-established client TLS (implicit TLS listeners). */
  clientTls?: TlsInfo;
  clientCertUser?: string;
  onEnd?: (summary: SessionSummary) => void;
}

export class Session implements AuthContext {
  readonly sid: string;
  readonly listener: CompiledListener;
  readonly hostname: string;
  readonly clientAddress: string;
  readonly up: UpstreamClient;
  state: SessionState = 'connecting';
  client: net.Socket | tls.TLSSocket;
  clientTls: TlsInfo | undefined;
  clientCertUser: string | undefined;
  /** The client's HELO/EHLO name; undefined until it greeted (and again after STARTTLS). */
  helo: string | undefined;
  heloVerb: 'HELO' | 'EHLO' | undefined;
  /** After STARTTLS the client must greet again before any transaction or AUTH (RFC 3207 4.2). */
  needEhlo = false;
  authUser: string | undefined;
  authFailures = 0;
  tx: Transaction | undefined;

  private readonly bus: EventBus;
  private readonly reader = new LineReader();
  private queue: Slot[] = [];
  /** Commands whose reply must arrive before the next line may be read (EHLO, DATA, AUTH, ...). */
  private syncWaits = 0;
  private authLineWaiter: ((line: string | null) => void) | undefined;
  private data: DataTerminator | undefined;
  /** Body bytes to swallow (refused BDAT chunk), so they are never read as commands. */
  private discardBytes = 0;
  private upstreamLostInData = false;
  /** The final dot went upstream and its reply is awaited (REPLY_TIMEOUT.dataEnd governs, not the client timer). */
  private awaitingDataEnd = false;
  private readonly started = performance.now();
  private readonly clientPort: number;
  private readonly proxiedFrom: string | undefined;
  private onEnd: ((summary: SessionSummary) => void) | undefined;
  /** Filled in as the session goes; emitted as is at the end (one object, all fields from the start). */
  private summary: SessionSummary;
  private bytesIn = 0;
  private bytesOut = 0;
  private pausedForBackpressure = false;
  private waitingForDrain = false;
  /** Error replies mailshim sent itself; past HARD_ERROR_LIMIT the session ends (Postfix's smtpd_hard_error_limit). */
  private errors = 0;

  constructor(client: net.Socket, opts: SessionOptions) {
    this.clientPort = opts.clientPort;
    this.proxiedFrom = opts.proxiedFrom;
    this.onEnd = opts.onEnd;
    this.sid = opts.sid;
    this.listener = opts.listener;
    this.hostname = opts.listener.hostname;
    this.clientAddress = opts.clientAddress;
    this.clientTls = opts.clientTls;
    this.clientCertUser = opts.clientCertUser;
    this.bus = opts.bus;
    this.client = client;
    this.up = new UpstreamClient(opts.listener.upstream);
    if (opts.listener.upstreamCfg.xclient) this.up.xclient = { addr: opts.clientAddress };
    this.summary = {
      sid: this.sid,
      listener: this.listener.name,
      client: `${opts.clientAddress}:${opts.clientPort}`,
      upstream: `${this.up.target.host}:${this.up.target.port}`,
      messages: 0,
      rejected: 0,
      result: 'ok',
      reason: undefined,
      normalisedLineEndings: 0,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      authUser: undefined,
      clientTls: undefined,
      upstreamTls: undefined,
    };
  }

  // --- lifecycle ---------------------------------------------------------------------------------

  start(): void {
    this.emit({
      type: 'session.start',
      sid: this.sid,
      listener: this.listener.name,
      client: this.clientAddress,
      clientPort: this.clientPort,
      proxiedFrom: this.proxiedFrom,
      // getsockname() costs a syscall per session; only transcripts show it.
      local: this.bus.wantsLines ? `${this.client.localAddress}:${this.client.localPort}` : undefined,
    });
    if (this.clientTls) this.emit({ type: 'link.tls', sid: this.sid, side: 'client', tls: this.clientTls });
    this.attachClient(this.client);
    this.client.setTimeout(this.listener.cfg.timeouts.command);
    if (this.bus.wantsLines) {
      // Only transcripts and the demo show the connect time.
      this.up.onConnected = (ms) =>
        this.emit({ type: 'link.connect', sid: this.sid, side: 'upstream', host: this.up.target.host, port: this.up.target.port, ms });
    }
    if (this.bus.wantsLines) {
      this.up.onLine = (dir, line) =>
        this.emit({ type: 'protocol', sid: this.sid, leg: dir === 'out' ? 'proxy->upstream' : 'upstream->proxy', line });
    }
    this.up.open((err, greeting) => {
      try {
        this.onUpstreamOpen(err, greeting);
      } catch (bug) {
        // A bug here must end this session, never the process.
        this.summary.result = 'error';
        this.summary.reason = `internal error while connecting: ${bug instanceof Error ? bug.message : String(bug)}`;
        this.up.close();
        this.end();
      }
    });
  }

  private onUpstreamOpen(err: Error | undefined, greeting: SmtpReply | undefined): void {
    if (err || !greeting) {
      if (this.state === 'closed') return;
      const reason = err instanceof Error ? err.message : String(err);
      const tlsProblem = err instanceof DialError && err.stage === 'tls';
      if (tlsProblem) this.emit({ type: 'link.tls-failed', sid: this.sid, side: 'upstream', reason });
      this.summary.result = 'upstream-unreachable';
      this.summary.reason = reason;
      // Fail closed: nothing was sent in the clear; the client learns only that it should retry later.
      this.closeWith(tlsProblem ? R.upstreamTlsFailed(this.hostname) : R.upstreamUnavailable(this.hostname));
      return;
    }
    if (this.state !== 'connecting') {
      // The session ended (or is ending) while the upstream was being dialled.
      this.up.close();
      return;
    }
    if (this.up.tls) this.emit({ type: 'link.tls', sid: this.sid, side: 'upstream', tls: this.up.tls });
    this.up.onClose = (reason) => this.onUpstreamClose(reason);
    this.up.onUnsolicited = (r) => this.onUpstreamUnsolicited(r);
    if (greeting.code !== 220) {
      // The upstream refuses service (554) or is busy (421): its own words, then close.
      this.summary.result = 'refused';
      this.summary.reason = `upstream greeting ${greeting.code}`;
      this.closeWith(greeting);
      return;
    }
    const text = this.listener.cfg.greeting;
    this.enter('command');
    this.sendNow(text ? { code: 220, lines: [text] } : greeting);
    this.pump();
  }

  /** Change state in one place, so every transition can be checked and logged (OpenSMTPD's habit). */
  enter(next: SessionState): void {
    if (this.state === next) return;
    if (!canEnter(this.state, next)) throw new Error(`session ${this.sid}: illegal transition ${this.state} -> ${next}`);
    this.state = next;
  }

  // --- client I/O ---------------------------------------------------------------------------------

  private attachClient(sock: net.Socket): void {
    this.client = sock;
    if (!setReadSink(sock, this.onClientData)) sock.on('data', this.onClientData);
    sock.on('error', this.onClientError);
    sock.on('close', this.onClientClose);
    sock.on('timeout', this.onClientTimeout);
  }

  /** Hand the raw socket over (to TLS): after this no byte of it is read as a command. */
  detachClient(): net.Socket {
    const sock = this.client;
    if (!setReadSink(sock, null)) sock.off('data', this.onClientData);
    sock.off('error', this.onClientError);
    sock.off('close', this.onClientClose);
    sock.off('timeout', this.onClientTimeout);
    return sock;
  }

  /** Continue on a new socket (the TLS one after STARTTLS). */
  reattachClient(sock: net.Socket): void {
    this.attachClient(sock);
    sock.setTimeout(this.listener.cfg.timeouts.command);
  }

  /** After our 220 to STARTTLS: hand the socket to TLS; on success everything restarts at EHLO. */
  upgradeClientTls(): void {
    this.enter('tls');
    const raw = this.detachClient();
    acceptClientTls(raw, this.listener.tlsServer!, this.listener.cfg.timeouts.command).then(
      (c) => {
        if (this.state !== 'tls') {
          c.socket.destroy();
          return;
        }
        this.clientTls = c.info;
        this.clientCertUser = c.certUser;
        this.emit({ type: 'link.tls', sid: this.sid, side: 'client', tls: this.clientTls });
        // RFC 3207 4.2: discard all knowledge obtained from the client before TLS.
        this.helo = undefined;
        this.heloVerb = undefined;
        this.authUser = undefined;
        this.tx = undefined;
        this.needEhlo = true;
        this.enter('command');
        this.reattachClient(c.socket);
        this.pump();
      },
      (err: ClientTlsError) => {
        if (this.state === 'closed') return;
        if (this.state !== 'tls') {
          // Ended meanwhile (upstream lost, shutdown): the raw socket is gone, finish the session.
          this.end();
          return;
        }
        // The ClientHello tells the owner which protocol the device tried (FIELD-NOTES 1).
        this.emit({ type: 'link.tls-failed', sid: this.sid, side: 'client', reason: err.reason, offered: err.offered });
        this.summary.result = 'error';
        this.summary.reason = `client TLS handshake failed: ${err.reason}`;
        this.end();
      },
    );
  }

  private onClientData = (chunk: Buffer): void => {
    this.bytesIn += chunk.length;
    if (this.state === 'data') {
      this.feedData(chunk);
      return;
    }
    if (this.discardBytes > 0) {
      const n = Math.min(this.discardBytes, chunk.length);
      this.discardBytes -= n;
      if (this.discardBytes === 0) this.afterDiscard();
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    if (this.state === 'connecting' && this.listener.cfg.earlyTalker === 'reject') {
      this.summary.result = 'refused';
      this.summary.reason = 'client talked before the greeting';
      this.closeWith(R.earlyTalker(this.hostname));
      return;
    }
    this.reader.push(chunk);
    this.pump();
    if (this.reader.buffered > MAX_BUFFERED && !this.client.isPaused()) this.client.pause();
  };

  private onClientError = (): void => {
    // 'close' follows; an unclean TLS EOF after QUIT from a legacy stack is normal, not an error.
  };

  private onClientClose = (): void => {
    if (this.state === 'closed') return;
    if (this.state === 'data') {
      // No final dot may ever reach the upstream for a body that did not end: drop the connection.
      this.up.close();
      this.summary.result = 'client-closed';
      this.summary.reason = 'client closed during DATA; upstream connection dropped without the final dot';
    } else if (this.state !== 'closing') {
      this.summary.result = this.summary.result === 'ok' ? 'client-closed' : this.summary.result;
      this.up.quit();
    }
    this.finish();
  };

  private onClientTimeout = (): void => {
    if (this.state === 'closing') {
      this.client.destroy();
      return;
    }
    if (this.state === 'closed') return;
    // Waiting for the upstream's verdict on a message is not client idleness (RFC 5321 4.5.3.2.6 gives it
    // 10 minutes); a 421 now, while the upstream may still accept, would make the client send it twice.
    if (this.awaitingDataEnd) return;
    this.emit({ type: 'timeout', sid: this.sid, side: 'client' });
    this.summary.result = 'timeout';
    this.summary.reason = `client idle in state ${this.state}`;
    if (this.state === 'data') this.up.close();
    else this.up.quit();
    this.queue = [];
    this.closeWith(R.timeout(this.hostname));
  };


  /** Read and dispatch buffered lines while the session is ready for them. */
  pump(): void {
    while (this.queue.length < MAX_IN_FLIGHT) {
      // A client that sends without reading its replies is not read further until it has (replies that
      // mailshim writes itself would otherwise pile up in memory without bound).
      if (this.client.writableNeedDrain) {
        if (!this.waitingForDrain) {
          this.waitingForDrain = true;
          this.client.once('drain', () => {
            this.waitingForDrain = false;
            this.pump();
          });
        }
        break;
      }
      // In an AUTH exchange the next line is a SASL response, read only when the mode asks for one.
      if (this.state === 'auth') {
        if (!this.authLineWaiter) break;
      } else if (this.state !== 'command' || this.syncWaits > 0) break;
      // AUTH command lines may carry an initial response up to AUTH_LINE_MAX (RFC 4954 4: XOAUTH2 tokens are
      // long); every other command is held to maxLineLength below.
      const r = this.reader.next(Math.max(AUTH_LINE_MAX, this.listener.cfg.maxLineLength));
      if (!r) break;
      if (this.state === 'auth') {
        const waiter = this.authLineWaiter!;
        this.authLineWaiter = undefined;
        waiter('line' in r ? r.line : null);
        continue;
      }
      if ('tooLong' in r) {
        this.emit({ type: 'protocol', sid: this.sid, leg: 'client->proxy', line: '[line too long, discarded]' });
        this.reply(R.lineTooLong());
        continue;
      }
      if (r.line.length + 2 > this.listener.cfg.maxLineLength && !isAuthLine(r.line)) {
        this.emit({ type: 'protocol', sid: this.sid, leg: 'client->proxy', line: '[line too long, discarded]' });
        this.reply(R.lineTooLong());
        continue;
      }
      this.onCommandLine(r.line);
    }
    if (this.client.isPaused() && this.reader.buffered < MAX_BUFFERED && !this.pausedForBackpressure && this.state !== 'closed') {
      this.client.resume();
    }
  }

  private onCommandLine(line: string): void {
    // Strict towards the upstream: a command never carries a NUL or a bare CR (RFC 5321 2.3.8).
    if (line.includes('\r') || line.includes('\0')) {
      this.emit({ type: 'protocol', sid: this.sid, leg: 'client->proxy', line: '[command with bare CR or NUL, refused]' });
      this.reply(R.syntax('Bare CR or NUL in command'));
      return;
    }
    const cmd = parseCommand(line);
    if (this.bus.wantsLines) {
      // AUTH lines may carry an initial response: the session masks it here, where it knows.
      // An unknown "command" may be a SASL answer pipelined after an AUTH that ended early: never shown.
      const shown = !isKnownVerb(cmd.verb)
        ? `[unrecognized command, ${line.length} octets]`
        : cmd.verb === 'AUTH' && cmd.args.includes(' ')
          ? `AUTH ${cmd.args.split(' ')[0]} ********`
          : line;
      this.emit({ type: 'protocol', sid: this.sid, leg: 'client->proxy', line: shown });
    }
    dispatch(this, cmd);
  }

  // --- replies, in order --------------------------------------------------------------------------

  /** Queue one of mailshim's own replies, after any reply still awaited from the upstream. */
  reply(r: SmtpReply, then?: () => void): void {
    if (r.code >= 500 && ++this.errors >= HARD_ERROR_LIMIT && this.state !== 'closing' && this.state !== 'closed') {
      this.queue.push(slot(formatReply(r), then, false));
      this.summary.result = 'refused';
      this.summary.reason = `${this.errors} errors`;
      this.closeWith(R.tooManyErrors(this.hostname));
      return;
    }
    this.queue.push(slot(formatReply(r), then, false));
    this.flush();
  }

  relayReply(r: SmtpReply): void {
    this.reply(r);
  }

  /**
   * Reserve the next reply's place in the order; fill it later with the reply the client must see.
   * `sync` stops reading client lines until it is filled and written (commands that end a pipelined group).
   */
  reserve(sync = false): (r: SmtpReply, then?: () => void) => void {
    const s = this.hold(sync);
    return (r, then) => {
      if (s.text !== null || this.state === 'closed') return;
      s.text = formatReply(r);
      s.then = then;
      this.flush();
      this.pump();
    };
  }

  private hold(sync: boolean): Slot {
    const s = slot(null, undefined, sync);
    this.queue.push(s);
    if (sync) this.syncWaits++;
    return s;
  }

  /**
   * Relay a command upstream and reserve its reply's place. `map` may turn the upstream reply into what
   * the client sees (EHLO rewriting); `then` runs after it is written.
   */
  relay(
    line: string,
    opts: { sync?: boolean; shown?: string; timeoutMs?: number; map?: (r: SmtpReply) => SmtpReply; then?: (r: SmtpReply) => void } = {},
  ): void {
    const s = this.hold(opts.sync === true);
    this.up.command(
      line,
      (r) => {
        if (s.text !== null || this.state === 'closed') return;
        s.text = formatReply(opts.map ? opts.map(r) : r);
        s.after = opts.then;
        s.reply = r;
        this.flush();
        this.pump();
      },
      opts,
    );
  }

  /** Drop client bytes already buffered (after STARTTLS: they must never run inside TLS). */
  discardBuffered(): number {
    return this.reader.take().length;
  }

  private flush(): void {
    let out = '';
    while (this.queue.length > 0 && this.queue[0].text !== null) {
      const done = this.queue.shift()!;
      out += done.text;
      if (done.then || done.sync || done.after) {
        this.write(out);
        out = '';
        if (done.sync) this.syncWaits--;
        done.then?.();
        done.after?.(done.reply!);
        if (this.state === 'closed') return;
      }
    }
    if (out) this.write(out);
  }

  private write(text: string): void {
    if (!text || this.client.destroyed) return;
    this.bytesOut += text.length;
    if (this.bus.wantsLines) {
      for (const l of text.split('\r\n')) if (l) this.emit({ type: 'protocol', sid: this.sid, leg: 'proxy->client', line: l });
    }
    this.client.write(text, 'latin1');
  }

  /** Write a reply now, bypassing the queue (greeting, closing 421). */
  private sendNow(r: SmtpReply): void {
    this.write(formatReply(r));
  }

  // --- AUTH exchange plumbing (AuthContext) -----------------------------------------------------------

  readAuthLine(cb: (line: string | null) => void): void {
    this.authLineWaiter = (line) => {
      if (line !== null && this.bus.wantsLines) {
        this.emit({ type: 'protocol', sid: this.sid, leg: 'client->proxy', line: line === '*' ? '*' : '********' });
      }
      cb(line);
    };
    // Replies queued before the prompt must reach the client first; pumping reads the next line.
    queueMicrotask(() => this.pump());
  }

  beginAuth(): void {
    this.enter('auth');
    this.syncWaits++;
  }

  finish(result: { user?: string; failed?: boolean }): void;
  finish(): void;
  finish(result?: { user?: string; failed?: boolean }): void {
    if (result) {
      // End of an AUTH exchange.
      if (result.user) this.authUser = result.user;
      if (result.failed) this.authFailures++;
      this.authLineWaiter = undefined;
      this.queue.push(
        slot('', () => {
          this.syncWaits--;
          if (this.state === 'auth') this.enter('command');
        }, false),
      );
      this.flush();
      this.pump();
      return;
    }
    this.end();
  }

  // --- DATA ----------------------------------------------------------------------------------------

  /** After the upstream's 354: the following bytes are the body. */
  startData(): void {
    this.enter('data');
    this.data = new DataTerminator();
    this.tx = this.tx ?? { from: '', recipients: [], size: 0 };
    this.tx.size = 0;
    // Re-arming a socket timeout allocates a timer; skip it when both timeouts are the same (the default).
    const t = this.listener.cfg.timeouts;
    if (t.data !== t.command) this.client.setTimeout(t.data);
    const rest = this.reader.take();
    if (rest.length > 0) this.feedData(rest);
  }

  private feedData(chunk: Buffer): void {
    const r = this.data!.feed(chunk);
    if (!this.upstreamLostInData) {
      const out = r.out;
      let ok = true;
      if (out.length === 1) ok = this.up.writeData(out[0]);
      else if (out.length > 1) {
        this.up.socket.cork();
        for (const b of out) ok = this.up.writeData(b) && ok;
        this.up.socket.uncork();
      }
      for (const b of out) this.tx!.size += b.length;
      if (this.bus.wantsData) for (const b of out) this.emit({ type: 'tx.data', sid: this.sid, chunk: b });
      if (!ok && !r.done) {
        // Backpressure: stop reading the client until the upstream has taken what we gave it.
        this.pausedForBackpressure = true;
        this.client.pause();
        this.up.socket.once('drain', () => {
          this.pausedForBackpressure = false;
          if (this.state !== 'closed') this.client.resume();
        });
      }
    }
    if (!r.done) return;
    this.summary.normalisedLineEndings += this.data!.normalised;
    this.data = undefined;
    if (this.listener.cfg.timeouts.data !== this.listener.cfg.timeouts.command) this.client.setTimeout(this.listener.cfg.timeouts.command);
    this.enter('command');
    if (r.rest && r.rest.length > 0) this.reader.push(r.rest);
    if (this.upstreamLostInData) {
      this.txEnd(R.upstreamLost());
      this.summary.result = 'upstream-lost';
      this.closeWith(R.upstreamLost());
      return;
    }
    const fill = this.reserve(true);
    this.awaitingDataEnd = true;
    this.up.expectReply((reply) => {
      this.awaitingDataEnd = false;
      this.txEnd(reply);
      fill(reply);
    }, REPLY_TIMEOUT.dataEnd);
  }

  private txEnd(reply: SmtpReply): void {
    const tx = this.tx ?? { from: '', recipients: [], size: 0 };
    const ok = reply.code >= 200 && reply.code < 300;
    if (ok) this.summary.messages++;
    else this.summary.rejected++;
    this.emit({
      type: ok ? 'tx.commit' : 'tx.rollback',
      sid: this.sid,
      size: tx.size,
      from: tx.from,
      recipients: tx.recipients,
      code: reply.code,
      reply: reply.lines.join(' '),
    });
    this.tx = undefined;
  }

  /** Swallow `n` raw bytes (a refused BDAT chunk), then send `reply`. */
  discard(n: number, reply: SmtpReply): void {
    const fromBuffer = Math.min(n, this.reader.buffered);
    if (fromBuffer > 0) {
      const rest = this.reader.take();
      this.reader.push(rest.subarray(fromBuffer));
    }
    this.discardBytes = n - fromBuffer;
    this.pendingDiscardReply = reply;
    this.syncWaits++;
    if (this.discardBytes === 0) this.afterDiscard();
  }

  private pendingDiscardReply: SmtpReply | undefined;

  private afterDiscard(): void {
    const reply = this.pendingDiscardReply!;
    this.pendingDiscardReply = undefined;
    this.syncWaits--;
    this.reply(reply);
    this.pump();
  }

  // --- upstream faults -----------------------------------------------------------------------------

  private onUpstreamClose(reason: string): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.summary.reason = reason;
    if (this.state === 'data') {
      // Keep reading the body to its end, then say 451: never 250 for a message the upstream did not take.
      this.summary.result = 'upstream-lost';
      this.upstreamLostInData = true;
      if (this.pausedForBackpressure) {
        this.pausedForBackpressure = false;
        this.client.resume();
      }
      return;
    }
    this.summary.result = 'upstream-lost';
    if (this.state === 'tls') {
      // Mid client handshake: no SMTP reply can be written into it; end the session.
      this.client.destroy();
      this.end();
      return;
    }
    // Slots still waiting: the first gets the 451/421, the rest are moot because the connection closes.
    const waitingForDataEnd = this.tx !== undefined && this.queue.some((s) => s.text === null);
    this.dropUnanswered();
    this.flush();
    if (waitingForDataEnd) this.sendNow(R.upstreamLost());
    this.closeWith(R.upstreamLostClosing(this.hostname));
  }

  private onUpstreamUnsolicited(r: SmtpReply): void {
    // A reply to no command (typically 421 before the upstream hangs up): relay it and end the session,
    // since the two sides can no longer be matched command for reply.
    this.summary.result = 'upstream-lost';
    this.summary.reason = `unsolicited upstream reply ${r.code}`;
    if (this.state === 'data') {
      this.upstreamLostInData = true;
      this.up.close();
      return;
    }
    this.dropUnanswered();
    this.flush();
    this.up.close();
    this.closeWith(r.code === 421 ? r : R.upstreamLostClosing(this.hostname));
  }

  // --- ending ----------------------------------------------------------------------------------------

  /**
   * Forget the replies from the first one still awaited onwards: replies mailshim already wrote for later
   * commands must not be read by the client as answers to the earlier, unanswered ones.
   */
  private dropUnanswered(): void {
    const i = this.queue.findIndex((s) => s.text === null);
    if (i >= 0) this.queue.length = i;
  }

  /** Send a last reply after everything already answered, then close the client connection. */
  closeWith(r: SmtpReply): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.dropUnanswered();
    this.flush();
    this.sendNow(r);
    this.enterClosing();
  }

  /** After QUIT's 221 or a closing reply: stop reading, let the reply drain, then close. */
  enterClosing(): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    // Like Postfix after its 221 or 421: close as soon as the last reply has been handed to the kernel.
    // Waiting for the client's own close gains nothing (nothing valid follows QUIT), and a client that
    // closes with a reset would only produce an error to handle.
    const client = this.client;
    if (client.writableLength === 0 && !(client instanceof tls.TLSSocket)) {
      // Everything is in the kernel already: close(2) sends it, then FIN, as Postfix does.
      client.destroy();
    } else {
      client.end(() => client.destroy());
      // A client that does not read (its last reply cannot drain) is cut off after a grace period.
      client.setTimeout(Math.min(CLOSING_GRACE_MS, this.listener.cfg.timeouts.command));
    }
    if (!this.up.closed) this.up.quit();
  }

  private end(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const client = this.client;
    client.destroy();
    this.detachClient();
    if (!this.up.closed) this.up.close();
    // Let go of everything heavy (see closed-socket.ts): the session may stay reachable for a while.
    this.client = retire(client);
    this.queue = [];
    this.reader.take();
    this.data = undefined;
    this.authLineWaiter = undefined;
    const summary = this.summary;
    summary.bytesIn = this.bytesIn;
    summary.bytesOut = this.bytesOut;
    summary.durationMs = Math.round(performance.now() - this.started);
    summary.authUser = this.authUser;
    summary.clientTls = this.clientTls;
    summary.upstreamTls = this.up.tls;
    this.emit({ type: 'session.end', summary });
    const onEnd = this.onEnd;
    this.onEnd = undefined;
    onEnd?.(summary);
  }

  /** Close at once (shutdown drain deadline). */
  shutdown(): void {
    if (this.state === 'closed') return;
    if (this.state === 'closing' || this.state === 'tls') {
      // Already saying goodbye, or mid client handshake where no reply can be written: close now.
      if (this.state === 'tls') this.summary.result = 'shutdown';
      this.client.destroy();
      this.end();
      return;
    }
    this.summary.result = 'shutdown';
    if (this.state === 'data') this.up.close();
    this.queue = [];
    this.closeWith(R.shuttingDown(this.hostname));
  }

  emit(ev: SessionEvent): void {
    if (this.bus.active) this.bus.emit(ev);
  }

  get clientIsTls(): boolean {
    return this.clientTls !== undefined;
  }
}

/** "AUTH " at the start of a command line, any case. */
function isAuthLine(line: string): boolean {
  // Only asked of lines over maxLineLength, so a regex costs nothing that matters.
  return line.length > 5 && /^auth /i.test(line);
}
