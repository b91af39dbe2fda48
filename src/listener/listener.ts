// One TCP server per configured listener. It applies connection policy (allowlist, limits; the PROXY
// protocol header when configured), terminates implicit TLS, and hands each accepted socket to a Session.
import net from 'node:net';
import crypto from 'node:crypto';
import type { CompiledListener } from '../config/compile.js';
import type { EventBus } from '../observe/bus.js';
import type { SessionSummary } from '../observe/events.js';
import { Session } from '../session/session.js';
import { formatReply } from '../protocol/reply.js';
import * as R from '../protocol/replies.js';
import type { tlsInfo } from '../upstream/dial.js';
import { acceptClientTls, type ClientTlsError } from './tls-context.js';
import { clientKey, unmapV4 } from './allowlist.js';
import { listenOn } from './listen-on.js';
import { readProxyHeader } from './proxy-protocol.js';
import type { RateLimiter } from './rate-limit.js';
import { readFastOnAccept, setReadSink } from './fast-read.js';

/** Session ids: 6 random bytes each, cut from a pooled block (one randomBytes call per session cost ~5-25 µs). */
let sidPool = Buffer.alloc(0);
let sidOff = 0;
function newSid(): string {
  if (sidOff + 6 > sidPool.length) {
    sidPool = crypto.randomBytes(6 * 256);
    sidOff = 0;
  }
  sidOff += 6;
  return sidPool.toString('hex', sidOff - 6, sidOff);
}

/** How long a trusted proxy may take to send its PROXY header after connecting. */
const PROXY_HEADER_TIMEOUT_MS = 10_000;

export interface ListenerLimits {
  maxConnections: number;
  maxPerClient: number;
}

export interface ListenerHooks {
  /** Shared across listeners: the global connection count and per-client counts. */
  counters: { total: number; perClient: Map<string, number> };
  onSessionEnd?: (s: SessionSummary) => void;
  onRefused?: (listener: string, reason: string, client: string) => void;
  /** limits.ratePerClient, shared across listeners. */
  rate?: RateLimiter;
}

export class Listener {
  private server: net.Server;
  readonly sessions = new Set<Session>();
  accepting = true;

  constructor(
    public compiled: CompiledListener,
    private readonly bus: EventBus,
    private readonly limits: ListenerLimits,
    private readonly hooks: ListenerHooks,
  ) {
    this.server = net.createServer({ noDelay: true }, (sock) => this.accept(sock));
  }

