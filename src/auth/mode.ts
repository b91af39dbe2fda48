// The auth strategy of a listener, chosen once when the config is compiled (maddy's habit), never by an
// `if` per command. Each mode lives in its own file: mode-passthrough.ts, mode-forward.ts, mode-local.ts.
import type { SmtpReply } from '../types.js';
import type { UpstreamClient } from '../upstream/upstream-client.js';
import type { TlsInfo, SessionEvent } from '../observe/events.js';

/** What an auth mode may do with the session; the session implements it. */
export interface AuthContext {
  readonly hostname: string;
  readonly clientAddress: string;
  readonly clientTls: TlsInfo | undefined;
  /** Subject CN of a verified client certificate, if any. */
  readonly clientCertUser: string | undefined;
  readonly up: UpstreamClient;
  /** Queue a reply of mailshim's own to the client, in order. */
  reply(r: SmtpReply): void;
  /** Relay an upstream reply verbatim to the client, in order. */
  relayReply(r: SmtpReply): void;
  /** Read the next client line of the SASL exchange (raw, up to 12288 octets); null if it was too long. */
  readAuthLine(cb: (line: string | null) => void): void;
  /** The exchange is over; `user` set when the client is now authenticated. */
  finish(result: { user?: string; failed?: boolean }): void;
  emit(ev: SessionEvent): void;
  readonly sid: string;
}

export interface AuthMode {
  readonly name: 'passthrough' | 'forward' | 'local';
  /** Mechanisms to show in EHLO; null keeps the upstream's list (after rewrite rules). */
  advertised(tls: boolean): string[] | null;
  /** The client sent `AUTH mech [initial]` and the session checked sequence and TLS policy. */
  begin(ctx: AuthContext, mechanism: string, initial: string | undefined): void;
  /** Whether MAIL FROM from an unauthenticated client may go on (local mode refuses: no open relay). */
  mayRelayUnauthenticated(clientAddress: string): boolean;
  /**
   * Upstream login before MAIL (local mode). Undefined when nothing has to happen first (MAIL is then
   * relayed at once, pipelined); else a promise: 'ok' to relay MAIL, 'refused' for 454 (the provider
   * refused the mapped account, or mailshim would not send the credentials).
   */
  beforeMail?(ctx: AuthContext, user: string | undefined): Promise<'ok' | 'refused'> | undefined;
  /** The MAIL FROM arguments to relay (RFC 4954 section 5 `AUTH=` handling); absent: unchanged. */
  mailFromArgs?(args: string, user: string | undefined): string;
}
