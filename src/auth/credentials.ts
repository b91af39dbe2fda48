// Local mode's user store: check a password, give a mechanism the secret it needs, map a user (or a
// verified client certificate) to the upstream account it sends as. Built once per listener.
//
// Storing secrets: `password` (or `passwordFile`, read at load time) serves every mechanism. A user with
// only `digestHash` = hex MD5(name:realm:password) can log in with DIGEST-MD5 and nothing else, so the
// plaintext need not be kept anywhere; CRAM-MD5, PLAIN and LOGIN need the plaintext by their design.
import fs from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ListenerConfig, UpstreamConfig } from '../config/schema.js';
import type { DigestMd5Credentials } from './mechanisms/index.js';

export interface UpstreamAccount {
  /** The account's key in `upstreams.<name>.accounts`. */
  name: string;
  user: string;
  password: string;
}

interface LocalUser {
  name: string;
  password?: string;
  digestHash?: string;
  upstreamAccount?: string;
  certificateSubject?: string;
}

export class Credentials {
  private readonly users = new Map<string, LocalUser>();
  private readonly accounts = new Map<string, UpstreamAccount>();
  readonly defaultAccount: string | undefined;

  constructor(auth: ListenerConfig['auth'], upstream: UpstreamConfig) {
    for (const u of auth.users) {
      this.users.set(u.name, {
        name: u.name,
        password: u.password ?? readSecretFile(u.passwordFile),
        digestHash: u.digestHash?.toLowerCase(),
        upstreamAccount: u.upstreamAccount,
        certificateSubject: u.certificateSubject,
      });
    }
    for (const [name, a] of Object.entries(upstream.accounts)) {
      const password = a.password ?? readSecretFile(a.passwordFile);
      if (password !== undefined) this.accounts.set(name, { name, user: a.user, password });
    }
    this.defaultAccount = auth.defaultUpstreamAccount;
  }

  /** PLAIN/LOGIN: the password is right, and authzid (when given) is the user itself. */
  async verifyPassword(authcid: string, password: string, authzid?: string): Promise<boolean> {
    const stored = this.users.get(authcid)?.password;
    // Compare fixed-length digests so neither the length nor the content leaks through timing.
    const a = createHash('sha256').update(password, 'utf8').digest();
    const b = createHash('sha256').update(stored ?? '\0no such user', 'utf8').digest();
    const match = timingSafeEqual(a, b);
    return stored !== undefined && match && (authzid === undefined || authzid === authcid);
  }

  /** CRAM-MD5: the plaintext secret (users that only have a digestHash cannot use it). */
  async secret(user: string): Promise<string | undefined> {
    return this.users.get(user)?.password;
  }

  /** DIGEST-MD5: the stored H(user:realm:password) when configured, else the plaintext. */
  async digest(user: string): Promise<DigestMd5Credentials | undefined> {
    const u = this.users.get(user);
    if (!u) return undefined;
    if (u.digestHash !== undefined) return { ha1Hex: u.digestHash };
    return u.password === undefined ? undefined : { password: u.password };
  }

  /** EXTERNAL: the user whose certificateSubject is the verified certificate's subject CN. */
  userForCertificate(cn: string | undefined): string | undefined {
    if (cn === undefined) return undefined;
    for (const u of this.users.values()) if (u.certificateSubject === cn) return u.name;
    return undefined;
  }

  /**
   * The upstream account a client sends as: its user's `upstreamAccount`, else the listener's
   * `defaultUpstreamAccount` (also for unauthenticated clients in clients.relayWithoutAuth).
   */
  accountFor(user: string | undefined): UpstreamAccount | undefined {
    const name = (user !== undefined ? this.users.get(user)?.upstreamAccount : undefined) ?? this.defaultAccount;
    return name === undefined ? undefined : this.accounts.get(name);
  }

  /** The account name a user maps to (for logs; no secret). */
  accountNameFor(user: string | undefined): string | undefined {
    return (user !== undefined ? this.users.get(user)?.upstreamAccount : undefined) ?? this.defaultAccount;
  }
}

/** load.ts reads passwordFile into password; configs built in code may still name only the file. */
function readSecretFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}
