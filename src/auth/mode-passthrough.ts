// auth.mode: passthrough — the AUTH exchange goes to the upstream byte for byte; EHLO rules may hide
// mechanisms. The transcript sees only the mechanism name and `********` for every client response.
import type { AuthContext, AuthMode } from './mode.js';
import { authLineTooLong } from '../protocol/replies.js';

export const passthroughMode: AuthMode = {
  name: 'passthrough',
  advertised: () => null,
  mayRelayUnauthenticated: () => true,
  begin(ctx: AuthContext, mechanism: string, initial: string | undefined) {
    const line = initial === undefined ? `AUTH ${mechanism}` : `AUTH ${mechanism} ${initial}`;
    const shown = initial === undefined ? line : `AUTH ${mechanism} ********`;
    const onReply = (r: { code: number; lines: string[] }) => {
      ctx.relayReply(r);
      if (r.code === 334) {
        ctx.readAuthLine((resp) => {
          if (resp === null) {
            // Over-long response: the upstream is still waiting; cancel its exchange, tell the client.
            ctx.up.command('*', (cancelled) => {
              ctx.reply(authLineTooLong());
              ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mechanism, mode: 'passthrough', result: 'error', code: cancelled.code });
              ctx.finish({ failed: true });
            });
            return;
          }
          ctx.up.command(resp, onReply, { shown: resp === '*' ? '*' : '********' });
        });
        return;
      }
      const ok = r.code === 235;
      ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mechanism, mode: 'passthrough', result: ok ? 'ok' : 'fail', code: r.code });
      ctx.finish(ok ? { user: '(passthrough)' } : { failed: true });
    };
    ctx.up.command(line, onReply, { shown });
  },
};
