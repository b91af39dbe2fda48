import { describe, expect, it } from 'vitest';
import { createPlainServer, parsePlainMessage, plainClientResponse } from '../../../../src/auth/mechanisms/plain.js';
import { decodeSaslBase64 } from '../../../../src/auth/sasl-codec.js';

const users: Record<string, string> = { tim: 'tanstaaftanstaaf', jörg: 'pässwörd' };
const verify = async (authcid: string, password: string, authzid?: string) =>
  users[authcid] === password && (authzid === undefined || authzid === authcid);

describe('PLAIN client', () => {
  it('builds authzid NUL authcid NUL passwd', () => {
    expect(plainClientResponse('tim', 'tanstaaftanstaaf').toString('base64')).toBe('AHRpbQB0YW5zdGFhZnRhbnN0YWFm');
    expect(plainClientResponse('tim', 'secret', 'admin')).toEqual(Buffer.from('admin\0tim\0secret'));
  });
});

describe('PLAIN server, local mode', () => {
  it('accepts an initial response with the right password, and keeps no password in the identity', async () => {
    const step = await createPlainServer(verify).next(plainClientResponse('tim', 'tanstaaftanstaaf'));
    expect(step).toEqual({ kind: 'done', identity: { authcid: 'tim' } });
  });

  it('sends an empty challenge when there is no initial response, then accepts the message', async () => {
    const mech = createPlainServer(verify);
    expect(await mech.next(undefined)).toEqual({ kind: 'challenge', challenge: Buffer.alloc(0) });
    expect(await mech.next(plainClientResponse('jörg', 'pässwörd'))).toEqual({ kind: 'done', identity: { authcid: 'jörg' } });
  });

  it('refuses a wrong password as bad-credentials', async () => {
    const step = await createPlainServer(verify).next(plainClientResponse('tim', 'wrong'));
    expect(step).toMatchObject({ kind: 'error', code: 'bad-credentials' });
  });

  it('passes the authzid to verify and reports it when allowed', async () => {
    expect(await createPlainServer(verify).next(plainClientResponse('tim', 'tanstaaftanstaaf', 'tim'))).toEqual({
      kind: 'done',
      identity: { authcid: 'tim', authzid: 'tim' },
    });
    expect(await createPlainServer(verify).next(plainClientResponse('tim', 'tanstaaftanstaaf', 'root'))).toMatchObject({
      kind: 'error',
      code: 'bad-credentials',
    });
  });

  it('does not call verify for a malformed message', async () => {
    let calls = 0;
    const mech = createPlainServer(async () => {
      calls++;
      return true;
    });
    expect(await mech.next(Buffer.from('tim\0secret'))).toMatchObject({ kind: 'error', code: 'malformed' });
    expect(calls).toBe(0);
  });

  it('lets a failing verifier reject (the session answers 454)', async () => {
    const mech = createPlainServer(async () => {
      throw new Error('store down');
    });
    await expect(mech.next(plainClientResponse('tim', 'x'))).rejects.toThrow('store down');
  });

  it('is finished after one message', async () => {
    const mech = createPlainServer(verify);
    await mech.next(plainClientResponse('tim', 'tanstaaftanstaaf'));
    expect(await mech.next(plainClientResponse('tim', 'tanstaaftanstaaf'))).toMatchObject({ kind: 'error', code: 'malformed' });
  });
});

describe('PLAIN server, forward mode', () => {
  it('returns the identity with the password, even a wrong one (the upstream decides)', async () => {
    const step = await createPlainServer().next(decodeSaslBase64('AHRpbQB0YW5zdGFhZnRhbnN0YWFm')!);
    expect(step).toEqual({ kind: 'done', identity: { authcid: 'tim', password: 'tanstaaftanstaaf' } });
    const withZ = await createPlainServer().next(plainClientResponse('tim', 'x', 'boss'));
    expect(withZ).toEqual({ kind: 'done', identity: { authcid: 'tim', authzid: 'boss', password: 'x' } });
  });
});

describe('PLAIN malformed messages', () => {
  it.each([
    ['one NUL', Buffer.from('tim\0secret')],
    ['no NUL', Buffer.from('timsecret')],
    ['three NULs', Buffer.from('\0tim\0sec\0ret')],
    ['empty authcid', Buffer.from('\0\0secret')],
    ['empty password', Buffer.from('\0tim\0')],
    ['empty message (AUTH PLAIN =)', Buffer.alloc(0)],
    ['invalid UTF-8 in authcid', Buffer.from([0, 0x74, 0xff, 0, 0x70])],
    ['invalid UTF-8 in password', Buffer.from([0, 0x74, 0, 0xc3, 0x28])],
  ])('%s -> malformed', async (_what, msg) => {
    expect(parsePlainMessage(msg)).toBeNull();
    expect(await createPlainServer().next(msg)).toMatchObject({ kind: 'error', code: 'malformed' });
  });

  it('a missing response after the empty challenge is malformed', async () => {
    const mech = createPlainServer();
    await mech.next(undefined);
    expect(await mech.next(undefined)).toMatchObject({ kind: 'error', code: 'malformed' });
  });
});
