// One TCP server per configured listener. It applies connection policy (allowlist, limits; the PROXY
// protocol header when configured), terminates implicit TLS, and hands each accepted socket to a Session.
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import type { CompiledListener } from '../config/compile.js';
import type { EventBus } from '../observe/bus.js';
import type { SessionSummary } from '../observe/events.js';
import { Session } from '../session/session.js';
import { verifiedCertUser } from '../session/session.js';
import { formatReply } from '../protocol/reply.js';
import * as R from '../protocol/replies.js';
import { tlsInfo, describeTlsError } from '../upstream/dial.js';
import { unmapV4 } from './allowlist.js';

export interface ListenerLimits {
  maxConnections: number;
  maxPerClient: number;
}

export interface ListenerHooks {
  /** Shared across listeners: the global connection count and per-client counts. */
  counters: { total: number; perClient: Map<string, number> };
  onSessionEnd?: (s: SessionSummary) => void;
  onRefused?: (listener: string, reason: string, client: string) => void;
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
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /** Stop accepting; open sessions go on. */
  stopAccepting(): Promise<void> {
    this.accepting = false;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private refuse(sock: net.Socket, reply: string, reason: string, client: string): void {
    this.hooks.onRefused?.(this.compiled.name, reason, client);
    sock.on('error', () => {});
    sock.end(reply);
    setTimeout(() => sock.destroy(), 1000).unref();
  }

  private accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    const l = this.compiled;
    const address = unmapV4(sock.remoteAddress ?? '');
    const port = sock.remotePort ?? 0;
    if (!this.accepting) {
      this.refuse(sock, formatReply(R.shuttingDown(l.hostname)), 'shutting down', address);
      return;
    }
    this.admit(sock, address, port, undefined);
  }

  /** Policy on the (possibly PROXY-protocol) client address, then TLS for implicit listeners, then a Session. */
  admit(sock: net.Socket, address: string, port: number, proxiedFrom: string | undefined): void {
    const l = this.compiled;
    if (!l.allow.empty && !l.allow.has(address)) {
      this.refuse(sock, formatReply(R.clientNotAllowed()), 'not in clients.allow', address);
      return;
    }
    const c = this.hooks.counters;
    const mine = c.perClient.get(address) ?? 0;
    if (c.total >= this.limits.maxConnections) {
      this.refuse(sock, formatReply(R.tooMany(l.hostname)), 'limits.maxConnections', address);
      return;
    }
    if (mine >= this.limits.maxPerClient) {
      this.refuse(sock, formatReply(R.tooMany(l.hostname)), 'limits.maxPerClient', address);
      return;
    }
    c.total++;
    c.perClient.set(address, mine + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      c.total--;
      const n = (c.perClient.get(address) ?? 1) - 1;
      if (n <= 0) c.perClient.delete(address);
      else c.perClient.set(address, n);
    };
    sock.once('close', release);

    const sid = crypto.randomBytes(6).toString('hex');
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
    // Implicit TLS (RFC 8314): the handshake comes before any SMTP byte.
    const started = performance.now();
    const t = new tls.TLSSocket(sock, { isServer: true, ...l.tlsServer.options });
    t.setTimeout(l.cfg.timeouts.command, () => t.destroy());
    t.once('error', (err: NodeJS.ErrnoException) => {
      this.bus.emit({ type: 'link.tls-failed', sid, side: 'client', reason: describeTlsError(err) });
      t.destroy();
    });
    t.once('secure', () => {
      t.removeAllListeners('error');
      t.removeAllListeners('timeout');
      t.setTimeout(0);
      startSession(t, tlsInfo(t, performance.now() - started), verifiedCertUser(t));
    });
  }

  /** Graceful end: every open session gets 421 4.3.2 and is closed. */
  shutdownSessions(): void {
    for (const s of this.sessions) s.shutdown();
  }
}
