// auth.mode: forward — mailshim decodes the client's AUTH LOGIN or AUTH PLAIN (with or without an
// initial response) and logs in upstream with the same identity (PLAIN, or LOGIN where the upstream
// needs it); the upstream's verdict is what the client gets. No user table: the provider decides.
import type { AuthContext, AuthMode } from './mode.js';
import type { CompiledListener } from '../config/compile.js';
import * as R from '../protocol/replies.js';
import { createServerMechanism } from './mechanisms/index.js';
import { failExchange, runSaslExchange } from './sasl-exchange.js';
import { loginUpstream, rewriteAuthParam } from '../upstream/upstream-auth.js';

const FORWARDABLE = ['PLAIN', 'LOGIN'];

/** AUTH may happen on this connection: on TLS, on a listener without TLS, or when plaintext is allowed. */
export function authAllowedOn(l: CompiledListener, tls: boolean): boolean {
  return tls || l.cfg.tls.mode === 'none' || l.cfg.auth.allowPlaintext;
}

export function createForwardMode(l: CompiledListener): AuthMode {
  const configured = l.cfg.auth.mechanisms.filter((m) => FORWARDABLE.includes(m));
  const mechanisms = configured.length > 0 ? configured : FORWARDABLE;
  const failureDelayMs = l.cfg.auth.failureDelay;
  const policy = { mechanism: l.upstreamCfg.auth.mechanism, allowAuthWithoutVerifiedTls: l.upstreamCfg.allowAuthWithoutVerifiedTls };
  return {
    name: 'forward',
    advertised: (tls) => (authAllowedOn(l, tls) ? mechanisms : []),
    // mailshim holds no credentials in this mode: an unauthenticated MAIL is the upstream's to judge.
    mayRelayUnauthenticated: () => true,
    mailFromArgs: rewriteAuthParam,
    begin(ctx: AuthContext, mechanism: string, initial: string | undefined) {
      void forward(ctx, mechanism, initial);
    },
  };

  async function forward(ctx: AuthContext, mechanism: string, initial: string | undefined): Promise<void> {
    const mech = mechanisms.includes(mechanism) ? createServerMechanism(mechanism, { hostname: ctx.hostname }) : undefined;
    if (!mech) {
      await failExchange(ctx, R.authUnknownMech(), { mechanism, mode: 'forward', result: 'error' });
      return;
    }
    const id = await runSaslExchange(ctx, mech, initial, { mode: 'forward', failureDelayMs });
    if (!id) return;
    const r = await loginUpstream(ctx.up, { user: id.authcid, password: id.password ?? '', authzid: id.authzid }, policy);
    if (r.ok) {
      ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mechanism: r.mechanism, mode: 'forward', user: id.authcid, result: 'ok', code: r.reply.code });
      ctx.relayReply(r.reply);
      ctx.emit({ type: 'auth', sid: ctx.sid, side: 'client', mechanism, mode: 'forward', user: id.authcid, result: 'ok', code: r.reply.code });
      ctx.finish({ user: id.authcid });
      return;
    }
    if (r.kind === 'not-sent') {
      ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mechanism, mode: 'forward', user: id.authcid, result: 'error', reason: r.reason });
      ctx.reply(R.authTempFail());
      ctx.finish({ failed: true });
      return;
    }
    // The provider's own verdict (535, 454, 534 ...), after the same pause as a local failure.
    ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mechanism: r.mechanism, mode: 'forward', user: id.authcid, result: 'fail', code: r.reply.code, reason: r.reason });
    if (r.reply.code >= 500) await new Promise((res) => setTimeout(res, failureDelayMs));
    ctx.relayReply(r.reply);
    ctx.finish({ failed: true });
  }
}
