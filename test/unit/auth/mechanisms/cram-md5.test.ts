import { describe, expect, it } from 'vitest';
import {
  createCramMd5Server,
  cramMd5ClientResponse,
  newCramMd5Challenge,
  parseCramMd5Response,
} from '../../../../src/auth/mechanisms/cram-md5.js';
import type { SaslStep } from '../../../../src/types.js';
import { decodeSaslBase64, encodeSaslBase64 } from '../../../../src/auth/sasl-codec.js';

const RFC_CHALLENGE = '<1896.697170952@postoffice.reston.mci.net>';
const PLALA_CHALLENGE_B64 = 'PDk1NTA5Njk2LjM0NjA3MDhAc29tZWhvc3QucGxhbGEub3IuanA+';
const PLALA_LINE = 'c29tZW9uZUBzb21laG9zdC5wbGFsYS5vci5qcCA5MTY4ZmZmNWZlNGRiMmEwMDUzN2NlYmI4OGQ5ODg3MA==';

const secrets: Record<string, string> = { tim: 'tanstaaftanstaaf', 'someone@somehost.plala.or.jp': 'himitsunokotoba' };
const lookupSecret = async (user: string) => secrets[user];

function challengeOf(step: SaslStep): Buffer {
  if (step.kind !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(step)}`);
  return step.challenge;
}

describe('CRAM-MD5 client known answers (FIELD-NOTES 4)', () => {
  it('RFC 2195: tim / tanstaaftanstaaf', () => {
    expect(cramMd5ClientResponse('tim', 'tanstaaftanstaaf', Buffer.from(RFC_CHALLENGE)).toString()).toBe(
      'tim b913a602c7eda7a495b4e6e7334d3890',
    );
  });
  it('the plala provider exchange', () => {
    const line = encodeSaslBase64(cramMd5ClientResponse('someone@somehost.plala.or.jp', 'himitsunokotoba', decodeSaslBase64(PLALA_CHALLENGE_B64)!));
    expect(line).toBe(PLALA_LINE);
  });
});

describe('CRAM-MD5 server', () => {
  it('verifies the RFC 2195 answer for the RFC challenge', async () => {
    const mech = createCramMd5Server({ hostname: 'postoffice.reston.mci.net', lookupSecret, newChallenge: () => RFC_CHALLENGE });
    expect(challengeOf(await mech.next(undefined)).toString()).toBe(RFC_CHALLENGE);
    expect(await mech.next(Buffer.from('tim b913a602c7eda7a495b4e6e7334d3890'))).toEqual({ kind: 'done', identity: { authcid: 'tim' } });
  });

  it('verifies the plala client line', async () => {
    const challenge = decodeSaslBase64(PLALA_CHALLENGE_B64)!.toString();
    const mech = createCramMd5Server({ hostname: 'somehost.plala.or.jp', lookupSecret, newChallenge: () => challenge });
    await mech.next(undefined);
    expect(await mech.next(decodeSaslBase64(PLALA_LINE)!)).toEqual({
      kind: 'done',
      identity: { authcid: 'someone@somehost.plala.or.jp' },
    });
  });

  it('issues <random.timestamp@hostname>, different every exchange, and round-trips with the client', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const mech = createCramMd5Server({ hostname: 'mx.example.com', lookupSecret });
      const challenge = challengeOf(await mech.next(undefined));
      expect(challenge.toString()).toMatch(/^<\d+\.\d+@mx\.example\.com>$/);
      seen.add(challenge.toString());
      expect(await mech.next(cramMd5ClientResponse('tim', 'tanstaaftanstaaf', challenge))).toEqual({
        kind: 'done',
        identity: { authcid: 'tim' },
      });
    }
    expect(seen.size).toBe(20);
    expect(newCramMd5Challenge('h')).not.toBe(newCramMd5Challenge('h'));
  });

  it('refuses a wrong secret and an unknown user with the same code', async () => {
    for (const [user, secret] of [
      ['tim', 'wrong'],
      ['nobody', 'tanstaaftanstaaf'],
    ] as const) {
      const mech = createCramMd5Server({ hostname: 'h', lookupSecret });
      const challenge = challengeOf(await mech.next(undefined));
      expect(await mech.next(cramMd5ClientResponse(user, secret, challenge))).toMatchObject({ kind: 'error', code: 'bad-credentials' });
    }
  });

  it('refuses a replayed answer: the RFC answer does not fit a fresh challenge', async () => {
    const mech = createCramMd5Server({ hostname: 'h', lookupSecret });
    await mech.next(undefined);
    expect(await mech.next(Buffer.from('tim b913a602c7eda7a495b4e6e7334d3890'))).toMatchObject({ kind: 'error', code: 'bad-credentials' });
  });

  it('refuses an initial response', async () => {
    const mech = createCramMd5Server({ hostname: 'h', lookupSecret });
    expect(await mech.next(Buffer.from('tim b913a602c7eda7a495b4e6e7334d3890'))).toMatchObject({ kind: 'error', code: 'malformed' });
    expect(await createCramMd5Server({ hostname: 'h', lookupSecret }).next(Buffer.alloc(0))).toMatchObject({ kind: 'error', code: 'malformed' });
  });

  it.each([
    ['no space', 'timb913a602c7eda7a495b4e6e7334d3890'],
    ['empty user', ' b913a602c7eda7a495b4e6e7334d3890'],
    ['uppercase hex', 'tim B913A602C7EDA7A495B4E6E7334D3890'],
    ['31 hex digits', 'tim b913a602c7eda7a495b4e6e7334d389'],
    ['33 hex digits', 'tim b913a602c7eda7a495b4e6e7334d38900'],
    ['non-hex', 'tim g913a602c7eda7a495b4e6e7334d3890'],
    ['empty', ''],
  ])('%s -> malformed', async (_what, text) => {
    expect(parseCramMd5Response(Buffer.from(text))).toBeNull();
    const mech = createCramMd5Server({ hostname: 'h', lookupSecret, newChallenge: () => RFC_CHALLENGE });
    await mech.next(undefined);
    expect(await mech.next(Buffer.from(text))).toMatchObject({ kind: 'error', code: 'malformed' });
  });

  it('accepts a user name that contains a space (splits at the last one)', async () => {
    const mech = createCramMd5Server({ hostname: 'h', lookupSecret: async (u) => (u === 'Tim Berners' ? 's' : undefined) });
    const challenge = challengeOf(await mech.next(undefined));
    expect(await mech.next(cramMd5ClientResponse('Tim Berners', 's', challenge))).toEqual({ kind: 'done', identity: { authcid: 'Tim Berners' } });
  });

  it('looks up unknown users too (same work as known ones)', async () => {
    const looked: string[] = [];
    const mech = createCramMd5Server({
      hostname: 'h',
      lookupSecret: async (u) => {
        looked.push(u);
        return undefined;
      },
    });
    await mech.next(undefined);
    await mech.next(Buffer.from('ghost 00000000000000000000000000000000'));
    expect(looked).toEqual(['ghost']);
  });
});