  listen(): Promise<net.AddressInfo> {
    const { host, port } = this.compiled.cfg.listen;
    return listenOn(this.server, host, port).then((addr) => {
      // A listener that never hands a socket to TLS nor reads a PROXY header first gets its connections
      // read through the cheaper onread path (fast-read.ts).
      const plain = this.compiled.cfg.tls.mode === 'none' && !this.compiled.cfg.proxyProtocol;
      if (plain) readFastOnAccept(this.server);
      return addr;
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /** Stop accepting; open sessions go on. */
  stopAccepting(): Promise<void> {
    this.accepting = false;
    // close() stops listening at once; its callback would wait for every open connection, which is the
    // drain's job (App.stop), so do not wait for it here.
    if (this.server.listening) this.server.close();
    return Promise.resolve();
  }

  private refuse(sock: net.Socket, reply: string, reason: string, client: string): void {
    this.hooks.onRefused?.(this.compiled.name, reason, client);
    sock.on('error', () => {});
    setReadSink(sock, null); // what a refused client still sends is dropped, not held
    // On an implicit-TLS listener the client expects a TLS handshake first: a plaintext reply would only
    // read as a TLS error, so the connection is just closed.
    if (this.compiled.cfg.tls.mode === 'implicit') {
      sock.destroy();
      return;
    }
    sock.end(reply);
    setTimeout(() => sock.destroy(), 1000).unref();
  }

  private accept(sock: net.Socket): void {
    // TCP_NODELAY is already set by the server's noDelay option.
    const l = this.compiled;
    const address = unmapV4(sock.remoteAddress ?? '');
    const port = sock.remotePort ?? 0;
    if (!this.accepting) {
      this.refuse(sock, formatReply(R.shuttingDown(l.hostname)), 'shutting down', address);
      return;
    }
    if (!l.cfg.proxyProtocol) {
      this.admit(sock, address, port, undefined);
      return;
    }
    // Only a trusted proxy may tell us who the client is; anyone else could claim any address.
    if (!l.trustedProxies.has(address)) {
      this.refuse(sock, formatReply(R.clientNotAllowed()), 'proxy protocol: peer not in trustedProxies', address);
      return;
    }
    sock.on('error', () => {}); // until a Session owns the socket
    readProxyHeader(sock, PROXY_HEADER_TIMEOUT_MS).then(
      (h) => {
        // LOCAL (the proxy's health check) and UNKNOWN carry no client: the proxy itself is the peer.
        const client = h.command === 'proxy' && h.source ? unmapV4(h.source.address) : address;
        this.admit(sock, client, h.command === 'proxy' && h.source ? h.source.port : port, address);
        sock.resume();
      },
      (err: Error) => {
        this.hooks.onRefused?.(l.name, `proxy protocol: ${err.message}`, address);
        sock.destroy();
      },
    );
  }

  /** Policy on the (possibly PROXY-protocol) client address, then TLS for implicit listeners, then a Session. */
  admit(sock: net.Socket, address: string, port: number, proxiedFrom: string | undefined): void {
    const l = this.compiled;
    if (!l.allow.empty && !l.allow.has(address)) {
      this.refuse(sock, formatReply(R.clientNotAllowed()), 'not in clients.allow', address);
      return;
    }
    if (this.hooks.rate && !this.hooks.rate.allow(address)) {
      this.refuse(sock, formatReply(R.tooMany(l.hostname)), 'limits.ratePerClient', address);
      return;
    }
    const c = this.hooks.counters;
    // Counted per client, an IPv6 client per /64 (one host may use any address of it).
    const key = clientKey(address);
    const mine = c.perClient.get(key) ?? 0;
    if (c.total >= this.limits.maxConnections) {
      this.refuse(sock, formatReply(R.tooMany(l.hostname)), 'limits.maxConnections', address);
      return;
    }
    if (mine >= this.limits.maxPerClient) {
      this.refuse(sock, formatReply(R.tooMany(l.hostname)), 'limits.maxPerClient', address);
      return;
    }
    c.total++;
    c.perClient.set(key, mine + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      c.total--;
      const n = (c.perClient.get(key) ?? 1) - 1;
      if (n <= 0) c.perClient.delete(key);
      else c.perClient.set(key, n);
    };
    sock.on('close', release); // 'close' comes once; `on` spares the once() wrapper per connection

    const sid = newSid();
    const startSession = (s: net.Socket, clientTls?: ReturnType<typeof tlsInfo>, clientCertUser?: string) => {
      const session = new Session(s, {
        listener: l,
        bus: this.bus,
        sid,
        clientAddress: address,
        clientPort: port,
        proxiedFrom,
        clientTls,
        clientCertUser,
        onEnd: (summary) => {
          this.sessions.delete(session);
          release();
          this.hooks.onSessionEnd?.(summary);
        },
      });
      this.sessions.add(session);
      session.start();
    };

    if (l.cfg.tls.mode !== 'implicit' || !l.tlsServer) {
      startSession(sock);
      return;
    }
    // Implicit TLS (RFC 8314): the handshake comes before any SMTP byte. A failed handshake is logged with
    // what the client offered (its ClientHello), the answer to "which protocol did the device try?".
    acceptClientTls(sock, l.tlsServer, l.cfg.timeouts.command).then(
      (c) => startSession(c.socket, c.info, c.certUser),
      (err: ClientTlsError) => this.bus.emit({ type: 'link.tls-failed', sid, side: 'client', reason: err.reason, offered: err.offered, client: address, listener: l.name }),
    );
  }

  /** Graceful end: every open session gets 421 4.3.2 and is closed. */
  shutdownSessions(): void {
    for (const s of this.sessions) s.shutdown();
  }
}
