// Connection rate per client address (`limits.ratePerClient` connections per minute): a sliding window of
// accept times per address. Shared by all listeners of the process, like the connection counts.
import { clientKey } from './allowlist.js';

/** Bounds memory under a spray of addresses: past this, idle entries are dropped, then the oldest. */
const MAX_TRACKED = 50_000;
const WINDOW_MS = 60_000;

export class RateLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    private perMinute: number | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** A reload may change the limit; counts so far are kept. */
  setLimit(perMinute: number | undefined): void {
    this.perMinute = perMinute;
  }

  /** Record a connection attempt; false when this address is over its rate (the attempt is not counted). */
  allow(rawAddress: string): boolean {
    if (this.perMinute === undefined) return true;
    // One host may use any address of its IPv6 /64: count it as one client.
    const address = clientKey(rawAddress);
    const now = this.now();
    const recent = (this.hits.get(address) ?? []).filter((t) => now - t < WINDOW_MS);
    if (recent.length >= this.perMinute) {
      this.hits.set(address, recent);
      return false;
    }
    recent.push(now);
    this.hits.delete(address); // re-insert: Map order is then least recently seen first
    this.hits.set(address, recent);
    if (this.hits.size > MAX_TRACKED) this.prune(now);
    return true;
  }

  get tracked(): number {
    return this.hits.size;
  }

  /** Down to 90% of the cap, so a spray of new addresses does not rescan the whole map on every accept. */
  private prune(now: number): void {
    const target = Math.floor(MAX_TRACKED * 0.9);
    for (const [a, ts] of this.hits) if (ts.every((t) => now - t >= WINDOW_MS)) this.hits.delete(a);
    for (const a of this.hits.keys()) {
      if (this.hits.size <= target) break;
      this.hits.delete(a);
    }
  }
}
