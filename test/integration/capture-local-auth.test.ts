// A local-auth session (FIELD-NOTES case 1): the device does AUTH CRAM-MD5 to mailshim, which checks it
// against auth.users and logs in upstream with AUTH PLAIN as the mapped provider account before the first
// MAIL. Golden `trace show`: test/fixtures/transcripts/local-auth.txt.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Dialogue, maskVolatile } from './capture-helpers.js';
import { settle, startProxy, traceCli } from './capture-run.js';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { cramMd5ClientResponse } from '../../src/auth/mechanisms/cram-md5.js';
import type { App } from '../../src/app.js';

const GOLDEN = path.join(import.meta.dirname, '../fixtures/transcripts');
const USER = 'doorphone';
const DEVICE_SECRET = 'Dev1ce-Cram-Secr3t';
const PROVIDER_USER = 'doorbell@provider.test';
const PROVIDER_SECRET = 'Pr0vider-Acc0unt-Pw';
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

describe('capture: local-auth session (CRAM-MD5 in, AUTH PLAIN upstream)', () => {
  let dir: string;
  let up: FakeUpstream;
  let app: App;
  let logs: string[];
  let sid = '';
  let challenge = '';
  let cramResponse: Buffer = Buffer.alloc(0);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-local-'));
    // The fake upstream checks the credentials: a 235 means mailshim really sent the provider account.
    up = await startFakeUpstream({ ehlo: ['PIPELINING', 'AUTH PLAIN LOGIN', '8BITMIME'], users: { [PROVIDER_USER]: PROVIDER_SECRET } });
    let port: number;
    ({ app, port, logs } = await startProxy({
      listeners: [
        {
          name: 'doorphone',
          listen: '127.0.0.1:0',
          hostname: 'mailshim.test',
          upstream: 'provider',
          auth: { mode: 'local', mechanisms: ['CRAM-MD5'], failureDelay: 0, users: [{ name: USER, password: DEVICE_SECRET, upstreamAccount: 'bell' }] },
        },
      ],
      upstreams: {
        provider: {
          host: '127.0.0.1',
          port: up.port,
          ehloName: 'mailshim.test',
          // Loopback without TLS: the test accepts sending the account password in the clear.
          allowAuthWithoutVerifiedTls: true,
          accounts: { bell: { user: PROVIDER_USER, password: PROVIDER_SECRET } },
        },
      },
      capture: { dir: path.join(dir, 'sessions') },
    }));
    const d = await Dialogue.connect(port);
    await d.reply();
    await d.cmd('EHLO doorphone', /^250[- ]AUTH CRAM-MD5\r?$/m);
    challenge = (await d.cmd('AUTH CRAM-MD5', /^334 /)).slice(4);
    cramResponse = cramMd5ClientResponse(USER, DEVICE_SECRET, Buffer.from(challenge, 'base64'));
    await d.cmd(b64(cramResponse), /^235/);
    await d.cmd('MAIL FROM:<doorphone@example.net>', /^250/);
    await d.cmd('RCPT TO:<owner@example.net>', /^250/);
    await d.cmd('DATA', /^354/);
    await d.cmd('From: doorphone@example.net\r\nSubject: Ring\r\nMessage-ID: <ring-3@doorphone.example>\r\n\r\nSomeone rang.\r\n.', /^250 2\.0\.0/);
    await d.cmd('QUIT', /^221/);
    await d.close();
    await settle(app);
    sid = fs.readdirSync(path.join(dir, 'sessions'))[0]!.replace(/^.*Z-|\.jsonl$/g, '');
  }, 30_000);

  afterAll(async () => {
    await app?.stop(100);
    await up?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('mailshim logged in upstream with AUTH PLAIN as the mapped account, not the device user', () => {
    const cmds = up.connections.flatMap((c) => c.commands);
    const auth = cmds.filter((l) => /^AUTH /i.test(l));
    expect(auth).toHaveLength(1);
    expect(auth[0]).toBe(`AUTH PLAIN ${b64(`\0${PROVIDER_USER}\0${PROVIDER_SECRET}`)}`);
    expect(cmds.indexOf(auth[0]!)).toBeLessThan(cmds.findIndex((l) => l.startsWith('MAIL ')));
    expect(up.connections.flatMap((c) => c.messages)).toHaveLength(1);
  });

  it('trace show: the client CRAM-MD5 exchange, the upstream AUTH PLAIN masked, both AUTH outcomes (golden)', async () => {
    const r = await traceCli(['show', sid, '--dir', path.join(dir, 'sessions'), '--no-color']);
    expect(r.code).toBe(0);
    const text = r.out.toString();
    expect(text).toContain('C: AUTH CRAM-MD5');
    expect(text).toMatch(/^ +\+\d+\.\d{3} M: AUTH PLAIN \*{8}$/m);
    expect(text).toMatch(/-- AUTH CRAM-MD5 \(local, client side\): ok 235, user doorphone$/m);
    expect(text).toMatch(/-- AUTH PLAIN \(local, upstream side\): ok 235, user doorbell@provider\.test$/m);
    // The challenge is mailshim's own (random, with a timestamp); everything else is stable.
    expect(text).toContain(`S: 334 ${challenge}`);
    const masked = maskVolatile(text, sid).split(challenge).join('CHALLENGE');
    const file = path.join(GOLDEN, 'local-auth.txt');
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, masked);
    expect(masked).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('no CRAM-MD5 response or provider password in the transcript or the log; the usernames are there', () => {
    const sessions = path.join(dir, 'sessions');
    const written = fs.readdirSync(sessions).map((f) => fs.readFileSync(path.join(sessions, f), 'latin1')).join('\n') + logs.join('');
    const digest = cramResponse.toString('latin1').split(' ')[1]!;
    const plainBlob = b64(`\0${PROVIDER_USER}\0${PROVIDER_SECRET}`);
    // What crossed the wire: the proof the needles are the real forms.
    expect(up.allReceived()).toContain(plainBlob);
    for (const secret of [DEVICE_SECRET, b64(DEVICE_SECRET), b64(cramResponse), digest, PROVIDER_SECRET, b64(PROVIDER_SECRET), plainBlob]) {
      expect(written, secret).not.toContain(secret);
    }
    expect(written).toContain(`"user":"${USER}"`);
    expect(written).toContain(`"user":"${PROVIDER_USER}"`);
  });
});
