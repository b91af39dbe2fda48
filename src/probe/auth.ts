// `--auth USER`: run one SASL exchange as a client on an open, greeted, EHLO'd connection, with the
// same client functions the proxy and `mailshim sasl` use. Never puts the password in what it returns.
import { cramMd5ClientResponse } from '../auth/mechanisms/cram-md5.js';
import { digestMd5ClientResponse } from '../auth/mechanisms/digest-md5.js';
import { loginClientResponses } from '../auth/mechanisms/login.js';
import { plainClientResponse } from '../auth/mechanisms/plain.js';
import { decodeSaslBase64, encodeSaslBase64, encodeSaslInitialResponse } from '../auth/sasl-codec.js';
import type { SmtpReply } from '../types.js';
import type { Dialogue } from './dialogue.js';

export const PROBE_MECHANISMS = ['PLAIN', 'LOGIN', 'CRAM-MD5', 'DIGEST-MD5'] as const;

export function canTry(mechanism: string): boolean {
  return (PROBE_MECHANISMS as readonly string[]).includes(mechanism.toUpperCase());
}

export interface Credentials {
  user: string;
  password: string;
}

const show = (r: SmtpReply) => `${r.code} ${r.lines.join(' / ')}`.trim();

/** The server's 334 challenge, decoded; null (after cancelling with `*`) when it is not base64. */
async function challenge(d: Dialogue, r: SmtpReply): Promise<Buffer | null> {
  const bytes = decodeSaslBase64((r.lines[0] ?? '').trim());
  if (!bytes) await d.command('*');
  return bytes;
}

/**
 * Authenticate with `mechanism`; returns whether the server answered 235 and its final reply.
 * `serverName` becomes the DIGEST-MD5 digest-uri host (Cyrus checks it against its own host name).
 */
export async function tryMechanism(d: Dialogue, mechanism: string, cred: Credentials, serverName: string): Promise<{ ok: boolean; detail: string }> {
  const done = (r: SmtpReply) => ({ ok: r.code === 235, detail: show(r) });
  switch (mechanism.toUpperCase()) {
    case 'PLAIN':
      return done(await d.command(`AUTH PLAIN ${encodeSaslInitialResponse(plainClientResponse(cred.user, cred.password))}`));
    case 'LOGIN': {
      const [user, password] = loginClientResponses(cred.user, cred.password);
      let r = await d.command('AUTH LOGIN');
      if (r.code !== 334) return done(r);
      r = await d.command(encodeSaslBase64(user));
      if (r.code !== 334) return done(r);
      return done(await d.command(encodeSaslBase64(password)));
    }
    case 'CRAM-MD5': {
      const r = await d.command('AUTH CRAM-MD5');
      if (r.code !== 334) return done(r);
      const c = await challenge(d, r);
      if (!c) return { ok: false, detail: `the CRAM-MD5 challenge is not base64: ${show(r)}` };
      return done(await d.command(encodeSaslBase64(cramMd5ClientResponse(cred.user, cred.password, c))));
    }
    case 'DIGEST-MD5': {
      let r = await d.command('AUTH DIGEST-MD5');
      if (r.code !== 334) return done(r);
      const c = await challenge(d, r);
      if (!c) return { ok: false, detail: `the DIGEST-MD5 challenge is not base64: ${show(r)}` };
      let answer: ReturnType<typeof digestMd5ClientResponse>;
      try {
        answer = digestMd5ClientResponse({ user: cred.user, password: cred.password, challenge: c, digestUri: `smtp/${serverName}` });
      } catch (err) {
        await d.command('*');
        return { ok: false, detail: `cannot answer the DIGEST-MD5 challenge: ${(err as Error).message}` };
      }
      r = await d.command(encodeSaslBase64(answer.response));
      if (r.code !== 334) return done(r);
      const rspauth = decodeSaslBase64((r.lines[0] ?? '').trim())?.toString('latin1');
      if (rspauth !== `rspauth=${answer.expectedRspauth}`) {
        await d.command('*');
        return { ok: false, detail: 'the server answered with a wrong rspauth, so it did not prove it knows the password' };
      }
      return done(await d.command(''));
    }
    default:
      return { ok: false, detail: 'mailshim probe cannot try this mechanism' };
  }
}
