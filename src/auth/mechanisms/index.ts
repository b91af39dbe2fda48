// The server mechanisms by their SASL name, so the session can make one per AUTH exchange.
import type { SaslServerMechanism } from '../../types.js';
import { createCramMd5Server } from './cram-md5.js';
import { createDigestMd5Server, type DigestMd5Credentials } from './digest-md5.js';
import { createExternalServer } from './external.js';
import { createLoginServer } from './login.js';
import { createPlainServer, type PasswordVerifier } from './plain.js';

export const serverMechanismNames = ['PLAIN', 'LOGIN', 'CRAM-MD5', 'DIGEST-MD5', 'EXTERNAL'] as const;
export type ServerMechanismName = (typeof serverMechanismNames)[number];

export function isServerMechanismName(name: string): name is ServerMechanismName {
  return (serverMechanismNames as readonly string[]).includes(name);
}

/** What the mechanisms may need; each takes only its part. */
export interface ServerMechanismOptions {
  /** Our host name: CRAM-MD5 challenge, DIGEST-MD5 default realm and digest-uri host. */
  hostname: string;
  /** DIGEST-MD5 realm; defaults to `hostname`. */
  realm?: string;
  /** More host names accepted in a DIGEST-MD5 digest-uri (IP literals always are). */
  digestUriHosts?: string[];
  /** PLAIN/LOGIN: check the password (local mode). Absent: forward mode, the identity carries the password. */
  verifyPassword?: PasswordVerifier;
  /** CRAM-MD5 (and DIGEST-MD5 when `lookupDigest` is absent): a user's plaintext secret. */
  lookupSecret?: (user: string) => Promise<string | undefined>;
  /** DIGEST-MD5: a user's password or stored hex MD5(user:realm:password). */
  lookupDigest?: (user: string, realm: string) => Promise<DigestMd5Credentials | undefined>;
  /** EXTERNAL: the user the verified client certificate maps to. */
  certificateUser?: string;
}

/**
 * A fresh server mechanism for one exchange, or undefined when `name` (case-insensitive) is not one
 * we implement (the session answers 504). Throws when the options lack what the mechanism needs:
 * that is a wiring error, not a client's.
 */
export function createServerMechanism(name: string, opts: ServerMechanismOptions): SaslServerMechanism | undefined {
  const mech = name.toUpperCase();
  if (!isServerMechanismName(mech)) return undefined;
  switch (mech) {
    case 'PLAIN':
      return createPlainServer(opts.verifyPassword);
    case 'LOGIN':
      return createLoginServer(opts.verifyPassword);
    case 'CRAM-MD5': {
      if (!opts.lookupSecret) throw new Error('CRAM-MD5 needs lookupSecret (the plaintext secret of each user)');
      return createCramMd5Server({ hostname: opts.hostname, lookupSecret: opts.lookupSecret });
    }
    case 'DIGEST-MD5': {
      const lookupSecret = opts.lookupSecret;
      const lookup =
        opts.lookupDigest ??
        (lookupSecret &&
          (async (user: string) => {
            const password = await lookupSecret(user);
            return password === undefined ? undefined : { password };
          }));
      if (!lookup) throw new Error('DIGEST-MD5 needs lookupDigest or lookupSecret');
      return createDigestMd5Server({
        hostname: opts.hostname,
        lookup,
        ...(opts.realm === undefined ? {} : { realm: opts.realm }),
        ...(opts.digestUriHosts === undefined ? {} : { digestUriHosts: opts.digestUriHosts }),
      });
    }
    case 'EXTERNAL':
      return createExternalServer(opts.certificateUser === undefined ? {} : { certificateUser: opts.certificateUser });
  }
}

export { createPlainServer, plainClientResponse, parsePlainMessage, type PasswordVerifier } from './plain.js';
export { createLoginServer, loginClientResponses } from './login.js';
export { createCramMd5Server, cramMd5ClientResponse } from './cram-md5.js';
export { createDigestMd5Server, digestMd5ClientResponse, digestMd5Ha1Hex, type DigestMd5Credentials } from './digest-md5.js';
export { createExternalServer, externalClientResponse } from './external.js';
