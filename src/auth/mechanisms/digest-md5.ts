// RFC 2831 DIGEST-MD5, qop=auth only (no integrity or confidentiality layer), md5-sess.
//
//   S: realm="..",nonce="..",qop="auth",charset=utf-8,algorithm=md5-sess
//   C: username="..",realm="..",nonce="..",cnonce="..",nc=00000001,qop=auth,digest-uri="smtp/host",response=<hex>
//   S: rspauth=<hex>
//   C: (empty)
//
// A1 = MD5(user:realm:pass) as 16 raw bytes + ":nonce:cnonce" [+ ":authzid"]
// response = HEX(MD5(HEX(MD5(A1)):nonce:nc:cnonce:qop:HEX(MD5("AUTHENTICATE:" digest-uri))))
// rspauth uses A2 = ":" digest-uri instead.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { SaslIdentity, SaslServerMechanism, SaslStep } from '../../types.js';
import { decodeUtf8Strict } from '../sasl-codec.js';

/** What the server knows about a user: the plaintext, or hex MD5(user:realm:password). */
export interface DigestMd5Credentials {
  password?: string;
  /** hex MD5(user:realm:password) (the inner hash of A1), so the plaintext need not be stored. */
  ha1Hex?: string;
}

export interface DigestMd5ServerOptions {
  /** Our host name: the realm by default, and a host accepted in digest-uri. */
  hostname: string;
  /** The realm we offer; defaults to `hostname`. */
  realm?: string;
  lookup: (user: string, realm: string) => Promise<DigestMd5Credentials | undefined>;
  /** More host names (e.g. the names clients are configured with) accepted in digest-uri. */
  digestUriHosts?: string[];
  /** Makes the nonce; the default is 128 random bits, base64. */
  newNonce?: () => string;
}

/** RFC 2831 section 2.1.2: a digest-response is less than 4096 bytes. */
const MAX_RESPONSE = 4096;

const md5 = (...parts: Buffer[]): Buffer => {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest();
};
const bytes = (byteString: string): Buffer => Buffer.from(byteString, 'latin1');

/**
 * The bytes a user name, realm or password is hashed as. RFC 2831 2.1.2.1: with charset=utf-8, a
 * value whose characters all fit in ISO 8859-1 is hashed in ISO 8859-1; Cyrus SASL decides this
 * per value, and so do we. ASCII values are the same either way.
 */
function hashForm(value: string): Buffer {
  for (const ch of value) if (ch.codePointAt(0)! > 0xff) return Buffer.from(value, 'utf8');
  return Buffer.from(value, 'latin1');
}

/** hex MD5(user:realm:password), the form a credentials store may keep instead of the password. */
export function digestMd5Ha1Hex(user: string, realm: string, password: string): string {
  return md5(hashForm(user), bytes(':'), hashForm(realm), bytes(':'), hashForm(password)).toString('hex');
}

interface DigestInputs {
  /** MD5(user:realm:password), 16 raw bytes. */
  secretHash: Buffer;
  /** The following are byte strings (one char per byte), exactly as on the wire after unquoting. */
  nonce: string;
  cnonce: string;
  nc: string;
  qop: string;
  digestUri: string;
  authzid?: string;
}

function computeDigests(d: DigestInputs): { response: string; rspauth: string } {
  const a1Tail = `:${d.nonce}:${d.cnonce}` + (d.authzid === undefined ? '' : `:${d.authzid}`);
  const ha1 = md5(d.secretHash, bytes(a1Tail)).toString('hex');
  const kd = (a2: string) =>
    md5(bytes(`${ha1}:${d.nonce}:${d.nc}:${d.cnonce}:${d.qop}:${md5(bytes(a2)).toString('hex')}`)).toString('hex');
  return { response: kd(`AUTHENTICATE:${d.digestUri}`), rspauth: kd(`:${d.digestUri}`) };
}

/**
 * Parse a DIGEST-MD5 challenge or response: comma-separated `key=value`, the value a token or a
 * quoted string with backslash escapes; empty list elements and whitespace around them are allowed
 * (RFC 2831 #rule). Input and output are byte strings (one char per byte). Keys are lower-cased.
 * Returns null on a syntax error.
 */
