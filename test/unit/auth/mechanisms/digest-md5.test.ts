import { describe, expect, it } from 'vitest';
import {
  createDigestMd5Server,
  digestMd5ClientResponse,
  digestMd5Ha1Hex,
  digestUriAccepted,
  parseDigestDirectives,
  type DigestMd5ServerOptions,
} from '../../../../src/auth/mechanisms/digest-md5.js';
import type { SaslStep } from '../../../../src/types.js';

// FIELD-NOTES 4
const V = {
  user: 'info.example.com',
  realm: 'example.com',
  password: 'userpassword',
  nonce: 'JQMKtdgbEhMra4GdAYmAjQ==',
  cnonce: 'lWF{[QuiRj}_L[PW',
  digestUri: 'smtp/mx.example.com',
  response: '9aac0f215f229cf82083b86472a2788d',
  rspauth: '8252052849c337d2b318ef3b11d8db83',
};
const CHALLENGE = Buffer.from(`realm="${V.realm}",nonce="${V.nonce}",qop="auth",charset=utf-8,algorithm=md5-sess`);

function challengeOf(step: SaslStep): Buffer {
  if (step.kind !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(step)}`);
  return step.challenge;
}

function server(over: Partial<DigestMd5ServerOptions> = {}) {
  return createDigestMd5Server({
    hostname: 'mx.example.com',
    realm: V.realm,
    lookup: async (user, realm) => (user === V.user && realm === V.realm ? { password: V.password } : undefined),
    newNonce: () => V.nonce,
    ...over,
  });
}

/** The known-answer response with some directives replaced (or removed with undefined). */
function knownResponse(over: Record<string, string | undefined> = {}): Buffer {
  const fields: Record<string, string | undefined> = {
    charset: 'utf-8',
    username: `"${V.user}"`,
    realm: `"${V.realm}"`,
    nonce: `"${V.nonce}"`,
    nc: '00000001',
    cnonce: `"${V.cnonce}"`,
    'digest-uri': `"${V.digestUri}"`,
    response: V.response,
    qop: 'auth',
    ...over,
  };
  return Buffer.from(
    Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
  );
}

describe('DIGEST-MD5 client known answer (FIELD-NOTES 4)', () => {
  it('computes response and rspauth', () => {
    const out = digestMd5ClientResponse({ user: V.user, password: V.password, challenge: CHALLENGE, digestUri: V.digestUri, cnonce: V.cnonce });
    expect(out.expectedRspauth).toBe(V.rspauth);
    const d = new Map(parseDigestDirectives(out.response.toString('latin1')));
    expect(d.get('response')).toBe(V.response);
    expect(d.get('username')).toBe(V.user);
    expect(d.get('realm')).toBe(V.realm);
    expect(d.get('nonce')).toBe(V.nonce);
    expect(d.get('cnonce')).toBe(V.cnonce);
    expect(d.get('nc')).toBe('00000001');
    expect(d.get('qop')).toBe('auth');
    expect(d.get('digest-uri')).toBe(V.digestUri);
    expect(d.get('charset')).toBe('utf-8');
  });

  it('defaults digest-uri to smtp/<realm> and the cnonce to a random one', () => {
    const a = digestMd5ClientResponse({ user: V.user, password: V.password, challenge: CHALLENGE });
    const b = digestMd5ClientResponse({ user: V.user, password: V.password, challenge: CHALLENGE });
    const da = new Map(parseDigestDirectives(a.response.toString('latin1')));
    expect(da.get('digest-uri')).toBe('smtp/example.com');
    expect(da.get('cnonce')).not.toBe(new Map(parseDigestDirectives(b.response.toString('latin1'))).get('cnonce'));
  });

  it('refuses challenges it cannot answer', () => {
    const args = { user: 'u', password: 'p' };
    expect(() => digestMd5ClientResponse({ ...args, challenge: Buffer.from('realm="r",qop="auth",algorithm=md5-sess') })).toThrow(/nonce/);
    expect(() => digestMd5ClientResponse({ ...args, challenge: Buffer.from('realm="r",nonce="n",qop="auth-conf",algorithm=md5-sess') })).toThrow(/qop=auth/);
    expect(() => digestMd5ClientResponse({ ...args, challenge: Buffer.from('realm="r",nonce="n",qop="auth"') })).toThrow(/md5-sess/);
    expect(() => digestMd5ClientResponse({ ...args, challenge: Buffer.from('nonce="n",algorithm=md5-sess') })).toThrow(/digest-uri/);
    expect(() => digestMd5ClientResponse({ ...args, challenge: Buffer.from('realm="r,nonce="n"') })).toThrow(/key=value/);
  });

  it('takes qop from a list and the first of several realms', () => {
    const challenge = Buffer.from('realm="one",realm="two",nonce="n",qop="auth,auth-int,auth-conf",maxbuf=65536,algorithm=md5-sess');
    const out = digestMd5ClientResponse({ user: 'u', password: 'p', challenge, cnonce: 'c' });
    const d = new Map(parseDigestDirectives(out.response.toString('latin1')));
    expect(d.get('realm')).toBe('one');
    expect(d.get('qop')).toBe('auth');
  });
});

describe('DIGEST-MD5 server', () => {
  it('sends the challenge the way Postfix/Cyrus does (charset and algorithm unquoted)', async () => {
    expect(challengeOf(await server().next(undefined)).toString()).toBe(CHALLENGE.toString());
  });

  it('uses a fresh random nonce by default', async () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const c = challengeOf(await createDigestMd5Server({ hostname: 'h', lookup: async () => undefined }).next(undefined));
      nonces.add(new Map(parseDigestDirectives(c.toString('latin1'))).get('nonce')!);
    }
    expect(nonces.size).toBe(10);
  });

  it('verifies the known answer, sends rspauth, and is done after the empty ack', async () => {
    const mech = server();
    await mech.next(undefined);
    expect(challengeOf(await mech.next(knownResponse())).toString()).toBe(`rspauth=${V.rspauth}`);
    expect(await mech.next(Buffer.alloc(0))).toEqual({ kind: 'done', identity: { authcid: V.user } });
  });

  it('verifies with a stored hash instead of the password', async () => {
    const ha1Hex = digestMd5Ha1Hex(V.user, V.realm, V.password);
    const mech = server({ lookup: async () => ({ ha1Hex }) });
    await mech.next(undefined);
    expect(challengeOf(await mech.next(knownResponse())).toString()).toBe(`rspauth=${V.rspauth}`);
  });

  it('accepts quoted unusual spacing and escapes in the response', async () => {
    const mech = server();
    await mech.next(undefined);
    const text = knownResponse().toString().replace(/,/g, ' , ').replace('"info.example.com"', '"info\\.example.com"');
    expect(challengeOf(await mech.next(Buffer.from(',' + text + ','))).toString()).toBe(`rspauth=${V.rspauth}`);
  });

  it('round-trips with our client, with and without authzid, and a non-ASCII user', async () => {
    for (const [user, password, authzid] of [
      ['doorphone', 'ring-ring', undefined],
      ['doorphone', 'ring-ring', 'notify'],
      ['jörg', 'pässwört€', undefined],
    ] as const) {
      const mech = createDigestMd5Server({ hostname: 'relay.lan', lookup: async (u) => (u === user ? { password } : undefined) });
      const challenge = challengeOf(await mech.next(undefined));
      const out = digestMd5ClientResponse({ user, password, challenge, digestUri: 'smtp/relay.lan', ...(authzid ? { authzid } : {}) });
      expect(challengeOf(await mech.next(out.response)).toString()).toBe(`rspauth=${out.expectedRspauth}`);
      expect(await mech.next(Buffer.alloc(0))).toEqual({ kind: 'done', identity: authzid ? { authcid: user, authzid } : { authcid: user } });
    }
  });

  it('refuses a wrong password and an unknown user as bad-credentials', async () => {
    const wrong = server({ lookup: async () => ({ password: 'not-it' }) });
    await wrong.next(undefined);
    expect(await wrong.next(knownResponse())).toMatchObject({ kind: 'error', code: 'bad-credentials' });
    const unknown = server({ lookup: async () => undefined });
    await unknown.next(undefined);
    expect(await unknown.next(knownResponse())).toMatchObject({ kind: 'error', code: 'bad-credentials' });
  });

  it('refuses a response digest computed for another digest-uri', async () => {
    const mech = server();
    await mech.next(undefined);
    // The client claims smtp/10.0.0.1 but the digest was computed over smtp/mx.example.com.
    expect(await mech.next(knownResponse({ 'digest-uri': '"smtp/10.0.0.1"' }))).toMatchObject({ kind: 'error', code: 'bad-credentials' });
  });

  it.each([
    ['a foreign or replayed nonce', { nonce: '"AAAAAAAAAAAAAAAAAAAAAA=="' }],
    ['a missing nonce', { nonce: undefined }],
    ['nc 00000002', { nc: '00000002' }],
    ['nc missing', { nc: undefined }],
    ['qop auth-int', { qop: 'auth-int' }],
    ['another realm', { realm: '"evil.example"' }],
    ['no realm', { realm: undefined }],
    ['no username', { username: undefined }],
    ['no cnonce', { cnonce: undefined }],
    ['charset latin1', { charset: 'iso-8859-1' }],
    ['digest-uri for another service', { 'digest-uri': '"imap/mx.example.com"' }],
    ['digest-uri for another host', { 'digest-uri': '"smtp/evil.example"' }],
    ['digest-uri missing', { 'digest-uri': undefined }],
    ['response uppercase', { response: V.response.toUpperCase() }],
    ['response too short', { response: V.response.slice(1) }],
    ['response not hex', { response: 'z'.repeat(32) }],
    ['response missing', { response: undefined }],
  ])('%s -> malformed', async (_what, over) => {
    const mech = server();
    await mech.next(undefined);
    expect(await mech.next(knownResponse(over))).toMatchObject({ kind: 'error', code: 'malformed' });
  });

  it.each([
    ['an unterminated quote', 'username="info.example.com,realm="example.com"'],
    ['a duplicate directive', knownResponse().toString() + ',nonce="x"'],
    ['junk instead of key=value', 'hello world'],
    ['a response of 4096 bytes', knownResponse().toString() + ',x="' + 'a'.repeat(4096) + '"'],
  ])('%s -> malformed', async (_what, text) => {
    const mech = server();
    await mech.next(undefined);
    expect(await mech.next(Buffer.from(text))).toMatchObject({ kind: 'error', code: 'malformed' });
  });

  it('refuses an initial response, a missing response and a non-empty ack', async () => {
    expect(await server().next(knownResponse())).toMatchObject({ kind: 'error', code: 'malformed' });
    const m1 = server();
    await m1.next(undefined);
    expect(await m1.next(undefined)).toMatchObject({ kind: 'error', code: 'malformed' });
    const m2 = server();
    await m2.next(undefined);
    await m2.next(knownResponse());
    expect(await m2.next(Buffer.from('rspauth=x'))).toMatchObject({ kind: 'error', code: 'malformed' });
  });

  it('cannot be reused: the same response again after done is refused', async () => {
    const mech = server();
    await mech.next(undefined);
    await mech.next(knownResponse());
    await mech.next(Buffer.alloc(0));
    expect(await mech.next(knownResponse())).toMatchObject({ kind: 'error', code: 'malformed' });
  });
});

describe('digest-uri host policy', () => {
  it('accepts smtp/ with our name, a configured name, or an IP literal', () => {
    expect(digestUriAccepted('smtp/mx.example.com', 'mx.example.com')).toBe(true);
    expect(digestUriAccepted('SMTP/MX.Example.COM', 'mx.example.com')).toBe(true);
    expect(digestUriAccepted('smtp/mail.lan', 'mx.example.com', ['mail.lan'])).toBe(true);
    expect(digestUriAccepted('smtp/192.168.1.10', 'mx.example.com')).toBe(true);
    expect(digestUriAccepted('smtp/[2001:db8::1]', 'mx.example.com')).toBe(true);
    expect(digestUriAccepted('smtp/2001:db8::1', 'mx.example.com')).toBe(true);
    expect(digestUriAccepted('smtp/mx.example.com/mx.example.com', 'mx.example.com')).toBe(true);
  });
  it('refuses other services, other hosts and odd shapes', () => {
    expect(digestUriAccepted('imap/mx.example.com', 'mx.example.com')).toBe(false);
    expect(digestUriAccepted('smtp/other.example', 'mx.example.com')).toBe(false);
    expect(digestUriAccepted('smtp/', 'mx.example.com')).toBe(false);
    expect(digestUriAccepted('smtp', 'mx.example.com')).toBe(false);
    expect(digestUriAccepted('smtp/mx.example.com/evil.example', 'mx.example.com')).toBe(false);
    expect(digestUriAccepted('smtp/999.1.1.1', 'mx.example.com')).toBe(false);
  });
});

describe('parseDigestDirectives', () => {
  it('handles tokens, quoted strings with escapes, empty elements and whitespace', () => {
    expect(parseDigestDirectives(' a=1 ,, B="x\\"y\\\\z" ,c="" ,')).toEqual([
      ['a', '1'],
      ['b', 'x"y\\z'],
      ['c', ''],
    ]);
  });
  it('returns null on syntax errors', () => {
    expect(parseDigestDirectives('a')).toBeNull();
    expect(parseDigestDirectives('a=')).toBeNull();
    expect(parseDigestDirectives('a="x')).toBeNull();
    expect(parseDigestDirectives('a="x"b=1')).toBeNull();
    expect(parseDigestDirectives('=1')).toBeNull();
  });
});
