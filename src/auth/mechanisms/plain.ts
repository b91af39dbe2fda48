// RFC 4616 PLAIN: one message `authzid NUL authcid NUL passwd`.
import type { SaslServerMechanism, SaslStep } from '../../types.js';
import { decodeUtf8Strict } from '../sasl-codec.js';

/**
 * Checks a password for local mode. Resolves true when authcid/password are right and authcid may
 * act as authzid (when one is given). A rejection means "could not check" (the session answers 454).
 */
export type PasswordVerifier = (authcid: string, password: string, authzid?: string) => Promise<boolean>;

export interface PlainMessage {
  authzid?: string;
  authcid: string;
  password: string;
}

/** Parse a PLAIN message; null unless exactly two NULs, non-empty authcid and passwd, valid UTF-8. */
export function parsePlainMessage(message: Buffer): PlainMessage | null {
  const first = message.indexOf(0);
  const second = first < 0 ? -1 : message.indexOf(0, first + 1);
  if (first < 0 || second < 0 || message.indexOf(0, second + 1) >= 0) return null;
  const authzid = decodeUtf8Strict(message.subarray(0, first));
  const authcid = decodeUtf8Strict(message.subarray(first + 1, second));
  const password = decodeUtf8Strict(message.subarray(second + 1));
  if (authzid === null || authcid === null || password === null) return null;
  if (authcid === '' || password === '') return null;
  return authzid === '' ? { authcid, password } : { authzid, authcid, password };
}

/**
 * A PLAIN server for one exchange. With `verify` (local mode) it checks the password and the
 * identity it returns carries no password. Without it (forward mode) it returns the identity with
 * the password so the session can re-issue it upstream; the upstream's verdict decides.
 */
export function createPlainServer(verify?: PasswordVerifier): SaslServerMechanism {
  let state: 'start' | 'awaiting-message' | 'finished' = 'start';
  return {
    name: 'PLAIN',
    async next(response: Buffer | undefined): Promise<SaslStep> {
      if (state === 'finished') return { kind: 'error', code: 'malformed', reason: 'PLAIN exchange already finished' };
      if (response === undefined) {
        if (state === 'awaiting-message') {
          state = 'finished';
          return { kind: 'error', code: 'malformed', reason: 'PLAIN response missing' };
        }
        // No initial response: RFC 4616 has the server send an empty challenge.
        state = 'awaiting-message';
        return { kind: 'challenge', challenge: Buffer.alloc(0) };
      }
      state = 'finished';
      const msg = parsePlainMessage(response);
      if (!msg) {
        return {
          kind: 'error',
          code: 'malformed',
          reason: 'PLAIN message must be authzid NUL authcid NUL passwd in UTF-8 with non-empty authcid and passwd',
        };
      }
      if (!verify) return { kind: 'done', identity: msg };
      const ok = await verify(msg.authcid, msg.password, msg.authzid);
      if (!ok) return { kind: 'error', code: 'bad-credentials', reason: `PLAIN: wrong password or authzid for "${msg.authcid}"` };
      return { kind: 'done', identity: msg.authzid === undefined ? { authcid: msg.authcid } : { authcid: msg.authcid, authzid: msg.authzid } };
    },
  };
}

/** The client's PLAIN message (before base64). */
export function plainClientResponse(authcid: string, password: string, authzid = ''): Buffer {
  return Buffer.from(`${authzid}\0${authcid}\0${password}`, 'utf8');
}
