// Shared contracts only. This file imports nothing so every layer can depend on it.

/** One SMTP reply: a code and one or more text lines (without the code and separator). */
export interface SmtpReply {
  code: number;
  /** Text of each line after "ddd-" / "ddd ", in order. Enhanced status codes stay part of the text. */
  lines: string[];
}

/** One EHLO capability: the keyword (upper-cased) and its parameters exactly as received. */
export interface Capability {
  keyword: string;
  /** Parameters after the keyword, space separated, as received (case kept). */
  params: string[];
  /** The separator after the keyword: ' ' normally, '=' for the legacy `AUTH=LOGIN PLAIN` form. */
  sep: ' ' | '=';
}

/** A parsed EHLO reply: the first line (domain + greeting) and the capability lines. */
export interface EhloReply {
  code: number;
  greeting: string;
  caps: Capability[];
}

/** EHLO rewrite rules, in the order the listener lists them. */
export type CapabilityRule =
  | { kind: 'remove'; keyword: string }
  | { kind: 'remove-auth'; mechanism: string }
  | { kind: 'add-auth-equals' }
  | { kind: 'add'; keyword: string; params: string[] }
  | { kind: 'replace'; keyword: string; with: string };

/** What one rule changed; used for transcripts, logs and metrics. */
export interface CapabilityChange {
  rule: CapabilityRule['kind'];
  action: 'removed' | 'added' | 'replaced' | 'changed';
  before?: string;
  after?: string;
}

/**
 * A SASL mechanism as a pure step function (go-sasl's Next()). No base64, no 334, no sockets:
 * the session owns the SMTP framing. `response` is the decoded client response (undefined for
 * "no initial response").
 */
export type SaslStep =
  | { kind: 'challenge'; challenge: Buffer }
  | { kind: 'done'; identity: SaslIdentity }
  | { kind: 'error'; reason: string; code: 'bad-credentials' | 'malformed' | 'unknown-user' | 'too-weak' };

export interface SaslIdentity {
  /** The authentication identity (username the client proved). */
  authcid: string;
  /** The authorization identity the client asked for, if any. */
  authzid?: string;
  /** For forward mode: the password the client gave (PLAIN/LOGIN only). Never logged. */
  password?: string;
}

export interface SaslServerMechanism {
  readonly name: string;
  /** First call: the initial response (or undefined). Later calls: each client response. */
  next(response: Buffer | undefined): SaslStep | Promise<SaslStep>;
}

export type Direction = 'in' | 'out';
/** The four legs as a sniffer sees them. */
export type Leg = 'client->proxy' | 'proxy->upstream' | 'upstream->proxy' | 'proxy->client';
