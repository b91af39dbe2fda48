// Every Prometheus metric mailshim exports, defined once here and fed only from session events (plus the
// listener's refusals, which happen before a session exists). Label values are bounded: listener and
// upstream names from the config, enums from the event vocabulary; never a client address or username.
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Observer, SessionEvent } from './events.js';

/** Why an upstream connection failed; a closed set so the label cannot grow with error text. */
export type UpstreamFailure = 'refused' | 'timeout' | 'dns' | 'tls' | 'greeting' | 'lost' | 'login' | 'other';

/** Why the listener turned a connection away before any SMTP. */
export type RefusalReason = 'allowlist' | 'max-connections' | 'max-per-client' | 'rate' | 'shutting-down' | 'proxy-protocol' | 'other';

export interface Metrics {
  registry: Registry;
  observer: Observer;
  /** Listener refusals (allowlist, limits, PROXY header problems): no session, so no event. */
  refused(listener: string, reason: RefusalReason): void;
  /** A config reload: ok or rejected. */
  reloaded(ok: boolean): void;
}

const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

export function classifyUpstreamFailure(reason: string): UpstreamFailure {
  if (/timed? ?out|did not answer/i.test(reason)) return 'timeout';
  if (/ECONNREFUSED|refused the connection|connection refused/i.test(reason)) return 'refused';
  if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/i.test(reason)) return 'dns';
  if (/certificate|TLS|handshake|STARTTLS|SSL/i.test(reason)) return 'tls';
  if (/greeting/i.test(reason)) return 'greeting';
  if (/closed|ECONNRESET|EPIPE/i.test(reason)) return 'lost';
  return 'other';
}

export function refusalReason(text: string): RefusalReason {
  if (/^proxy protocol/i.test(text)) return 'proxy-protocol';
  if (/allow/i.test(text)) return 'allowlist';
  if (/maxConnections/.test(text)) return 'max-connections';
  if (/maxPerClient/.test(text)) return 'max-per-client';
  if (/rate/i.test(text)) return 'rate';
  if (/shutting/i.test(text)) return 'shutting-down';
  return 'other';
}

/**
 * @param upstreamOf listener name -> upstream name (for the upstream label); read on every event, so a
 *   reload that changes it is seen by new sessions.
 */
