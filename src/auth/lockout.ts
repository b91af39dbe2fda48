// Brute-force lockout per client address: `maxFailures` failed AUTH attempts within `failureWindow`
// lock the address out for `lockout`; its AUTH then gets 421 and the connection closes. No address is
// exempt: behind a proxy or NAT every client may look local. An IPv6 client is counted by its /64, since
// one host can use any address of it. State lives in this process and survives a config reload.
import type { SmtpReply } from '../types.js';
import { clientKey } from '../listener/allowlist.js';
import type { Lockout } from '../config/compile.js';

export interface LockoutOptions {
  hostname: string;
  maxFailures: number;
  failureWindowMs: number;
  lockoutMs: number;
  now?: () => number;
}

/** Bounds memory under a spray of addresses: past this, expired entries are dropped, then the oldest. */
const MAX_TRACKED = 50_000;

import { authLockedOut as lockedOut } from '../protocol/replies.js';

export { lockedOut };

export { clientKey as lockoutKey };

export class FailureLockout implements Lockout {
  private readonly failures = new Map<string, number[]>();
  private readonly lockedUntil = new Map<string, number>();
  private readonly now: () => number;

  constructor(private opts: LockoutOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** New limits from a reloaded config; the failures and lockouts counted so far stay. */
  setOptions(opts: LockoutOptions): void {
    this.opts = { ...opts, now: this.opts.now };
  }

  check(rawAddress: string): SmtpReply | undefined {
    const address = clientKey(rawAddress);
    const until = this.lockedUntil.get(address);
    if (until === undefined) return undefined;
    if (this.now() < until) return lockedOut(this.opts.hostname);
    this.lockedUntil.delete(address);
    return undefined;
  }

  recordFailure(rawAddress: string): void {
    const address = clientKey(rawAddress);
    const now = this.now();
    const recent = (this.failures.get(address) ?? []).filter((t) => now - t < this.opts.failureWindowMs);
    recent.push(now);
    if (recent.length >= this.opts.maxFailures) {
      this.failures.delete(address);
      this.lockedUntil.set(address, now + this.opts.lockoutMs);
    } else {
      this.failures.set(address, recent);
    }
    if (this.failures.size + this.lockedUntil.size > MAX_TRACKED) this.prune(now);
  }

  private prune(now: number): void {
    for (const [a, ts] of this.failures) if (ts.every((t) => now - t >= this.opts.failureWindowMs)) this.failures.delete(a);
    for (const [a, until] of this.lockedUntil) if (until <= now) this.lockedUntil.delete(a);
    // Still too many: forget the oldest failure records (insertion order), never active lockouts first.
    for (const a of this.failures.keys()) {
      if (this.failures.size + this.lockedUntil.size <= MAX_TRACKED) break;
      this.failures.delete(a);
    }
  }
}
