import { describe, expect, it } from 'vitest';
import { createLoginServer, loginClientResponses } from '../../../../src/auth/mechanisms/login.js';
import { encodeSaslBase64 } from '../../../../src/auth/sasl-codec.js';

const verify = async (user: string, password: string) => user === 'doorphone' && password === 'ring-ring';

describe('LOGIN client', () => {
  it('answers the two prompts with the username and the password', () => {
    expect(loginClientResponses('doorphone', 'ring-ring').map(encodeSaslBase64)).toEqual(['ZG9vcnBob25l', 'cmluZy1yaW5n']);
  });
});

describe('LOGIN server', () => {
  it('prompts Username: then Password: (334 VXNlcm5hbWU6 / 334 UGFzc3dvcmQ6) and verifies', async () => {
    const mech = createLoginServer(verify);
    const first = await mech.next(undefined);
    expect(first.kind === 'challenge' && encodeSaslBase64(first.challenge)).toBe('VXNlcm5hbWU6');
    const [user, pass] = loginClientResponses('doorphone', 'ring-ring');
    const second = await mech.next(user);
    expect(second.kind === 'challenge' && encodeSaslBase64(second.challenge)).toBe('UGFzc3dvcmQ6');
    expect(await mech.next(pass)).toEqual({ kind: 'done', identity: { authcid: 'doorphone' } });
  });

  it('takes the username as initial response (AUTH LOGIN <b64-user>) and asks only for the password', async () => {
    const mech = createLoginServer(verify);
    const [user, pass] = loginClientResponses('doorphone', 'ring-ring');
    expect(await mech.next(user)).toEqual({ kind: 'challenge', challenge: Buffer.from('Password:') });
    expect(await mech.next(pass)).toEqual({ kind: 'done', identity: { authcid: 'doorphone' } });
  });

  it('refuses a wrong password', async () => {
    const mech = createLoginServer(verify);
    await mech.next(Buffer.from('doorphone'));
    expect(await mech.next(Buffer.from('wrong'))).toMatchObject({ kind: 'error', code: 'bad-credentials' });
  });

  it('forward mode returns the identity with the password', async () => {
    const mech = createLoginServer();
    await mech.next(undefined);
    await mech.next(Buffer.from('someone@example.net'));
    expect(await mech.next(Buffer.from('pw'))).toEqual({
      kind: 'done',
      identity: { authcid: 'someone@example.net', password: 'pw' },
    });
  });

  it.each([
    ['empty username', Buffer.alloc(0), undefined],
    ['NUL in username', Buffer.from('a\0b'), undefined],
    ['invalid UTF-8 username', Buffer.from([0xff]), undefined],
    ['empty password', Buffer.from('doorphone'), Buffer.alloc(0)],
    ['NUL in password', Buffer.from('doorphone'), Buffer.from('ring\0ring')],
  ])('%s -> malformed', async (_what, user, pass) => {
    const mech = createLoginServer();
    await mech.next(undefined);
    const afterUser = await mech.next(user);
    const step = pass === undefined ? afterUser : await mech.next(pass);
    expect(step).toMatchObject({ kind: 'error', code: 'malformed' });
  });

  it('is finished after the password', async () => {
    const mech = createLoginServer(verify);
    await mech.next(Buffer.from('doorphone'));
    await mech.next(Buffer.from('ring-ring'));
    expect(await mech.next(Buffer.from('again'))).toMatchObject({ kind: 'error', code: 'malformed' });
  });
});