export function parseDigestDirectives(text: string): Array<[string, string]> | null {
  const out: Array<[string, string]> = [];
  const n = text.length;
  let i = 0;
  const isLws = (c: string | undefined) => c === ' ' || c === '\t' || c === '\r' || c === '\n';
  const skipLws = () => {
    while (i < n && isLws(text[i])) i++;
  };
  // Every pass consumes at least one character or ends, so the loop is bounded by the length.
  while (i < n) {
    skipLws();
    if (i >= n) break;
    if (text[i] === ',') {
      i++;
      continue;
    }
    const keyStart = i;
    while (i < n && /[A-Za-z0-9_-]/.test(text[i]!)) i++;
    if (i === keyStart) return null;
    const key = text.slice(keyStart, i).toLowerCase();
    skipLws();
    if (text[i] !== '=') return null;
    i++;
    skipLws();
    let value = '';
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = text[i]!;
        if (c === '\\') {
          if (i + 1 >= n) return null;
          value += text[i + 1];
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) return null;
    } else {
      const start = i;
      while (i < n && text[i] !== ',' && text[i] !== '"' && !isLws(text[i]) && text.charCodeAt(i) > 0x20 && text.charCodeAt(i) !== 0x7f) i++;
      if (i === start) return null;
      value = text.slice(start, i);
    }
    out.push([key, value]);
    skipLws();
    if (i < n && text[i] !== ',') return null;
  }
  return out;
}

const quote = (byteString: string) => `"${byteString.replace(/[\\"]/g, (c) => '\\' + c)}"`;

/** A string as the byte string of its UTF-8 (or ISO 8859-1) encoding, to splice into a message. */
const toByteString = (value: string, utf8: boolean) => Buffer.from(value, utf8 ? 'utf8' : 'latin1').toString('latin1');

/** A byte string from the wire back to text: UTF-8 when charset=utf-8 was given, else ISO 8859-1. */
const fromByteString = (byteString: string, utf8: boolean): string | null =>
  utf8 ? decodeUtf8Strict(Buffer.from(byteString, 'latin1')) : byteString;

/**
 * digest-uri host policy. The service must be `smtp`. The host part may be our hostname, one of
 * `extraHosts`, or an IP address literal (bare or in brackets): devices are often configured with
 * the server's IP and put it in digest-uri, and behind NAT or a load balancer we cannot know every
 * address we are reached at. digest-uri is covered by the response hash, so this only decides which
 * names we accept, not whether the client knows the password. An optional serv-name follows the
 * same rule.
 */
export function digestUriAccepted(uri: string, hostname: string, extraHosts: readonly string[] = []): boolean {
  const parts = uri.split('/');
  if (parts.length < 2 || parts.length > 3 || parts[0]!.toLowerCase() !== 'smtp') return false;
  const names = [hostname, ...extraHosts].map((h) => h.toLowerCase());
  const hostOk = (h: string) => {
    if (h === '') return false;
    if (names.includes(h.toLowerCase())) return true;
    const bare = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
    return isIP(bare) !== 0;
  };
  return parts.slice(1).every(hostOk);
}

