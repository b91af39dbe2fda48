// `mailshim sasl`: compute the client lines of a SASL exchange by hand (like gen-auth), or decode a
// captured exchange. Answers go to stdout one per line; lines starting with `#` explain.
import { createCramMd5Server, cramMd5ClientResponse, parseCramMd5Response } from '../auth/mechanisms/cram-md5.js';
import { createDigestMd5Server, digestMd5ClientResponse, digestMd5Ha1Hex, parseDigestDirectives } from '../auth/mechanisms/digest-md5.js';
import { LOGIN_PASSWORD_PROMPT, LOGIN_USERNAME_PROMPT, loginClientResponses } from '../auth/mechanisms/login.js';
import { parsePlainMessage, plainClientResponse } from '../auth/mechanisms/plain.js';
import { decodeSaslBase64, decodeUtf8Strict, encodeSaslBase64, encodeSaslInitialResponse } from '../auth/sasl-codec.js';

export interface SaslCliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Read when PASSWORD is `-`. */
  stdin: AsyncIterable<Buffer | string>;
}

const USAGE = `usage:
  mailshim sasl plain USER PASSWORD [--authzid Z]
      prints AUTH PLAIN <base64>
  mailshim sasl login USER PASSWORD
      prints the answers to 334 VXNlcm5hbWU6 (Username:) and 334 UGFzc3dvcmQ6 (Password:)
  mailshim sasl cram-md5 USER PASSWORD CHALLENGE_B64
      prints the answer to 334 CHALLENGE_B64
  mailshim sasl digest-md5 USER PASSWORD CHALLENGE_B64 [--digest-uri smtp/HOST] [--authzid Z] [--cnonce C]
      prints the answer and the rspauth the server must send back (digest-uri defaults to smtp/<realm>)
  mailshim sasl digest-hash USER REALM PASSWORD
      prints hex MD5(USER:REALM:PASSWORD), for a local user's digestHash (DIGEST-MD5 without a stored password)
  mailshim sasl --decode MECH B64... [--show-secrets] [--password P]
      decodes a captured exchange: each B64 is one line in order (a "334 " or "AUTH MECH " prefix is
      ignored); passwords show as ******** unless --show-secrets; with --password, checks a
      CRAM-MD5 or DIGEST-MD5 answer against it

PASSWORD (or --password) "-" reads the password from the first line of stdin, which keeps it out of
ps and shell history. Put -- before arguments that start with "-".
`;

class UsageError extends Error {}
class InputError extends Error {}

interface Parsed {
  positional: string[];
  options: Map<string, string | true>;
}

const VALUE_OPTIONS = new Set(['--authzid', '--digest-uri', '--cnonce', '--password']);
const FLAG_OPTIONS = new Set(['--decode', '--show-secrets', '--help', '-h']);

function parseArgs(argv: string[]): Parsed {
  const positional: string[] = [];
  const options = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('-') && arg !== '-') {
      const eq = arg.indexOf('=');
      const name = eq > 0 ? arg.slice(0, eq) : arg;
      if (VALUE_OPTIONS.has(name)) {
        const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new UsageError(`${name} needs a value`);
        options.set(name, value);
      } else if (FLAG_OPTIONS.has(name) && eq < 0) {
        options.set(name, true);
      } else {
        throw new UsageError(`unknown option ${arg}`);
      }
      continue;
    }
    positional.push(arg);
  }
  return { positional, options };
}

function onlyOptions(p: Parsed, allowed: string[]): void {
  for (const name of p.options.keys()) {
    if (!allowed.includes(name)) throw new UsageError(`${name} does not apply here`);
  }
}

const opt = (p: Parsed, name: string): string | undefined => {
  const v = p.options.get(name);
  return typeof v === 'string' ? v : undefined;
};

async function readPassword(value: string, stdin: AsyncIterable<Buffer | string>): Promise<string> {
  if (value !== '-') return value;
  let text = '';
  // A password is one short line; stop at the first newline or 64 KiB.
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (text.includes('\n') || text.length > 65536) break;
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line === '') throw new InputError('no password on stdin');
  return line;
}

/** Strip what a user copies along with the base64 from a transcript: `C: `, `S: `, `334 `, `AUTH MECH `. */
function stripPrefix(line: string): string {
  return line
    .trim()
    .replace(/^[CS]:\s*/, '')
    .replace(/^334(?: |$)/, '')
    .replace(/^AUTH\s+\S+\s*/i, '');
}

function decodeArg(arg: string, what: string): Buffer {
  const buf = decodeSaslBase64(stripPrefix(arg));
  if (!buf) throw new InputError(`${what} is not canonical base64: ${JSON.stringify(arg)}`);
  return buf;
}

