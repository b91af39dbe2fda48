// RFC 4422 appendix A EXTERNAL: the identity comes from the TLS layer (a verified client
// certificate mapped to a user); the client only sends an authzid, usually empty.
import type { SaslServerMechanism, SaslStep } from '../../types.js';
import { decodeUtf8Strict } from '../sasl-codec.js';

export interface ExternalServerOptions {
  /** The user the verified client certificate maps to; undefined when there is none. */
  certificateUser?: string;
}

/** An EXTERNAL server for one exchange. */
export function createExternalServer(opts: ExternalServerOptions): SaslServerMechanism {
  let state: 'start' | 'awaiting-authzid' | 'finished' = 'start';
  return {
    name: 'EXTERNAL',
    async next(response: Buffer | undefined): Promise<SaslStep> {
      if (state === 'finished') return { kind: 'error', code: 'malformed', reason: 'EXTERNAL exchange already finished' };
      const user = opts.certificateUser;
      if (user === undefined) {
        // Nothing the client can send makes this succeed, so say so before asking for anything.
        state = 'finished';
        return { kind: 'error', code: 'bad-credentials', reason: 'EXTERNAL: no verified client certificate mapped to a user' };
      }
      if (response === undefined) {
        if (state === 'awaiting-authzid') {
          state = 'finished';
          return { kind: 'error', code: 'malformed', reason: 'EXTERNAL: response missing' };
        }
        state = 'awaiting-authzid';
        return { kind: 'challenge', challenge: Buffer.alloc(0) };
      }
      state = 'finished';
      const authzid = decodeUtf8Strict(response);
      if (authzid === null || authzid.includes('\0')) return { kind: 'error', code: 'malformed', reason: 'EXTERNAL: authzid is not UTF-8' };
      if (authzid !== '' && authzid !== user) {
        return { kind: 'error', code: 'bad-credentials', reason: `EXTERNAL: certificate user "${user}" may not act as "${authzid}"` };
      }
      return { kind: 'done', identity: { authcid: user } };
    },
  };
}

/** The client's EXTERNAL message: the authzid, empty to act as the certificate's own user. */
export function externalClientResponse(authzid = ''): Buffer {
  return Buffer.from(authzid, 'utf8');
}
