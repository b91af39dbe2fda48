// mailshim's own login to the upstream, as a configured account (local mode) or as the client's
// identity (forward mode): AUTH PLAIN when the upstream offers it, else AUTH LOGIN, or the mechanism the
// upstream's `auth.mechanism` forces (Exchange-style servers that only take LOGIN). Credentials are never
// sent over a connection whose certificate was not verified, unless the upstream allows it explicitly.
import type { SmtpReply } from '../types.js';
import type { UpstreamClient } from './upstream-client.js';
import { authMechanisms } from '../protocol/capabilities.js';
import { encodeSaslInitialResponse } from '../auth/sasl-codec.js';

export interface UpstreamLoginPolicy {
  /** upstreams.<name>.auth.mechanism */
  mechanism?: 'PLAIN' | 'LOGIN';
  /** upstreams.<name>.allowAuthWithoutVerifiedTls */
  allowAuthWithoutVerifiedTls: boolean;
}

export interface UpstreamIdentity {
  user: string;
  password: string;
  /** PLAIN only: act as this identity. */
  authzid?: string;
}

export type UpstreamLoginResult =
  | { ok: true; mechanism: 'PLAIN' | 'LOGIN'; reply: SmtpReply }
  /** `refused`: the upstream answered the login with a failure (its reply is in `reply`). */
  | { ok: false; kind: 'refused'; mechanism: 'PLAIN' | 'LOGIN'; reply: SmtpReply; reason: string }
  /** `not-sent`: mailshim did not send the credentials (unverified TLS, no usable mechanism, connection lost). */
  | { ok: false; kind: 'not-sent'; reason: string };

const MASK = '********';

/** Whether the upstream connection is TLS with a certificate that was verified (dial.ts fails otherwise). */
export function upstreamVerified(up: UpstreamClient): boolean {
  return up.tls !== undefined && up.target.tls.verify && up.tls.authorized === true;
}

export function chooseMechanism(offered: readonly string[], forced?: 'PLAIN' | 'LOGIN'): 'PLAIN' | 'LOGIN' | undefined {
  if (forced) return forced;
  if (offered.includes('PLAIN')) return 'PLAIN';
  if (offered.includes('LOGIN')) return 'LOGIN';
  return undefined;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Log in on `up`; each secret line goes out masked in the transcript. Never rejects. */
export async function loginUpstream(up: UpstreamClient, id: UpstreamIdentity, policy: UpstreamLoginPolicy): Promise<UpstreamLoginResult> {
  if (!upstreamVerified(up) && !policy.allowAuthWithoutVerifiedTls) {
    return {
      ok: false,
      kind: 'not-sent',
      reason: `upstream ${up.target.name}: credentials not sent because the connection has no verified TLS certificate (set allowAuthWithoutVerifiedTls to allow)`,
    };
  }
  const offered = authMechanisms(up.caps);
  const mechanism = chooseMechanism(offered, policy.mechanism);
  if (!mechanism) {
    return { ok: false, kind: 'not-sent', reason: `upstream ${up.target.name} offers neither PLAIN nor LOGIN (offered: ${offered.join(' ') || 'no AUTH'})` };
  }
  if (mechanism === 'LOGIN' && id.authzid !== undefined && id.authzid !== id.user) {
    return { ok: false, kind: 'not-sent', reason: `upstream ${up.target.name}: AUTH LOGIN cannot carry the authorization identity` };
  }
  try {
    let r: SmtpReply;
    if (mechanism === 'PLAIN') {
      const msg = Buffer.from(`${id.authzid ?? ''}\0${id.user}\0${id.password}`, 'utf8');
      r = await up.request(`AUTH PLAIN ${encodeSaslInitialResponse(msg)}`, { shown: `AUTH PLAIN ${MASK}` });
    } else {
      r = await up.request('AUTH LOGIN');
      if (r.code === 334) r = await up.request(b64(id.user), { shown: MASK });
      if (r.code === 334) r = await up.request(b64(id.password), { shown: MASK });
    }
    if (r.code === 334) {
      // The upstream wants more than PLAIN/LOGIN should need: cancel its exchange.
      r = await up.request('*');
    }
    if (r.code === 235) return { ok: true, mechanism, reply: r };
    // The username is in the auth event's own `user` field, which capture.redactUsernames masks.
    return { ok: false, kind: 'refused', mechanism, reply: r, reason: `upstream ${up.target.name} refused AUTH ${mechanism}: ${r.code} ${r.lines.join(' ')}` };
  } catch (err) {
    return { ok: false, kind: 'not-sent', reason: `upstream ${up.target.name}: login failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** RFC 3461 section 4 xtext: `+` and `=` and octets outside 33..126 become `+XX`. */
export function xtext(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b < 33 || b > 126 || b === 0x2b || b === 0x3d ? `+${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}

/**
 * The client's `MAIL FROM:<..> AUTH=..` parameter (RFC 4954 section 5) in forward and local mode: the
 * client's own claim is never passed on. When the client authenticated, it becomes that identity in
 * xtext; otherwise the parameter is removed. A MAIL without AUTH= is left alone.
 */
export function rewriteAuthParam(args: string, user: string | undefined): string {
  const m = /^(FROM:\s*(?:<[^<>]*>|[^\s<>]+))(.*)$/i.exec(args);
  if (!m) return args;
  const params = m[2].split(/\s+/).filter(Boolean);
  if (!params.some((p) => /^AUTH=/i.test(p))) return args;
  const kept = params.flatMap((p) => (/^AUTH=/i.test(p) ? (user !== undefined ? [`AUTH=${xtext(user)}`] : []) : [p]));
  return [m[1], ...kept].join(' ');
}
