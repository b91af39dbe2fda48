// A passthrough session with an EHLO rewrite, a failing AUTH (Microsoft 365's 535 5.7.139), a working
// AUTH and one message, captured and shown with `mailshim trace`. Golden: test/fixtures/transcripts/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Dialogue, maskVolatile, startFakeUpstream, type FakeUpstream } from './capture-helpers.js';
import { settle, startProxy, traceCli } from './capture-run.js';
import type { App } from '../../src/app.js';

const GOLDEN = path.join(import.meta.dirname, '../fixtures/transcripts');

function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
  expect(actual).toBe(fs.readFileSync(file, 'utf8'));
}

describe('capture: passthrough session', () => {
  let dir: string;
  let up: FakeUpstream;
  let upFail: FakeUpstream;
  let app: App;
  let port: number;
  let logs: string[];
  let sid = '';

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-capture-'));
    up = await startFakeUpstream();
    upFail = await startFakeUpstream({ authReply: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.' });
    ({ app, port, logs } = await startProxy({
      listeners: [
        { name: 'qmail-fix', listen: '127.0.0.1:0', hostname: 'mailshim.test', upstream: 'ok', ehlo: [{ 'remove-auth': 'CRAM-MD5' }, { 'add-auth-equals': true }] },
      ],
      upstreams: { ok: { host: '127.0.0.1', port: up.port, ehloName: 'mailshim.test' } },
      capture: { dir: path.join(dir, 'sessions') },
    }));
    const d = await Dialogue.connect(port);
    await d.reply();
    await d.cmd('EHLO doorphone', /^250/);
    await d.cmd('AUTH LOGIN', /^334 VXNlcm5hbWU6/);
    await d.cmd(Buffer.from('doorphone').toString('base64'), /^334 UGFzc3dvcmQ6/);
    await d.cmd(Buffer.from('hunter2-secret').toString('base64'), /^235/);
    await d.cmd('MAIL FROM:<doorphone@example.net>', /^250/);
    await d.cmd('RCPT TO:<owner@example.net>', /^250/);
    await d.cmd('DATA', /^354/);
    await d.cmd('From: doorphone@example.net\r\nSubject: Ring\r\nMessage-ID: <ring-1@doorphone.example>\r\n\r\nSomeone rang.\r\n.', /^250 2\.0\.0/);
    await d.cmd('QUIT', /^221/);
    await d.close();
    await settle(app);
    sid = fs.readdirSync(path.join(dir, 'sessions'))[0]!.replace(/^.*Z-|\.jsonl$/g, '');
  });

  afterAll(async () => {
    await app?.stop(100);
    await up?.close();
    await upFail?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes one JSON Lines file with the session in order, secrets masked', () => {
    const files = fs.readdirSync(path.join(dir, 'sessions'));
    expect(files).toHaveLength(1);
    const text = fs.readFileSync(path.join(dir, 'sessions', files[0]!), 'utf8');
    const recs = text.trim().split('\n').map((l) => JSON.parse(l));
    expect(recs[0]).toMatchObject({ type: 'session.start', listener: 'qmail-fix', client: '127.0.0.1' });
    expect(recs.at(-1)).toMatchObject({ type: 'session.end', summary: { result: 'ok', messages: 1 } });
    const ts = recs.map((r) => r.t as number);
    expect([...ts].sort((a, b) => a - b)).toEqual(ts);
    expect(recs.find((r) => r.type === 'tx.commit')).toMatchObject({ messageId: '<ring-1@doorphone.example>', from: 'doorphone@example.net', recipients: ['owner@example.net'], code: 250 });
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain(Buffer.from('hunter2-secret').toString('base64'));
    expect(fs.statSync(path.join(dir, 'sessions', files[0]!)).mode & 0o077).toBe(0);
  });

  it('trace show: C:/S:/M:/U: lines, rewrite marks, masked AUTH (golden)', async () => {
    const r = await traceCli(['show', sid.slice(0, 6), '--dir', path.join(dir, 'sessions'), '--no-color']);
    expect(r.code).toBe(0);
    const text = r.out.toString();
    expect(text).toMatch(/S: 250-AUTH LOGIN PLAIN DIGEST-MD5 +\[rewritten; upstream said: AUTH LOGIN CRAM-MD5 PLAIN DIGEST-MD5\]/);
    expect(text).toMatch(/S: 250-AUTH=LOGIN PLAIN DIGEST-MD5 +\[added by mailshim\]/);
    golden('passthrough.txt', maskVolatile(text, sid));
  });

  it('trace show is coloured only when asked (or on a TTY)', async () => {
    const r = await traceCli(['show', sid, '--dir', path.join(dir, 'sessions'), '--color']);
    expect(r.out.toString()).toContain('\x1b[32mC:\x1b[0m EHLO doorphone');
  });

  it('trace list: one line; --failed hides it; --client filters', async () => {
    const d = path.join(dir, 'sessions');
    const all = await traceCli(['list', '--dir', d]);
    expect(all.out.toString().trim().split('\n')).toHaveLength(1);
    expect(all.out.toString()).toMatch(new RegExp(`^${sid}  \\S+ \\S+Z  qmail-fix  127\\.0\\.0\\.1  doorphone  ok  [\\d.]+s  1 sent`));
    expect((await traceCli(['list', '--dir', d, '--failed'])).out.toString()).toBe('');
    expect((await traceCli(['list', '--dir', d, '--client', '10.9.9.9'])).out.toString()).toBe('');
    expect((await traceCli(['list', '--dir', d, '--since', '1h'])).out.toString()).toContain(sid);
  });

  it('a failing AUTH is marked failed, with the provider hint (docs/trace.md example)', async () => {
    // Same listener config, pointed at an upstream that answers like a tenant with SMTP AUTH disabled.
    const { app: app2, port: port2 } = await startProxy({
      listeners: [{ name: 'office', listen: '127.0.0.1:0', hostname: 'mailshim.test', upstream: 'm365' }],
      upstreams: { m365: { host: '127.0.0.1', port: upFail.port, ehloName: 'mailshim.test' } },
      capture: { dir: path.join(dir, 'failing') },
    });
    try {
      const d = await Dialogue.connect(port2);
      await d.reply();
      await d.cmd('EHLO printer', /^250/);
      await d.cmd('AUTH PLAIN ' + Buffer.from('\0scanner@example.com\0Winter2024!').toString('base64'), /^535 5\.7\.139/);
      await d.cmd('QUIT', /^221/);
      await d.close();
      await settle(app2);
    } finally {
      await app2.stop(100);
    }
    const list = await traceCli(['list', '--dir', path.join(dir, 'failing'), '--failed']);
    expect(list.out.toString()).toContain('535 5.7.139');
    const id = list.out.toString().split(' ')[0]!;
    const show = (await traceCli(['show', id, '--dir', path.join(dir, 'failing'), '--no-color'])).out.toString();
    expect(show).toContain('C: AUTH PLAIN ********');
    expect(show).toContain('hint: SMTP AUTH is disabled for this tenant or mailbox');
    expect(show).not.toContain('Winter2024');
    golden('failing-auth.txt', maskVolatile(show, id));
  });

  it('trace pcap: tshark dissects SMTP commands and replies in order', async () => {
    const r = await traceCli(['pcap', sid, '--dir', path.join(dir, 'sessions')]);
    expect(r.code).toBe(0);
    const file = path.join(dir, 'session.pcap');
    fs.writeFileSync(file, r.out);
    const out = execFileSync('tshark', ['-r', file, '-Y', 'smtp', '-T', 'fields', '-e', 'tcp.dstport', '-e', 'smtp.req.command', '-e', 'smtp.response.code'], { encoding: 'utf8', timeout: 30_000 });
    const rows = out.trim().split('\n').map((l) => l.split('\t'));
    // The client conversation (to 587): greeting, EHLO, AUTH, MAIL, RCPT, DATA, QUIT in order.
    const toProxy = rows.filter((r) => r[0] === '587' && r[1]).map((r) => r[1]);
    expect(toProxy).toEqual(['EHLO', 'AUTH', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
    // The upstream conversation (to 25): the same commands as mailshim relayed them.
    const toUpstream = rows.filter((r) => r[0] === '25' && r[1]).map((r) => r[1]);
    expect(toUpstream).toEqual(['EHLO', 'AUTH', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
    const replies = rows.filter((r) => r[2]).map((r) => r[2]!.split(',')[0]);
    expect(replies.slice(0, 2)).toEqual(['220', '220']);
    expect(replies).toContain('354');
    expect(replies.filter((c) => c === '221')).toHaveLength(2);
  });

  it('the log never holds the password', () => {
    const all = logs.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain('hunter2');
  });
});
