// Connection rate per client address (`limits.ratePerClient` connections per minute): a sliding window of
// accept times per address. Shared by all listeners of the process, like the connection counts.

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
  allow(address: string): boolean {
    if (this.perMinute === undefined) return true;
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

  private prune(now: number): void {
    for (const [a, ts] of this.hits) if (ts.every((t) => now - t >= WINDOW_MS)) this.hits.delete(a);
    for (const a of this.hits.keys()) {
      if (this.hits.size <= MAX_TRACKED) break;
      this.hits.delete(a);
    }
  }
}
