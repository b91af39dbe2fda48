import { describe, expect, it } from 'vitest';
import { createExternalServer, externalClientResponse } from '../../../../src/auth/mechanisms/external.js';

describe('EXTERNAL server', () => {
  it('accepts an empty authzid as the certificate user (initial response "=")', async () => {
    expect(await createExternalServer({ certificateUser: 'printer' }).next(externalClientResponse())).toEqual({
      kind: 'done',
      identity: { authcid: 'printer' },
    });
  });

  it('sends an empty challenge without an initial response, then accepts the matching authzid', async () => {
    const mech = createExternalServer({ certificateUser: 'printer' });
    expect(await mech.next(undefined)).toEqual({ kind: 'challenge', challenge: Buffer.alloc(0) });
    expect(await mech.next(externalClientResponse('printer'))).toEqual({ kind: 'done', identity: { authcid: 'printer' } });
  });

  it('refuses another authzid', async () => {
    expect(await createExternalServer({ certificateUser: 'printer' }).next(Buffer.from('admin'))).toMatchObject({
      kind: 'error',
      code: 'bad-credentials',
    });
  });

  it('refuses at once when there is no verified certificate', async () => {
    expect(await createExternalServer({}).next(undefined)).toMatchObject({ kind: 'error', code: 'bad-credentials' });
    expect(await createExternalServer({}).next(Buffer.alloc(0))).toMatchObject({ kind: 'error', code: 'bad-credentials' });
  });

  it('refuses an authzid that is not UTF-8', async () => {
    expect(await createExternalServer({ certificateUser: 'printer' }).next(Buffer.from([0xff]))).toMatchObject({
      kind: 'error',
      code: 'malformed',
    });
  });
});
