// One event vocabulary for both legs (OpenSMTPD's report_smtp habit). Lines arrive already redacted:
// the session is the only place that knows a line holds a secret, so it masks it before emitting.
import type { CapabilityChange, Leg } from '../types.js';

export interface TlsInfo {
  version: string | null;
  cipher: string | null;
  servername?: string | null;
  peerSubject?: string | null;
  peerIssuer?: string | null;
  peerValidTo?: string | null;
  authorized?: boolean;
  authorizationError?: string | null;
  handshakeMs: number;
}

export interface SessionSummary {
  sid: string;
  listener: string;
  client: string;
  upstream: string;
  bytesIn: number;
  bytesOut: number;
  messages: number;
  rejected: number;
  result: 'ok' | 'client-closed' | 'upstream-unreachable' | 'upstream-lost' | 'timeout' | 'refused' | 'error' | 'shutdown';
  reason?: string;
  durationMs: number;
  authUser?: string;
  clientTls?: TlsInfo;
  upstreamTls?: TlsInfo;
  normalisedLineEndings: number;
}

export type SessionEvent =
  | { type: 'session.start'; sid: string; listener: string; client: string; clientPort: number; proxiedFrom?: string; /** mailshim's own address:port of the client connection (pcap export). */ local?: string }
  | { type: 'link.connect'; sid: string; side: 'upstream'; host: string; port: number; ms: number }
  | { type: 'link.tls'; sid: string; side: 'client' | 'upstream'; tls: TlsInfo }
  | { type: 'link.tls-failed'; sid: string; side: 'client' | 'upstream'; reason: string; offered?: unknown; /** Set when no session exists yet (implicit TLS). */ client?: string; listener?: string }
  | { type: 'protocol'; sid: string; leg: Leg; line: string; note?: string }
  | { type: 'rewrite'; sid: string; before: string[]; after: string[]; changes: CapabilityChange[] }
  | { type: 'auth'; sid: string; side: 'client' | 'upstream'; mechanism: string; mode: string; user?: string; result: 'ok' | 'fail' | 'cancel' | 'error'; code?: number; reason?: string }
  | { type: 'tx.begin'; sid: string; from: string }
  | { type: 'tx.data'; sid: string; chunk: Buffer }
  | { type: 'tx.commit' | 'tx.rollback'; sid: string; size: number; recipients: string[]; from: string; reply: string; code: number }
  | { type: 'timeout'; sid: string; side: 'client' | 'upstream' }
  /** AUTH refused because the client address is locked out (metrics). */
  | { type: 'auth.lockout'; sid: string }
  /** A capture was not written; `reason` is a closed set so it can be a metric label. */
  | { type: 'capture.dropped'; sid: string; reason: 'max-files' | 'max-bytes' | 'write-error'; /** The session's listener (its sid -> listener mapping may be gone by now); unknown for files of earlier runs it cannot read. */ listener?: string }
  | { type: 'session.end'; summary: SessionSummary };

export type Observer = (ev: SessionEvent) => void;