/** A DIGEST-MD5 server for one exchange: challenge, verify and rspauth, then the client's empty ack. */
export function createDigestMd5Server(opts: DigestMd5ServerOptions): SaslServerMechanism {
  const realm = opts.realm ?? opts.hostname;
  let state: 'start' | 'awaiting-response' | 'awaiting-ack' | 'finished' = 'start';
  let nonce = '';
  let identity: SaslIdentity | undefined;

  const malformed = (reason: string): SaslStep => {
    state = 'finished';
    return { kind: 'error', code: 'malformed', reason: `DIGEST-MD5: ${reason}` };
  };

  async function verify(response: Buffer): Promise<SaslStep> {
    if (response.length >= MAX_RESPONSE) return malformed('response too long');
    const list = parseDigestDirectives(response.toString('latin1'));
    if (!list) return malformed('response is not a key=value list');
    const d = new Map<string, string>();
    for (const [k, v] of list) {
      if (d.has(k)) return malformed(`directive ${k} given twice`);
      d.set(k, v);
    }
    const charset = d.get('charset');
    if (charset !== undefined && charset.toLowerCase() !== 'utf-8') return malformed('charset must be utf-8');
    const utf8 = charset !== undefined;

    const rawUser = d.get('username');
    const username = rawUser === undefined ? null : fromByteString(rawUser, utf8);
    if (!username) return malformed('username missing or not valid text');
    const rawRealm = d.get('realm');
    const theirRealm = rawRealm === undefined ? null : fromByteString(rawRealm, utf8);
    if (theirRealm !== realm) return malformed(`realm must be "${realm}"`);
    if (d.get('nonce') !== nonce) return malformed('nonce is not the one issued for this exchange');
    const cnonce = d.get('cnonce');
    if (!cnonce) return malformed('cnonce missing');
    // One exchange per nonce, so the nonce count can only be 1.
    if (d.get('nc') !== '00000001') return malformed('nc must be 00000001');
    const qop = d.get('qop') ?? 'auth';
    if (qop !== 'auth') return malformed('only qop=auth is offered');
    const digestUri = d.get('digest-uri');
    if (digestUri === undefined) return malformed('digest-uri missing');
    if (!digestUriAccepted(digestUri, opts.hostname, opts.digestUriHosts)) {
      return malformed(`digest-uri "${digestUri}" is not smtp/ our host name or an IP address`);
    }
    const given = d.get('response');
    if (given === undefined || !/^[0-9a-f]{32}$/.test(given)) return malformed('response must be 32 lowercase hex digits');
    const rawAuthzid = d.get('authzid');
    // authzid is always UTF-8 (RFC 2831 2.1.2).
    const authzid = rawAuthzid === undefined ? undefined : decodeUtf8Strict(Buffer.from(rawAuthzid, 'latin1'));
    if (authzid === null) return malformed('authzid is not UTF-8');

    const creds = await opts.lookup(username, realm);
    let secretHash: Buffer | undefined;
    if (creds?.ha1Hex !== undefined && /^[0-9a-fA-F]{32}$/.test(creds.ha1Hex)) secretHash = Buffer.from(creds.ha1Hex, 'hex');
    else if (creds?.password !== undefined) secretHash = Buffer.from(digestMd5Ha1Hex(username, realm, creds.password), 'hex');
    const known = secretHash !== undefined;
    // Unknown users are checked against a random hash so the work done does not reveal them.
    const digests = computeDigests({
      secretHash: secretHash ?? randomBytes(16),
      nonce,
      cnonce,
      nc: '00000001',
      qop,
      digestUri,
      ...(rawAuthzid === undefined ? {} : { authzid: rawAuthzid }),
    });
    const match = timingSafeEqual(Buffer.from(digests.response, 'latin1'), Buffer.from(given, 'latin1'));
    if (!known || !match) {
      state = 'finished';
      return {
        kind: 'error',
        code: 'bad-credentials',
        reason: known ? `DIGEST-MD5: wrong response for "${username}"` : `DIGEST-MD5: unknown user "${username}"`,
      };
    }
    identity = authzid ? { authcid: username, authzid } : { authcid: username };
    state = 'awaiting-ack';
    return { kind: 'challenge', challenge: Buffer.from(`rspauth=${digests.rspauth}`, 'latin1') };
  }

  return {
    name: 'DIGEST-MD5',
    async next(response: Buffer | undefined): Promise<SaslStep> {
      switch (state) {
        case 'finished':
          return { kind: 'error', code: 'malformed', reason: 'DIGEST-MD5 exchange already finished' };
        case 'start': {
          // Subsequent authentication (an initial response reusing an old nonce) is not supported.
          if (response !== undefined) return malformed('no initial response is allowed');
          nonce = opts.newNonce ? opts.newNonce() : randomBytes(16).toString('base64');
          state = 'awaiting-response';
          const text =
            `realm=${quote(toByteString(realm, true))},nonce=${quote(nonce)},qop="auth",` + 'charset=utf-8,algorithm=md5-sess';
          return { kind: 'challenge', challenge: bytes(text) };
        }
        case 'awaiting-response':
          if (response === undefined) return malformed('response missing');
          return verify(response);
        case 'awaiting-ack':
          if (response === undefined || response.length !== 0) return malformed('expected an empty response after rspauth');
          state = 'finished';
          return { kind: 'done', identity: identity! };
      }
    },
  };
}

