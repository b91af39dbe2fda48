// The session side of one SASL exchange (RFC 4954 section 4): the mechanism is a pure step function;
// this loop owns the SMTP framing: `334 <base64>` challenges, strict base64 decoding, the `*` cancel, and
// the failure replies. It emits only the mechanism, the user name and the verdict; the session masks
// every client line of the exchange itself.
import type { SaslIdentity, SaslServerMechanism, SaslStep, SmtpReply } from '../types.js';
import type { AuthContext } from './mode.js';
import * as R from '../protocol/replies.js';
import { decodeSaslBase64, encodeSaslBase64, isCancel } from './sasl-codec.js';

export interface ExchangeOptions {
  mode: 'forward' | 'local';
  /** Pause before a failure reply (auth.failureDelay), so guessing is slow. */
  failureDelayMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * End an exchange with a failure: emit the verdict, wait `delayMs` for credential failures, reply, finish.
 * The session's AUTH handler counts 535 replies towards the lockout.
 */
export async function failExchange(
  ctx: AuthContext,
  reply: SmtpReply,
  info: { mechanism: string; mode: string; result: 'fail' | 'cancel' | 'error'; user?: string; delayMs?: number },
): Promise<void> {
  if (info.delayMs) await sleep(info.delayMs);
  ctx.reply(reply);
  ctx.emit({ type: 'auth', sid: ctx.sid, side: 'client', mechanism: info.mechanism, mode: info.mode, user: info.user, result: info.result, code: reply.code });
  ctx.finish({ failed: true });
}

function stepFailure(step: Extract<SaslStep, { kind: 'error' }>): SmtpReply {
  // Malformed SASL content is answered like wrong credentials: it tells a guesser nothing more.
  return step.code === 'too-weak' ? R.authTooWeak() : R.authFailed();
}

/** The user named in a failure reason (`... for "name"`), for the log; never a secret. */
function userInReason(reason: string): string | undefined {
  return /"([^"]*)"/.exec(reason)?.[1];
}

/**
 * Run `mech` to its end. Resolves the identity on success (the caller sends 235 or the upstream's
 * verdict and calls finish); on failure the reply is sent and the exchange finished here, and it
 * resolves undefined.
 */
export async function runSaslExchange(
  ctx: AuthContext,
  mech: SaslServerMechanism,
  initial: string | undefined,
  opts: ExchangeOptions,
): Promise<SaslIdentity | undefined> {
  const base = { mechanism: mech.name, mode: opts.mode };
  let response: Buffer | undefined;
  if (initial !== undefined) {
    if (isCancel(initial)) {
      await failExchange(ctx, R.authCancelled(), { ...base, result: 'cancel' });
      return undefined;
    }
    const decoded = decodeSaslBase64(initial);
    if (decoded === null) {
      await failExchange(ctx, R.authMalformed(), { ...base, result: 'error' });
      return undefined;
    }
    response = decoded;
  }
  // Bounded: every mechanism here finishes within three round trips; a broken one must not loop forever.
  for (let round = 0; round < 8; round++) {
    let step: SaslStep;
    try {
      step = await mech.next(response);
    } catch (err) {
      // The user store could not be read: a temporary failure, not the client's fault (RFC 4954 454).
      void err;
      ctx.reply(R.authTempFail());
      ctx.emit({ type: 'auth', sid: ctx.sid, side: 'client', ...base, result: 'error', code: 454 });
      ctx.finish({ failed: true });
      return undefined;
    }
    if (step.kind === 'done') return step.identity;
    if (step.kind === 'error') {
      await failExchange(ctx, stepFailure(step), { ...base, result: 'fail', user: userInReason(step.reason), delayMs: opts.failureDelayMs });
      return undefined;
    }
    ctx.reply(R.authChallenge(encodeSaslBase64(step.challenge)));
    const line = await new Promise<string | null>((resolve) => ctx.readAuthLine(resolve));
    if (line === null) {
      await failExchange(ctx, R.authLineTooLong(), { ...base, result: 'error' });
      return undefined;
    }
    if (isCancel(line)) {
      await failExchange(ctx, R.authCancelled(), { ...base, result: 'cancel' });
      return undefined;
    }
    const decoded = decodeSaslBase64(line);
    if (decoded === null) {
      await failExchange(ctx, R.authMalformed(), { ...base, result: 'error' });
      return undefined;
    }
    response = decoded;
  }
  await failExchange(ctx, R.authFailed(), { ...base, result: 'error' });
  return undefined;
}
