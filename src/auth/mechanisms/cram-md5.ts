// RFC 2195 CRAM-MD5: the server sends `<random.timestamp@hostname>`, the client answers
// `user SP hex(HMAC-MD5(secret, challenge))`. The server needs the plaintext secret.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SaslServerMechanism, SaslStep } from '../../types.js';
import { decodeUtf8Strict } from '../sasl-codec.js';

export interface CramMd5ServerOptions {
  /** Our host name, the part after `@` in the challenge. */
  hostname: string;
  /** The user's plaintext secret, or undefined for an unknown user. */
  lookupSecret: (user: string) => Promise<string | undefined>;
  /** Makes the challenge text; the default is unique per exchange (64 random bits + time). */
  newChallenge?: () => string;
}

/** `<random.timestamp@hostname>`; 64 bits from the CSPRNG make it unique per exchange. */
export function newCramMd5Challenge(hostname: string): string {
  return `<${randomBytes(8).readBigUInt64BE()}.${Date.now()}@${hostname}>`;
}

/** HMAC-MD5 of the challenge keyed with the secret (both as UTF-8). */
export function cramMd5Digest(secret: string, challenge: Buffer): Buffer {
  return createHmac('md5', Buffer.from(secret, 'utf8')).update(challenge).digest();
}

// Unknown users are checked against this so the work, and the time it takes, does not say which
// names exist. Random per process, so no client can ever match it.
const DUMMY_SECRET = randomBytes(32).toString('hex');

/** Parse `user SP 32-lowercase-hex`. The last space splits, so a user name may contain spaces. */
export function parseCramMd5Response(response: Buffer): { user: string; digest: Buffer } | null {
  const text = decodeUtf8Strict(response);
  if (text === null) return null;
  const sp = text.lastIndexOf(' ');
  if (sp <= 0) return null;
  const hex = text.slice(sp + 1);
  if (!/^[0-9a-f]{32}$/.test(hex)) return null;
  return { user: text.slice(0, sp), digest: Buffer.from(hex, 'hex') };
}

/** A CRAM-MD5 server for one exchange. An initial response is refused (the challenge comes first). */
export function createCramMd5Server(opts: CramMd5ServerOptions): SaslServerMechanism {
  let state: 'start' | 'awaiting-response' | 'finished' = 'start';
  let challenge = Buffer.alloc(0);
  return {
    name: 'CRAM-MD5',
    async next(response: Buffer | undefined): Promise<SaslStep> {
      if (state === 'finished') return { kind: 'error', code: 'malformed', reason: 'CRAM-MD5 exchange already finished' };
      if (state === 'start') {
        if (response !== undefined) {
          state = 'finished';
          return { kind: 'error', code: 'malformed', reason: 'CRAM-MD5 does not take an initial response' };
        }
        challenge = Buffer.from((opts.newChallenge ?? (() => newCramMd5Challenge(opts.hostname)))(), 'utf8');
        state = 'awaiting-response';
        return { kind: 'challenge', challenge };
      }
      state = 'finished';
      const parsed = response === undefined ? null : parseCramMd5Response(response);
      if (!parsed) return { kind: 'error', code: 'malformed', reason: 'CRAM-MD5 response must be "user SP 32 lowercase hex digits"' };
      const secret = await opts.lookupSecret(parsed.user);
      const expected = cramMd5Digest(secret ?? DUMMY_SECRET, challenge);
      const match = timingSafeEqual(expected, parsed.digest);
      if (secret === undefined || !match) {
        // Same answer for an unknown user and a wrong secret; the reason (for the log) tells them apart.
        return {
          kind: 'error',
          code: 'bad-credentials',
          reason: secret === undefined ? `CRAM-MD5: unknown user "${parsed.user}"` : `CRAM-MD5: wrong digest for "${parsed.user}"`,
        };
      }
      return { kind: 'done', identity: { authcid: parsed.user } };
    },
  };
}

/** The client's answer (before base64): `user SP hex digest`. */
export function cramMd5ClientResponse(user: string, secret: string, challenge: Buffer): Buffer {
  return Buffer.from(`${user} ${cramMd5Digest(secret, challenge).toString('hex')}`, 'utf8');
}
