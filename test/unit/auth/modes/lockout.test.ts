import { describe, expect, it } from 'vitest';
import { FailureLockout, lockoutKey } from '../../../../src/auth/lockout.js';
import { compile } from '../../../../src/config/compile.js';
import { configSchema } from '../../../../src/config/schema.js';

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

  it('counts an IPv6 client by its /64: hopping addresses inside it does not escape the lockout', () => {
    const { l } = make();
    l.recordFailure('2001:db8:1:2::10');
    l.recordFailure('2001:db8:1:2:aaaa::11');
    l.recordFailure('2001:db8:1:2:ffff:ffff:ffff:ffff');
    expect(l.check('2001:db8:1:2::99')?.code).toBe(421);
    expect(l.check('2001:db8:1:3::10')).toBeUndefined();
    expect(lockoutKey('2001:0db8:0001:0002::')).toBe('2001:db8:1:2::/64');
    expect(lockoutKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
  });
});

describe('lockout across a config reload', () => {
  it('a listener of the same name keeps its lockouts and takes the new limits', async () => {
    const cfg = (maxFailures: number) =>
      configSchema.parse({
        listeners: [{ name: 'devices', listen: '127.0.0.1:0', upstream: 'u', auth: { maxFailures } }],
        upstreams: { u: { host: '127.0.0.1', port: 25 } },
      });
    const first = await compile(cfg(2));
    const lock = first.listeners[0].lockout!;
    lock.recordFailure('198.51.100.9');
    lock.recordFailure('198.51.100.9');
    expect(lock.check('198.51.100.9')?.code).toBe(421);
    const second = await compile(cfg(5), first);
    expect(second.listeners[0].lockout!.check('198.51.100.9')?.code).toBe(421);
    // Without the running config (a fresh start) nothing is carried over.
    expect((await compile(cfg(5))).listeners[0].lockout!.check('198.51.100.9')).toBeUndefined();
  });
});
