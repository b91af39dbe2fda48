import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../../src/listener/rate-limit.js';
import { clientKey } from '../../../src/listener/allowlist.js';

describe('RateLimiter', () => {
  it('allows ratePerClient connections per minute and refuses the next, per client', () => {
    let now = 0;
    const r = new RateLimiter(3, () => now);
    expect([r.allow('192.0.2.1'), r.allow('192.0.2.1'), r.allow('192.0.2.1'), r.allow('192.0.2.1')]).toEqual([true, true, true, false]);
    expect(r.allow('192.0.2.2')).toBe(true);
    now += 60_001;
    expect(r.allow('192.0.2.1')).toBe(true);
  });

  it('counts an IPv6 client by its /64, so hopping addresses does not escape the limit', () => {
    const r = new RateLimiter(2, () => 0);
    expect(r.allow('2001:db8:5:6::1')).toBe(true);
    expect(r.allow('2001:db8:5:6::2')).toBe(true);
    expect(r.allow('2001:db8:5:6:ffff::3')).toBe(false);
    expect(r.allow('2001:db8:5:7::1')).toBe(true);
    expect(clientKey('2001:db8:5:6:ffff::3')).toBe('2001:db8:5:6::/64');
  });
});
