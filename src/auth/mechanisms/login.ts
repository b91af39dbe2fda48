// AUTH LOGIN (draft-murchison-sasl-login): the server prompts "Username:" then "Password:".
import type { SaslServerMechanism, SaslStep } from '../../types.js';
import { decodeUtf8Strict } from '../sasl-codec.js';
import type { PasswordVerifier } from './plain.js';

export const LOGIN_USERNAME_PROMPT = 'Username:';
export const LOGIN_PASSWORD_PROMPT = 'Password:';

/**
 * Decode one LOGIN field. A NUL is refused because forward and local mode re-issue the identity
 * as AUTH PLAIN, where NUL is the separator.
 */
function field(bytes: Buffer): string | null {
  if (bytes.length === 0 || bytes.includes(0)) return null;
  return decodeUtf8Strict(bytes);
}

/**
 * A LOGIN server for one exchange; `AUTH LOGIN <b64-user>` (initial response) skips the first
 * prompt. Same modes as PLAIN: with `verify` it checks, without it the identity carries the password.
 */
export function createLoginServer(verify?: PasswordVerifier): SaslServerMechanism {
  let state: 'start' | 'awaiting-user' | 'awaiting-password' | 'finished' = 'start';
  let username = '';
  const fail = (reason: string): SaslStep => {
    state = 'finished';
    return { kind: 'error', code: 'malformed', reason };
  };
  const askPassword = (): SaslStep => {
    state = 'awaiting-password';
    return { kind: 'challenge', challenge: Buffer.from(LOGIN_PASSWORD_PROMPT) };
  };
  return {
    name: 'LOGIN',
    async next(response: Buffer | undefined): Promise<SaslStep> {
      switch (state) {
        case 'finished':
          return { kind: 'error', code: 'malformed', reason: 'LOGIN exchange already finished' };
        case 'start': {
          if (response === undefined) {
            state = 'awaiting-user';
            return { kind: 'challenge', challenge: Buffer.from(LOGIN_USERNAME_PROMPT) };
          }
          const user = field(response);
          if (user === null) return fail('LOGIN username must be non-empty UTF-8 without NUL');
          username = user;
          return askPassword();
        }
        case 'awaiting-user': {
          const user = response === undefined ? null : field(response);
          if (user === null) return fail('LOGIN username must be non-empty UTF-8 without NUL');
          username = user;
          return askPassword();
        }
        case 'awaiting-password': {
          state = 'finished';
          const password = response === undefined ? null : field(response);
          if (password === null) return fail('LOGIN password must be non-empty UTF-8 without NUL');
          if (!verify) return { kind: 'done', identity: { authcid: username, password } };
          const ok = await verify(username, password);
          if (!ok) return { kind: 'error', code: 'bad-credentials', reason: `LOGIN: wrong password for "${username}"` };
          return { kind: 'done', identity: { authcid: username } };
        }
      }
    },
  };
}

/** The client's two LOGIN answers (before base64): the username, then the password. */
export function loginClientResponses(user: string, password: string): [Buffer, Buffer] {
  return [Buffer.from(user, 'utf8'), Buffer.from(password, 'utf8')];
}
