// The secret grep: sessions with every mechanism in every auth mode, then every byte mailshim wrote
// (transcript files and its log; the key log is meant to hold secrets and is not written here) is searched
// for each secret, raw and in the base64 forms that went over the wire: zero hits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Dialogue, startFakeUpstream, type FakeUpstream } from './capture-helpers.js';
import { settle, startProxy } from './capture-run.js';
import { plainClientResponse } from '../../src/auth/mechanisms/plain.js';
import { cramMd5ClientResponse } from '../../src/auth/mechanisms/cram-md5.js';
import { digestMd5ClientResponse } from '../../src/auth/mechanisms/digest-md5.js';
import type { App } from '../../src/app.js';

const USER = 'doorphone';
const DEVICE_SECRET = 'Dev1ce-Secr3t-Pw';
const PROVIDER_SECRET = 'Pr0vider-Acc0unt-Pw';
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

/** Every form of a secret that may have crossed the wire. */
const needles: string[] = [];
function remember(...forms: (string | Buffer)[]): void {
  for (const f of forms) {
    const s = typeof f === 'string' ? f : f.toString('latin1');
    if (s.length >= 6) needles.push(s);
  }
}

async function authenticate(d: Dialogue, mech: string, withInitial: boolean, password: string): Promise<string> {
  if (mech === 'PLAIN') {
    const msg = plainClientResponse(USER, password);
    remember(msg, b64(msg));
    if (withInitial) return d.cmd(`AUTH PLAIN ${b64(msg)}`, /^(235|535)/);
    await d.cmd('AUTH PLAIN', /^334/);
    return d.cmd(b64(msg), /^(235|535)/);
  }
  if (mech === 'LOGIN') {
    remember(b64(password));
    await d.cmd('AUTH LOGIN', /^334/);
    await d.cmd(b64(USER), /^334/);
    return d.cmd(b64(password), /^(235|535)/);
  }
  if (mech === 'CRAM-MD5') {
    const ch = Buffer.from((await d.cmd('AUTH CRAM-MD5', /^334 /)).slice(4), 'base64');
    const resp = cramMd5ClientResponse(USER, password, ch);
    remember(resp, b64(resp), resp.toString('latin1').split(' ')[1]!);
    return d.cmd(b64(resp), /^(235|535)/);
  }
  const ch = Buffer.from((await d.cmd('AUTH DIGEST-MD5', /^334 /)).slice(4), 'base64');
  const { response } = digestMd5ClientResponse({ user: USER, password, challenge: ch, digestUri: 'smtp/mailshim.test' });
  remember(response, b64(response), /response=([0-9a-f]{32})/.exec(response.toString())![1]!);
  const r = await d.cmd(b64(response), /^(334|235|535)/);
  return r.startsWith('334') ? d.cmd('', /^(235|535)/) : r;
}

describe('capture: no secret in anything mailshim writes', () => {
  let dir: string;
  let up: FakeUpstream;
  let app: App;
  let port: number;
  let logs: string[];
  const results: string[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-secrets-'));
    up = await startFakeUpstream();
    remember(DEVICE_SECRET, b64(DEVICE_SECRET), PROVIDER_SECRET, b64(PROVIDER_SECRET), b64(`\0acct@provider.test\0${PROVIDER_SECRET}`));
    const listener = (name: string, mode: string, mechanisms: string[]) => ({
      name,
      listen: '127.0.0.1:0',
      hostname: 'mailshim.test',
      upstream: 'provider',
      auth: { mode, mechanisms, realm: 'mailshim.test', failureDelay: 0, users: [{ name: USER, password: DEVICE_SECRET, upstreamAccount: 'acct' }] },
    });
    ({ app, logs } = await startProxy({
      listeners: [
        listener('pass', 'passthrough', ['PLAIN', 'LOGIN']),
        listener('fwd', 'forward', ['PLAIN', 'LOGIN']),
        listener('local', 'local', ['PLAIN', 'LOGIN', 'CRAM-MD5', 'DIGEST-MD5']),
      ],
      upstreams: {
        provider: {
          host: '127.0.0.1',
          port: up.port,
          ehloName: 'mailshim.test',
          allowAuthWithoutVerifiedTls: true,
          accounts: { acct: { user: 'acct@provider.test', password: PROVIDER_SECRET } },
        },
      },
      capture: { dir: path.join(dir, 'sessions'), body: 'full' },
    }));
    port = 0;
    const plan: [number, string, boolean][] = [
      [0, 'PLAIN', true],
      [0, 'PLAIN', false],
      [0, 'LOGIN', false],
      [0, 'CRAM-MD5', false],
      [0, 'DIGEST-MD5', false],
      [1, 'PLAIN', true],
      [1, 'PLAIN', false],
      [1, 'LOGIN', false],
      [2, 'PLAIN', true],
      [2, 'PLAIN', false],
      [2, 'LOGIN', false],
      [2, 'CRAM-MD5', false],
      [2, 'DIGEST-MD5', false],
    ];
    for (const [i, mech, initial] of plan) {
      // Each mode once with the right password and once with a wrong one (failure paths log more).
      for (const password of [DEVICE_SECRET, `${DEVICE_SECRET}-wrong`]) {
        const d = await Dialogue.connect(app.listeners[i]!.address().port);
        await d.reply();
        await d.cmd('EHLO device', /^250/);
        const r = await authenticate(d, mech, initial, password);
        results.push(`${app.listeners[i]!.compiled.name} ${mech} ${r.slice(0, 3)}`);
        if (r.startsWith('235')) {
          await d.cmd('MAIL FROM:<d@example.net>', /^250/);
          await d.cmd('RCPT TO:<o@example.net>', /^250/);
          await d.cmd('DATA', /^354/);
          await d.cmd('Subject: test\r\n\r\nbody\r\n.', /^250/);
        }
        await d.cmd('QUIT', /^221/);
        await d.close();
      }
    }
    await settle(app);
  }, 60_000);

  afterAll(async () => {
    await app?.stop(100);
    await up?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ran every mechanism in every mode, and local mode logged in upstream with the provider account', () => {
    expect(results.filter((r) => r.endsWith('235')).length).toBeGreaterThanOrEqual(13);
    // passthrough and forward show the wrong password to the fake upstream, which accepts anything;
    // local mode checks it itself: all its wrong-password runs fail.
    expect(results.filter((r) => r.startsWith('local') && r.endsWith('535'))).toHaveLength(5);
    expect(up.received.some((l) => l.startsWith('AUTH PLAIN ') && Buffer.from(l.slice(11), 'base64').toString().includes(PROVIDER_SECRET))).toBe(true);
  });

  it('transcripts and logs contain no secret, raw or base64', () => {
    const files = fs.readdirSync(path.join(dir, 'sessions'));
    expect(files.length).toBe(26);
    const written = files.map((f) => fs.readFileSync(path.join(dir, 'sessions', f), 'latin1')).join('\n') + logs.join('');
    expect(written).toContain('AUTH PLAIN ********');
    // Usernames are shown (capture.redactUsernames is off).
    expect(written).toContain(`"user":"${USER}"`);
    // The needles are the real wire forms: the upstream's own record of the sessions is full of them.
    expect([...new Set(needles)].filter((n) => up.received.join('\n').includes(n)).length).toBeGreaterThan(5);
    const hits = [...new Set(needles)].filter((n) => written.includes(n));
    expect(hits).toEqual([]);
  });
});
