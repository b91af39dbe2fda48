// auth.mode: passthrough — the AUTH exchange goes to the upstream byte for byte; EHLO rules may hide
// mechanisms. The transcript sees only the mechanism name and `********` for every client response; the
// username is read from the exchange (it is not a secret) so transcripts and logs can say who tried.
import type { AuthContext, AuthMode } from './mode.js';
import { authLineTooLong } from '../protocol/replies.js';
import { decodeSaslBase64 } from './sasl-codec.js';
import { parsePlainMessage } from './mechanisms/plain.js';
import { parseCramMd5Response } from './mechanisms/cram-md5.js';
import { parseDigestDirectives } from './mechanisms/digest-md5.js';

export const passthroughMode: AuthMode = {
  name: 'passthrough',
  advertised: () => null,
  mayRelayUnauthenticated: () => true,
  begin(ctx: AuthContext, mechanism: string, initial: string | undefined) {
    const line = initial === undefined ? `AUTH ${mechanism}` : `AUTH ${mechanism} ${initial}`;
    const shown = initial === undefined ? line : `AUTH ${mechanism} ********`;
    const names = usernameReader(mechanism);
    let user = initial === undefined ? undefined : names(initial, true);
    let cancelled = false;
    const onReply = (r: { code: number; lines: string[] }) => {
      ctx.relayReply(r);
      if (r.code === 334) {
        ctx.readAuthLine((resp) => {
          if (resp === null) {
            // Over-long response: the upstream is still waiting; cancel its exchange, tell the client.
            ctx.up.command('*', (reply) => {
              ctx.reply(authLineTooLong());
              ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mechanism, mode: 'passthrough', user, result: 'error', code: reply.code });
              ctx.finish({ failed: true });
            });
            return;
          }
          if (resp === '*') cancelled = true;
          else user ??= names(resp, false, r.lines[0]);
          ctx.up.command(resp, onReply, { shown: resp === '*' ? '*' : '********' });
        });
        return;
      }
      const ok = r.code === 235;
      const result = ok ? 'ok' : cancelled ? 'cancel' : 'fail';
      ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mechanism, mode: 'passthrough', user, result, code: r.code });
      ctx.finish(ok ? { user: user ?? '(passthrough)' } : { failed: !cancelled });
    };
    ctx.up.command(line, onReply, { shown });
  },
};

/** Reads the username out of a client response of a known mechanism; undefined when there is none. */
function usernameReader(mechanism: string): (b64: string, initial: boolean, challenge?: string) => string | undefined {
  return (b64, initial, challenge) => {
    const bytes = decodeSaslBase64(b64);
    if (!bytes) return undefined;
    switch (mechanism) {
      case 'PLAIN':
        return parsePlainMessage(bytes)?.authcid;
      case 'LOGIN': {
        // The username is the initial response, or the answer to the "Username:" prompt.
        const prompt = challenge === undefined ? '' : decodeSaslBase64(challenge)?.toString('latin1') ?? '';
        return initial || /^user/i.test(prompt) ? bytes.toString('utf8') : undefined;
      }
      case 'CRAM-MD5':
        return parseCramMd5Response(bytes)?.user;
      case 'DIGEST-MD5': {
        const d = parseDigestDirectives(bytes.toString('utf8'));
        return d?.find(([k]) => k.toLowerCase() === 'username')?.[1];
      }
      default:
        return undefined;
    }
  };
}