/** Bytes as readable text: UTF-8 when valid, else with escapes, quoted when needed. */
function show(bytes: Buffer): string {
  const text = decodeUtf8Strict(bytes);
  if (text !== null && !/[\0-\x1f\x7f]/.test(text)) return text === '' ? '(empty)' : text;
  return JSON.stringify(text ?? bytes.toString('latin1'));
}

const MASK = '********';

async function compute(mech: string, p: Parsed, io: SaslCliIo): Promise<string[]> {
  const [user, passwordArg, challengeArg, ...extra] = p.positional;
  switch (mech) {
    case 'plain': {
      onlyOptions(p, ['--authzid']);
      if (!user || passwordArg === undefined || challengeArg !== undefined) throw new UsageError('plain needs USER PASSWORD');
      const password = await readPassword(passwordArg, io.stdin);
      return [`AUTH PLAIN ${encodeSaslInitialResponse(plainClientResponse(user, password, opt(p, '--authzid') ?? ''))}`];
    }
    case 'login': {
      onlyOptions(p, []);
      if (!user || passwordArg === undefined || challengeArg !== undefined) throw new UsageError('login needs USER PASSWORD');
      const password = await readPassword(passwordArg, io.stdin);
      return loginClientResponses(user, password).map(encodeSaslBase64);
    }
    case 'cram-md5': {
      onlyOptions(p, []);
      if (!user || passwordArg === undefined || challengeArg === undefined || extra.length > 0) {
        throw new UsageError('cram-md5 needs USER PASSWORD CHALLENGE_B64');
      }
      const challenge = decodeArg(challengeArg, 'CHALLENGE_B64');
      const password = await readPassword(passwordArg, io.stdin);
      return [encodeSaslBase64(cramMd5ClientResponse(user, password, challenge)), `# challenge: ${show(challenge)}`];
    }
    case 'digest-md5': {
      onlyOptions(p, ['--digest-uri', '--authzid', '--cnonce']);
      if (!user || passwordArg === undefined || challengeArg === undefined || extra.length > 0) {
        throw new UsageError('digest-md5 needs USER PASSWORD CHALLENGE_B64');
      }
      const challenge = decodeArg(challengeArg, 'CHALLENGE_B64');
      const password = await readPassword(passwordArg, io.stdin);
      const digestUri = opt(p, '--digest-uri');
      const cnonce = opt(p, '--cnonce');
      const authzid = opt(p, '--authzid');
      let result: ReturnType<typeof digestMd5ClientResponse>;
      try {
        result = digestMd5ClientResponse({
          user,
          password,
          challenge,
          ...(digestUri === undefined ? {} : { digestUri }),
          ...(cnonce === undefined ? {} : { cnonce }),
          ...(authzid === undefined ? {} : { authzid }),
        });
      } catch (err) {
        throw new InputError((err as Error).message);
      }
      const rspauth = Buffer.from(`rspauth=${result.expectedRspauth}`);
      return [
        encodeSaslBase64(result.response),
        `# the server must answer: 334 ${encodeSaslBase64(rspauth)}  (rspauth=${result.expectedRspauth})`,
        '# then send an empty line; success is 235',
      ];
    }
    case 'digest-hash': {
      // Here the second positional is the realm and the third the password.
      onlyOptions(p, []);
      if (!user || passwordArg === undefined || challengeArg === undefined || extra.length > 0) {
        throw new UsageError('digest-hash needs USER REALM PASSWORD');
      }
      const password = await readPassword(challengeArg, io.stdin);
      return [digestMd5Ha1Hex(user, passwordArg, password)];
    }
    default:
      throw new UsageError(`unknown mechanism "${mech}"`);
  }
}