export interface DigestMd5ClientInput {
  user: string;
  password: string;
  /** The server's decoded challenge. */
  challenge: Buffer;
  /** Defaults to `smtp/<realm from the challenge>`. */
  digestUri?: string;
  /** Defaults to 128 random bits, base64. */
  cnonce?: string;
  authzid?: string;
}

/**
 * The client's answer to a DIGEST-MD5 challenge, and the rspauth value the server must send back.
 * Throws an Error saying why when the challenge cannot be answered with qop=auth / md5-sess.
 */
export function digestMd5ClientResponse(input: DigestMd5ClientInput): { response: Buffer; expectedRspauth: string } {
  const list = parseDigestDirectives(input.challenge.toString('latin1'));
  if (!list) throw new Error('DIGEST-MD5 challenge is not a key=value list');
  const all = (k: string) => list.filter(([key]) => key === k).map(([, v]) => v);
  const one = (k: string) => {
    const vs = all(k);
    if (vs.length > 1) throw new Error(`DIGEST-MD5 challenge gives ${k} more than once`);
    return vs[0];
  };
  const nonce = one('nonce');
  if (!nonce) throw new Error('DIGEST-MD5 challenge has no nonce');
  const algorithm = one('algorithm');
  if (algorithm?.toLowerCase() !== 'md5-sess') throw new Error('DIGEST-MD5 challenge must say algorithm=md5-sess');
  const qops = (one('qop') ?? 'auth').split(',').map((q) => q.trim().toLowerCase());
  if (!qops.includes('auth')) throw new Error(`DIGEST-MD5 server does not offer qop=auth (offers ${qops.join(',')})`);
  const charset = one('charset');
  const utf8 = charset?.toLowerCase() === 'utf-8';
  // The server may offer several realms; like most clients, take the first.
  const rawRealm = all('realm')[0];
  const realm = rawRealm === undefined ? undefined : fromByteString(rawRealm, utf8);
  if (realm === null) throw new Error('DIGEST-MD5 challenge realm is not valid UTF-8');
  if (!utf8) {
    for (const v of [input.user, input.password]) {
      if ([...v].some((ch) => ch.codePointAt(0)! > 0xff)) {
        throw new Error('user name or password is not ISO 8859-1 and the server did not offer charset=utf-8');
      }
    }
  }
  const digestUri = input.digestUri ?? (realm ? `smtp/${realm}` : undefined);
  if (!digestUri) throw new Error('the challenge names no realm; give the digest-uri (smtp/HOST)');
  const cnonce = input.cnonce ?? randomBytes(16).toString('base64');
  const authzid = input.authzid ? toByteString(input.authzid, true) : undefined;

  const secretHash = Buffer.from(digestMd5Ha1Hex(input.user, realm ?? '', input.password), 'hex');
  const digests = computeDigests({
    secretHash,
    nonce,
    cnonce,
    nc: '00000001',
    qop: 'auth',
    digestUri,
    ...(authzid === undefined ? {} : { authzid }),
  });
  const parts = [
    ...(utf8 ? ['charset=utf-8'] : []),
    `username=${quote(toByteString(input.user, utf8))}`,
    ...(realm === undefined ? [] : [`realm=${quote(toByteString(realm, utf8))}`]),
    `nonce=${quote(nonce)}`,
    'nc=00000001',
    `cnonce=${quote(cnonce)}`,
    `digest-uri=${quote(digestUri)}`,
    `response=${digests.response}`,
    'qop=auth',
    ...(authzid === undefined ? [] : [`authzid=${quote(authzid)}`]),
  ];
  return { response: bytes(parts.join(',')), expectedRspauth: digests.rspauth };
}