export function createMetrics(upstreamOf: (listener: string) => string | undefined, opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'mailshim_' });
  const reg = [registry];

  // The per-session figures are plain numbers here, handed to prom-client only when /metrics is scraped
  // (collect): an inc() with labels hashes its label object every time, and these run several times per
  // session, on the path every relayed session pays for. Only the duration histogram is fed per session.
  interface Tally {
    active: number;
    bytesIn: number;
    bytesOut: number;
    /** result -> sessions ended */
    results: Map<string, number>;
    /** outcome -> reply class (2..5) -> messages */
    messages: { relayed: number[]; rejected: number[] };
    duration: Histogram.Internal<string>;
  }
  const tallies = new Map<string, Tally>();
  const tally = (listener: string): Tally => {
    let t = tallies.get(listener);
    if (!t) {
      t = { active: 0, bytesIn: 0, bytesOut: 0, results: new Map(), messages: { relayed: [0, 0, 0, 0, 0, 0], rejected: [0, 0, 0, 0, 0, 0] }, duration: duration.labels({ listener }) };
      tallies.set(listener, t);
    }
    return t;
  };

  // A label set appears once it has a value, as it did when these were incremented per event.
  const sessions = new Counter({
    name: 'mailshim_sessions_total',
    help: 'Client sessions ended, by listener and result.',
    labelNames: ['listener', 'result'],
    registers: reg,
    collect() {
      this.reset();
      for (const [listener, t] of tallies) for (const [result, n] of t.results) this.inc({ listener, result }, n);
    },
  });
  const active = new Gauge({
    name: 'mailshim_sessions_active',
    help: 'Client sessions open now.',
    labelNames: ['listener'],
    registers: reg,
    collect() {
      for (const [listener, t] of tallies) this.set({ listener }, t.active);
    },
  });
  const duration = new Histogram({ name: 'mailshim_session_duration_seconds', help: 'Session duration from accept to close.', labelNames: ['listener'], buckets: DURATION_BUCKETS, registers: reg });
  const messages = new Counter({
    name: 'mailshim_messages_total',
    help: 'Messages whose end of DATA the upstream answered, by listener, outcome and reply class.',
    labelNames: ['listener', 'outcome', 'class'],
    registers: reg,
    collect() {
      this.reset();
      for (const [listener, t] of tallies) {
        for (const outcome of ['relayed', 'rejected'] as const) {
          t.messages[outcome].forEach((n, c) => {
            if (n > 0) this.inc({ listener, outcome, class: `${c}xx` }, n);
          });
        }
      }
    },
  });
  const bytes = new Counter({
    name: 'mailshim_client_bytes_total',
    help: 'Bytes on the client leg, by direction (in: from the client).',
    labelNames: ['listener', 'direction'],
    registers: reg,
    collect() {
      this.reset();
      for (const [listener, t] of tallies) {
        this.inc({ listener, direction: 'in' }, t.bytesIn);
        this.inc({ listener, direction: 'out' }, t.bytesOut);
      }
    },
  });
  const authAttempts = new Counter({ name: 'mailshim_auth_attempts_total', help: 'AUTH exchanges, by listener, mechanism, mode, side and result.', labelNames: ['listener', 'mechanism', 'mode', 'side', 'result'], registers: reg });
  const upstreamFailures = new Counter({ name: 'mailshim_upstream_failures_total', help: 'Upstream connect, TLS and login failures, by upstream and reason.', labelNames: ['upstream', 'reason'], registers: reg });
  const tlsHandshakes = new Counter({ name: 'mailshim_tls_handshakes_total', help: 'Completed TLS handshakes, by side, protocol version and cipher.', labelNames: ['side', 'version', 'cipher'], registers: reg });
  const tlsFailures = new Counter({ name: 'mailshim_tls_handshake_failures_total', help: 'Failed TLS handshakes, by side.', labelNames: ['side'], registers: reg });
  const rewrites = new Counter({ name: 'mailshim_ehlo_rewrites_total', help: 'EHLO capability changes applied, by listener and rule kind.', labelNames: ['listener', 'rule'], registers: reg });
  const lockouts = new Counter({ name: 'mailshim_auth_lockouts_total', help: 'AUTH attempts refused because the client address is locked out.', labelNames: ['listener'], registers: reg });
  const capturesDropped = new Counter({ name: 'mailshim_captures_dropped_total', help: 'Session captures not written (limits or write errors).', labelNames: ['listener', 'reason'], registers: reg });
  const refusedC = new Counter({ name: 'mailshim_connections_refused_total', help: 'Connections turned away before SMTP, by listener and reason.', labelNames: ['listener', 'reason'], registers: reg });
  const reloads = new Counter({ name: 'mailshim_config_reloads_total', help: 'Configuration reloads (SIGHUP), by result.', labelNames: ['result'], registers: reg });

  // sid -> listener for events that carry only the sid; bounded by open sessions (deleted at session.end).
  const listenerOf = new Map<string, string>();
  // An upstream-unreachable session already counted via link.tls-failed is not counted twice.
  const upstreamCounted = new Set<string>();

  const observer: Observer = (ev: SessionEvent) => {
    switch (ev.type) {
      case 'session.start':
        listenerOf.set(ev.sid, ev.listener);
        tally(ev.listener).active++;
        break;
      case 'link.tls':
        tlsHandshakes.inc({ side: ev.side, version: ev.tls.version ?? 'unknown', cipher: ev.tls.cipher ?? 'unknown' });
        break;
      case 'link.tls-failed': {
        tlsFailures.inc({ side: ev.side });
        const listener = listenerOf.get(ev.sid);
        if (ev.side === 'upstream' && listener) {
          upstreamFailures.inc({ upstream: upstreamOf(listener) ?? 'unknown', reason: 'tls' });
          upstreamCounted.add(ev.sid);
        }
        break;
      }
      case 'auth': {
        const listener = listenerOf.get(ev.sid) ?? 'unknown';
        authAttempts.inc({ listener, mechanism: boundedMechanism(ev.mechanism), mode: ev.mode, side: ev.side, result: ev.result });
        // In passthrough the upstream's verdict is the client's; in forward/local mode a failed upstream
        // login is mailshim's own account failing.
        if (ev.side === 'upstream' && ev.mode !== 'passthrough' && ev.result !== 'ok' && ev.result !== 'cancel') {
          upstreamFailures.inc({ upstream: upstreamOf(listener) ?? 'unknown', reason: 'login' });
        }
        break;
      }
      case 'auth.lockout':
        lockouts.inc({ listener: listenerOf.get(ev.sid) ?? 'unknown' });
        break;
      case 'capture.dropped':
        capturesDropped.inc({ listener: ev.listener ?? listenerOf.get(ev.sid) ?? 'unknown', reason: ev.reason });
        break;
      case 'rewrite': {
        const listener = listenerOf.get(ev.sid) ?? 'unknown';
        for (const c of ev.changes) rewrites.inc({ listener, rule: c.rule });
        break;
      }
      case 'tx.commit':
      case 'tx.rollback':
      {
        const t = tally(listenerOf.get(ev.sid) ?? 'unknown');
        // Reply codes are 2xx..5xx (the reply parser refuses anything else).
        const cls = Math.min(5, Math.max(2, Math.floor(ev.code / 100)));
        t.messages[ev.type === 'tx.commit' ? 'relayed' : 'rejected'][cls]++;
      }
        break;
      case 'session.end': {
        const s = ev.summary;
        const t = tally(s.listener);
        t.results.set(s.result, (t.results.get(s.result) ?? 0) + 1);
        if (listenerOf.has(s.sid)) t.active--;
        t.duration.observe(s.durationMs / 1000);
        t.bytesIn += s.bytesIn;
        t.bytesOut += s.bytesOut;
        const greetingRefused = s.result === 'refused' && /^upstream greeting/.test(s.reason ?? '');
        if ((s.result === 'upstream-unreachable' || greetingRefused) && !upstreamCounted.has(s.sid)) {
          const reason = greetingRefused ? 'greeting' : classifyUpstreamFailure(s.reason ?? '');
          upstreamFailures.inc({ upstream: upstreamOf(s.listener) ?? 'unknown', reason });
        }
        listenerOf.delete(s.sid);
        upstreamCounted.delete(s.sid);
        break;
      }
      default:
        break;
    }
  };

  return {
    registry,
    observer,
    refused: (listener, reason) => refusedC.inc({ listener, reason }),
    reloaded: (ok) => reloads.inc({ result: ok ? 'ok' : 'rejected' }),
  };
}

const MECHANISMS = new Set(['PLAIN', 'LOGIN', 'CRAM-MD5', 'DIGEST-MD5', 'EXTERNAL', 'XOAUTH2', 'OAUTHBEARER', 'GSSAPI', 'NTLM', 'SCRAM-SHA-1', 'SCRAM-SHA-256']);

/** The mechanism comes from the client's AUTH line: anything unknown is one label value. */
function boundedMechanism(m: string): string {
  const u = m.toUpperCase();
  return MECHANISMS.has(u) ? u : 'other';
}
