import { describe, expect, it } from 'vitest';
import {
  createServerMechanism,
  cramMd5ClientResponse,
  digestMd5ClientResponse,
  plainClientResponse,
  serverMechanismNames,
} from '../../../../src/auth/mechanisms/index.js';
import type { SaslServerMechanism, SaslStep } from '../../../../src/types.js';

const opts = {
  hostname: 'relay.lan',
  lookupSecret: async (u: string) => (u === 'doorphone' ? 'ring-ring' : undefined),
  verifyPassword: async (u: string, p: string) => u === 'doorphone' && p === 'ring-ring',
};

function challengeOf(step: SaslStep): Buffer {
  if (step.kind !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(step)}`);
  return step.challenge;
}

describe('createServerMechanism', () => {
  it('knows the five mechanisms, by name in any case', () => {
    expect([...serverMechanismNames]).toEqual(['PLAIN', 'LOGIN', 'CRAM-MD5', 'DIGEST-MD5', 'EXTERNAL']);
    for (const name of serverMechanismNames) {
      expect(createServerMechanism(name.toLowerCase(), { ...opts, certificateUser: 'x' })?.name).toBe(name);
    }
  });

  it('returns undefined for a mechanism we do not implement', () => {
    expect(createServerMechanism('GSSAPI', opts)).toBeUndefined();
    expect(createServerMechanism('SCRAM-SHA-256', opts)).toBeUndefined();
  });

  it('makes a fresh mechanism per exchange', async () => {
    const a = createServerMechanism('CRAM-MD5', opts)!;
    const b = createServerMechanism('CRAM-MD5', opts)!;
    expect(challengeOf(await a.next(undefined))).not.toEqual(challengeOf(await b.next(undefined)));
  });

  it('wires PLAIN to verifyPassword, CRAM-MD5 and DIGEST-MD5 to lookupSecret', async () => {
    expect(await createServerMechanism('PLAIN', opts)!.next(plainClientResponse('doorphone', 'ring-ring'))).toMatchObject({ kind: 'done' });
    expect(await createServerMechanism('PLAIN', opts)!.next(plainClientResponse('doorphone', 'nope'))).toMatchObject({ kind: 'error' });

    const cram: SaslServerMechanism = createServerMechanism('CRAM-MD5', opts)!;
    const c1 = challengeOf(await cram.next(undefined));
    expect(await cram.next(cramMd5ClientResponse('doorphone', 'ring-ring', c1))).toMatchObject({ kind: 'done' });

    const digest = createServerMechanism('DIGEST-MD5', opts)!;
    const c2 = challengeOf(await digest.next(undefined));
    expect(c2.toString()).toContain('realm="relay.lan"');
    const out = digestMd5ClientResponse({ user: 'doorphone', password: 'ring-ring', challenge: c2, digestUri: 'smtp/192.168.1.2' });
    expect(challengeOf(await digest.next(out.response)).toString()).toBe(`rspauth=${out.expectedRspauth}`);
  });

  it('uses the configured realm and extra digest-uri hosts', async () => {
    const digest = createServerMechanism('DIGEST-MD5', { ...opts, realm: 'example.com', digestUriHosts: ['mail.lan'] })!;
    const challenge = challengeOf(await digest.next(undefined));
    expect(challenge.toString()).toContain('realm="example.com"');
    const out = digestMd5ClientResponse({ user: 'doorphone', password: 'ring-ring', challenge, digestUri: 'smtp/mail.lan' });
    expect(await digest.next(out.response)).toMatchObject({ kind: 'challenge' });
  });

  it('gives PLAIN the forward behaviour without verifyPassword', async () => {
    expect(await createServerMechanism('PLAIN', { hostname: 'h' })!.next(plainClientResponse('u', 'p'))).toEqual({
      kind: 'done',
      identity: { authcid: 'u', password: 'p' },
    });
  });

  it('throws on wiring errors (CRAM-MD5 or DIGEST-MD5 without a secret lookup)', () => {
    expect(() => createServerMechanism('CRAM-MD5', { hostname: 'h' })).toThrow(/lookupSecret/);
    expect(() => createServerMechanism('DIGEST-MD5', { hostname: 'h' })).toThrow(/lookup/);
  });
});
