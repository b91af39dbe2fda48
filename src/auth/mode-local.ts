// auth.mode: local — mailshim is the SASL server (CRAM-MD5, DIGEST-MD5, LOGIN, PLAIN, EXTERNAL). It checks
// the client against auth.users, and before the first MAIL logs in upstream as the account mapped to
// that user (several users may share one). Unauthenticated MAIL gets 530 unless the client's address is
// in clients.relayWithoutAuth and auth.defaultUpstreamAccount is set: the stored provider credentials
// never make mailshim an open relay.
import type { AuthContext, AuthMode } from './mode.js';
import type { CompiledListener } from '../config/compile.js';
import * as R from '../protocol/replies.js';
import { createServerMechanism } from './mechanisms/index.js';
import { Credentials } from './credentials.js';
import { failExchange, runSaslExchange } from './sasl-exchange.js';
import { authAllowedOn } from './mode-forward.js';
import { loginUpstream, rewriteAuthParam } from '../upstream/upstream-auth.js';

/** What one session's upstream connection is logged in as. */
interface UpstreamLogin {
  account?: string;
  /** The provider refused (or mailshim would not send) the login: later MAILs get 454 without retrying. */
  refused?: boolean;
}

export function createLocalMode(l: CompiledListener): AuthMode {
  const creds = new Credentials(l.cfg.auth, l.upstreamCfg);
  const mechanisms = l.cfg.auth.mechanisms;
  const failureDelayMs = l.cfg.auth.failureDelay;
  const realm = l.cfg.auth.realm;
  const policy = { mechanism: l.upstreamCfg.auth.mechanism, allowAuthWithoutVerifiedTls: l.upstreamCfg.allowAuthWithoutVerifiedTls };
  const sessions = new WeakMap<AuthContext, UpstreamLogin>();

  const emitUpstream = (ctx: AuthContext, ev: { mechanism: string; user?: string; result: 'ok' | 'fail' | 'error'; code?: number; reason?: string }) =>
    ctx.emit({ type: 'auth', sid: ctx.sid, side: 'upstream', mode: 'local', ...ev });

  return {
    name: 'local',
    // EXTERNAL needs a certificate, so it is only offered on TLS.
    advertised: (tls) => (authAllowedOn(l, tls) ? mechanisms.filter((m) => tls || m !== 'EXTERNAL') : []),
    mayRelayUnauthenticated: (address) => creds.defaultAccount !== undefined && l.relayWithoutAuth.has(address),
    mailFromArgs: rewriteAuthParam,
    begin(ctx, mechanism, initial) {
      void verify(ctx, mechanism, initial);
    },
    beforeMail(ctx, user) {
      const account = creds.accountFor(user);
      // No account mapped: the upstream accepts mailshim without a login (e.g. by its address).
      if (!account) return undefined;
      const state = sessions.get(ctx) ?? {};
      sessions.set(ctx, state);
      if (state.account === account.name) return undefined;
      if (state.refused) return Promise.resolve('refused');
      if (state.account !== undefined) {
        // A new identity after STARTTLS maps to another account; one SMTP session cannot log in twice.
        emitUpstream(ctx, { mechanism: '-', user: account.user, result: 'error', reason: `session already logged in upstream as account "${state.account}", cannot switch to "${account.name}"` });
        return Promise.resolve('refused');
      }
      return loginUpstream(ctx.up, account, policy).then((r) => {
        if (r.ok) {
          state.account = account.name;
          emitUpstream(ctx, { mechanism: r.mechanism, user: account.user, result: 'ok', code: r.reply.code });
          return 'ok';
        }
        state.refused = true;
        emitUpstream(ctx, {
          mechanism: r.kind === 'refused' ? r.mechanism : '-',
          user: account.user,
          result: r.kind === 'refused' ? 'fail' : 'error',
          code: r.kind === 'refused' ? r.reply.code : undefined,
          // The client's user name stays out of the reason: it is in the session's own auth event, where
          // capture.redactUsernames applies.
          reason: `${r.reason} (account "${account.name}"${user === undefined ? ', for an unauthenticated client' : ''})`,
        });
        return 'refused';
      });
    },
  };

  async function verify(ctx: AuthContext, mechanism: string, initial: string | undefined): Promise<void> {
    const mech = mechanisms.includes(mechanism as (typeof mechanisms)[number])
      ? createServerMechanism(mechanism, {
          hostname: ctx.hostname,
          ...(realm === undefined ? {} : { realm }),
          verifyPassword: (u, p, z) => creds.verifyPassword(u, p, z),
          lookupSecret: (u) => creds.secret(u),
          lookupDigest: (u) => creds.digest(u),
          ...(ctx.clientCertUser === undefined ? {} : { certificateUser: creds.userForCertificate(ctx.clientCertUser) }),
        })
      : undefined;
    if (!mech) {
      await failExchange(ctx, R.authUnknownMech(), { mechanism, mode: 'local', result: 'error' });
      return;
    }
    const id = await runSaslExchange(ctx, mech, initial, { mode: 'local', failureDelayMs });
    if (!id) return;
    // Acting as another user would borrow that user's upstream account: not offered.
    if (id.authzid !== undefined && id.authzid !== id.authcid) {
      await failExchange(ctx, R.authFailed(), { mechanism, mode: 'local', result: 'fail', user: id.authcid, delayMs: failureDelayMs });
      return;
    }
    ctx.reply(R.authSuccess());
    ctx.emit({ type: 'auth', sid: ctx.sid, side: 'client', mechanism, mode: 'local', user: id.authcid, result: 'ok', code: 235 });
    ctx.finish({ user: id.authcid });
  }
}