async function decode(mech: string, p: Parsed, io: SaslCliIo): Promise<string[]> {
  const lines = p.positional.slice(1);
  const showSecrets = p.options.has('--show-secrets');
  const passwordArg = opt(p, '--password');
  const password = passwordArg === undefined ? undefined : await readPassword(passwordArg, io.stdin);
  if (lines.length === 0) throw new UsageError('--decode needs MECH and at least one base64 line');
  const data = lines.map((l, i) => decodeArg(l, `line ${i + 1}`));
  const secret = (s: string) => (showSecrets ? s : MASK);
  switch (mech) {
    case 'plain': {
      onlyOptions(p, ['--decode', '--show-secrets']);
      if (data.length !== 1) throw new UsageError('PLAIN has one client line');
      const msg = parsePlainMessage(data[0]!);
      if (!msg) {
        const nuls = [...data[0]!].filter((b) => b === 0).length;
        throw new InputError(
          `not a valid PLAIN message (authzid NUL authcid NUL passwd): ${nuls} NUL(s), ${data[0]!.length} bytes`,
        );
      }
      return [`authzid: ${msg.authzid ?? '(empty)'}`, `authcid: ${msg.authcid}`, `password: ${secret(msg.password)}`];
    }
    case 'login': {
      onlyOptions(p, ['--decode', '--show-secrets']);
      // Server prompts may be pasted along; they are shown and skipped.
      const out: string[] = [];
      const client: Buffer[] = [];
      for (const d of data) {
        const text = d.toString('latin1');
        if (text === LOGIN_USERNAME_PROMPT || text === LOGIN_PASSWORD_PROMPT) out.push(`server: ${text}`);
        else client.push(d);
      }
      if (client.length === 0 || client.length > 2) throw new UsageError('LOGIN has one or two client lines');
      out.push(`username: ${show(client[0]!)}`);
      if (client[1]) out.push(`password: ${showSecrets ? show(client[1]) : MASK}`);
      return out;
    }
    case 'cram-md5': {
      onlyOptions(p, ['--decode', '--password']);
      if (data.length !== 2) throw new UsageError('CRAM-MD5 needs the challenge and the response');
      const [challenge, response] = data as [Buffer, Buffer];
      const parsed = parseCramMd5Response(response);
      const out = [`challenge: ${show(challenge)}`];
      if (!parsed) return [...out, `response: ${show(response)}`, '# not a valid CRAM-MD5 response (user SP 32 lowercase hex)'];
      out.push(`user: ${parsed.user}`, `digest: ${parsed.digest.toString('hex')}`);
      if (password !== undefined) {
        const server = createCramMd5Server({
          hostname: 'localhost',
          lookupSecret: async () => password,
          newChallenge: () => challenge.toString('utf8'),
        });
        await server.next(undefined);
        const step = await server.next(response);
        out.push(step.kind === 'done' ? 'password: matches' : 'password: does NOT match');
      }
      return out;
    }
    case 'digest-md5': {
      onlyOptions(p, ['--decode', '--password']);
      if (data.length < 1 || data.length > 4) throw new UsageError('DIGEST-MD5 has up to four lines');
      const labels = ['server challenge', 'client response', 'server rspauth', 'client ack'];
      const out: string[] = [];
      data.forEach((d, i) => {
        out.push(`${labels[i]}:`);
        const list = i < 3 ? parseDigestDirectives(d.toString('latin1')) : null;
        if (list) for (const [k, v] of list) out.push(`  ${k}=${JSON.stringify(v)}`);
        else out.push(`  ${show(d)}`);
      });
      if (password !== undefined && data.length >= 2) out.push(...(await checkDigest(data, password)));
      return out;
    }
    case 'external': {
      onlyOptions(p, ['--decode']);
      if (data.length !== 1) throw new UsageError('EXTERNAL has one client line');
      return [`authzid: ${show(data[0]!)}`];
    }
    default:
      throw new UsageError(`unknown mechanism "${mech}"`);
  }
}

/** Replay the captured exchange against our own server with the given password. */
async function checkDigest(data: Buffer[], password: string): Promise<string[]> {
  const get = (b: Buffer, key: string) => parseDigestDirectives(b.toString('latin1'))?.find(([k]) => k === key)?.[1];
  const nonce = get(data[0]!, 'nonce');
  const realm = get(data[1]!, 'realm');
  const uri = get(data[1]!, 'digest-uri');
  if (nonce === undefined || realm === undefined || uri === undefined) return ['# cannot check: nonce, realm or digest-uri missing'];
  const host = uri.split('/')[1] ?? '';
  const server = createDigestMd5Server({
    hostname: host,
    realm: decodeUtf8Strict(Buffer.from(realm, 'latin1')) ?? realm,
    lookup: async () => ({ password }),
    newNonce: () => nonce,
  });
  await server.next(undefined);
  const step = await server.next(data[1]!);
  if (step.kind !== 'challenge') return [`password: does NOT match (${step.kind === 'error' ? step.reason : step.kind})`];
  const out = ['password: matches'];
  if (data[2]) out.push(data[2].equals(step.challenge) ? 'rspauth: as expected' : `rspauth: WRONG, expected ${step.challenge.toString('latin1')}`);
  return out;
}

export async function run(argv: string[], io: SaslCliIo = process): Promise<number> {
  try {
    const p = parseArgs(argv);
    if (p.options.has('--help') || p.options.has('-h')) {
      io.stdout.write(USAGE);
      return 0;
    }
    const mech = p.positional[0]?.toLowerCase();
    if (!mech) throw new UsageError('no mechanism given');
    const lines = p.options.has('--decode') ? await decode(mech, p, io) : await compute(mech, { ...p, positional: p.positional.slice(1) }, io);
    io.stdout.write(lines.join('\n') + '\n');
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`mailshim sasl: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof InputError) {
      io.stderr.write(`mailshim sasl: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
