// The session-side SASL loop against a recording context: the replies a client would read.
import { describe, expect, it } from 'vitest';
import { runSaslExchange } from '../../../../src/auth/sasl-exchange.js';
import { createServerMechanism, cramMd5ClientResponse } from '../../../../src/auth/mechanisms/index.js';
import type { AuthContext } from '../../../../src/auth/mode.js';
import type { SmtpReply } from '../../../../src/types.js';
import type { SessionEvent } from '../../../../src/observe/events.js';
import { Credentials } from '../../../../src/auth/credentials.js';
import { configSchema } from '../../../../src/config/schema.js';

function fakeCtx(lines: ((replies: string[]) => string | null)[]) {
  const replies: string[] = [];
  const events: SessionEvent[] = [];
  let finished: { user?: string; failed?: boolean } | undefined;
  const ctx = {
    hostname: 'mx.test',
    clientAddress: '192.0.2.1',
    clientTls: undefined,
    clientCertUser: undefined,
    up: undefined as never,
    sid: 's1',
    reply: (r: SmtpReply) => replies.push(`${r.code} ${r.lines.join(' ')}`),
    relayReply: (r: SmtpReply) => replies.push(`${r.code} ${r.lines.join(' ')}`),
    readAuthLine: (cb: (l: string | null) => void) => {
      const next = lines.shift();
      if (!next) throw new Error('exchange read more lines than the client sent');
      cb(next(replies));
    },
    finish: (r: { user?: string; failed?: boolean }) => (finished = r),
    emit: (ev: SessionEvent) => events.push(ev),
  } satisfies AuthContext;
  return { ctx, replies, events, finished: () => finished };
}

const cfg = configSchema.parse({
  listeners: [
    {
      name: 'l',
      listen: 2525,
      upstream: 'u',
      auth: { mode: 'local', users: [{ name: 'tim', password: 'tanstaaftanstaaf', upstreamAccount: 'a' }, { name: 'dig', digestHash: '0123456789abcdef0123456789abcdef' }] },
    },
  ],
  upstreams: { u: { host: 'h', accounts: { a: { user: 'acct@example.net', password: 'pw' } } } },
});
const creds = new Credentials(cfg.listeners[0]!.auth, cfg.upstreams.u!);
const mechOpts = {
  hostname: 'mx.test',
  verifyPassword: (u: string, p: string, z?: string) => creds.verifyPassword(u, p, z),
  lookupSecret: (u: string) => creds.secret(u),
  lookupDigest: (u: string) => creds.digest(u),
};
const opts = { mode: 'local' as const, failureDelayMs: 0 };
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('runSaslExchange', () => {
  it('CRAM-MD5: challenge as 334 base64, identity on the right answer, no reply sent yet', async () => {
    const f = fakeCtx([
      (r) => {
        const challenge = Buffer.from(r.at(-1)!.slice(4), 'base64');
        return cramMd5ClientResponse('tim', 'tanstaaftanstaaf', challenge).toString('base64');
      },
    ]);
    const id = await runSaslExchange(f.ctx, createServerMechanism('CRAM-MD5', mechOpts)!, undefined, opts);
    expect(id).toEqual({ authcid: 'tim' });
    expect(f.replies).toHaveLength(1);
    expect(f.replies[0]).toMatch(/^334 [A-Za-z0-9+/=]+$/);
    expect(f.finished()).toBeUndefined();
  });

  it('PLAIN without initial response sends an empty 334 challenge', async () => {
    const f = fakeCtx([() => b64('\0tim\0tanstaaftanstaaf')]);
    const id = await runSaslExchange(f.ctx, createServerMechanism('PLAIN', mechOpts)!, undefined, opts);
    expect(f.replies).toEqual(['334 ']);
    expect(id).toEqual({ authcid: 'tim' });
  });

  it('wrong password: 535 5.7.8, finished as failed, the user in the event but never the password', async () => {
    const f = fakeCtx([]);
    const id = await runSaslExchange(f.ctx, createServerMechanism('PLAIN', mechOpts)!, b64('\0tim\0guess'), opts);
    expect(id).toBeUndefined();
    expect(f.replies).toEqual(['535 5.7.8 Authentication credentials invalid']);
    expect(f.finished()).toEqual({ failed: true });
    expect(f.events).toMatchObject([{ type: 'auth', side: 'client', result: 'fail', user: 'tim', code: 535 }]);
    expect(JSON.stringify(f.events)).not.toContain('guess');
  });

  it('* cancels with 501 5.7.0; bad base64 gives 501 5.5.2 (initial response and continuation)', async () => {
    const cancel = fakeCtx([() => '*']);
    await runSaslExchange(cancel.ctx, createServerMechanism('LOGIN', mechOpts)!, undefined, opts);
    expect(cancel.replies).toEqual(['334 VXNlcm5hbWU6', '501 5.7.0 Authentication cancelled']);

    const garbage = fakeCtx([() => 'dGlt===']);
    await runSaslExchange(garbage.ctx, createServerMechanism('LOGIN', mechOpts)!, undefined, opts);
    expect(garbage.replies.at(-1)).toBe('501 5.5.2 Cannot Base64-decode client response');

    const initial = fakeCtx([]);
    await runSaslExchange(initial.ctx, createServerMechanism('PLAIN', mechOpts)!, 'AHRpbQB0YW5z!', opts);
    expect(initial.replies).toEqual(['501 5.5.2 Cannot Base64-decode client response']);
  });

  it('waits failureDelay before a failure reply', async () => {
    const f = fakeCtx([]);
    const t0 = performance.now();
    await runSaslExchange(f.ctx, createServerMechanism('PLAIN', mechOpts)!, b64('\0tim\0guess'), { mode: 'local', failureDelayMs: 120 });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100);
  });
});

describe('Credentials', () => {
  it('maps users to upstream accounts; a digestHash-only user has no plaintext for CRAM-MD5', async () => {
    expect(creds.accountFor('tim')).toEqual({ name: 'a', user: 'acct@example.net', password: 'pw' });
    expect(creds.accountFor('dig')).toBeUndefined();
    expect(await creds.secret('dig')).toBeUndefined();
    expect(await creds.digest('dig')).toEqual({ ha1Hex: '0123456789abcdef0123456789abcdef' });
    expect(await creds.verifyPassword('tim', 'tanstaaftanstaaf')).toBe(true);
    expect(await creds.verifyPassword('tim', 'tanstaaftanstaaf', 'other')).toBe(false);
    expect(await creds.verifyPassword('nobody', 'x')).toBe(false);
  });
});
