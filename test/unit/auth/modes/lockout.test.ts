import { describe, expect, it } from 'vitest';
import { FailureLockout } from '../../../../src/auth/lockout.js';

describe('FailureLockout', () => {
  const make = () => {
    let now = 1_000_000;
    const l = new FailureLockout({ hostname: 'mx.test', maxFailures: 3, failureWindowMs: 60_000, lockoutMs: 300_000, now: () => now });
    return { l, advance: (ms: number) => (now += ms) };
  };

  it('locks an address out after maxFailures within the window, with 421 4.7.0', () => {
    const { l } = make();
    l.recordFailure('192.0.2.1');
    l.recordFailure('192.0.2.1');
    expect(l.check('192.0.2.1')).toBeUndefined();
    l.recordFailure('192.0.2.1');
    expect(l.check('192.0.2.1')).toEqual({ code: 421, lines: ['4.7.0 mx.test Too many failed authentication attempts, closing connection'] });
    expect(l.check('192.0.2.2')).toBeUndefined();
  });

  it('forgets failures older than the window', () => {
    const { l, advance } = make();
    l.recordFailure('192.0.2.1');
    l.recordFailure('192.0.2.1');
    advance(60_001);
    l.recordFailure('192.0.2.1');
    expect(l.check('192.0.2.1')).toBeUndefined();
  });

  it('lifts the lockout after the cool-down; loopback is not exempt', () => {
    const { l, advance } = make();
    for (let i = 0; i < 3; i++) l.recordFailure('127.0.0.1');
    expect(l.check('127.0.0.1')?.code).toBe(421);
    advance(299_999);
    expect(l.check('127.0.0.1')?.code).toBe(421);
    advance(2);
    expect(l.check('127.0.0.1')).toBeUndefined();
  });
});
