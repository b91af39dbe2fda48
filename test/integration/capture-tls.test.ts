// A TLS 1.0 client (the doorphone of FIELD-NOTES 1) through mailshim to a TLS 1.2 upstream, both legs
// STARTTLS. Checks: the golden `trace show` with both TLS lines; the key log lets tshark decrypt a live
// loopback capture of both legs; the exported pcap dissects as SMTP without keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Dialogue, makeCert, maskVolatile, startFakeUpstream, startLiveCapture, type FakeUpstream, type LiveCapture } from './capture-helpers.js';
import { settle, startProxy, traceCli } from './capture-run.js';
import type { App } from '../../src/app.js';

const GOLDEN = path.join(import.meta.dirname, '../fixtures/transcripts');

describe('capture: TLS 1.0 client -> TLS 1.2 upstream', () => {
  let dir: string;
  let up: FakeUpstream;
  let app: App;
  let port: number;
  let tshark: LiveCapture | undefined;
  let sid = '';
  const pcapLive = () => path.join(dir, 'live.pcap');
  const keylog = () => path.join(dir, 'keys.log');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-tls-'));
    fs.chmodSync(dir, 0o755);
    const cert = makeCert(dir);
    up = await startFakeUpstream({ tls: { ...cert, maxVersion: 'TLSv1.2' } });
    ({ app, port } = await startProxy({
      listeners: [
        {
          name: 'doorphone',
          listen: '127.0.0.1:0',
          hostname: 'mailshim.test',
          upstream: 'provider',
          tls: { mode: 'starttls', cert: cert.cert, key: cert.key, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' },
        },
      ],
      upstreams: { provider: { host: '127.0.0.1', port: up.port, ehloName: 'mailshim.test', tls: { mode: 'starttls', ca: cert.cert, servername: 'localhost' } } },
      capture: { dir: path.join(dir, 'sessions'), keylog: keylog() },
    }));
    // Live capture of both legs on loopback (tshark needs the capture privileges this machine's root has),
    // proved to be running before the session starts.
    tshark = await startLiveCapture([port, up.port], pcapLive());
    const d = await Dialogue.connect(port);
    await d.reply();
    await d.cmd('EHLO doorphone', /STARTTLS/);
    await d.starttls({ minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0', servername: 'localhost' });
    await d.cmd('EHLO doorphone', /^250/);
    await d.cmd('MAIL FROM:<doorphone@example.net>', /^250/);
    await d.cmd('RCPT TO:<owner@example.net>', /^250/);
    await d.cmd('DATA', /^354/);
    await d.cmd('Subject: Ring\r\nMessage-ID: <ring-2@doorphone.example>\r\n\r\nSomeone rang.\r\n.', /^250/);
    await d.cmd('QUIT', /^221/);
    await d.close();
    await settle(app);
    // Stops only once a packet sent after the session is in the capture, so the session is complete.
    await tshark.stop();
    tshark = undefined;
    sid = fs.readdirSync(path.join(dir, 'sessions'))[0]!.replace(/^.*Z-|\.jsonl$/g, '');
  }, 60_000);

  afterAll(async () => {
    tshark?.kill();
    await app?.stop(100);
    await up?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('trace show: TLSv1 on the client leg, TLSv1.2 upstream with the verified certificate (golden)', async () => {
    const text = (await traceCli(['show', sid, '--dir', path.join(dir, 'sessions'), '--no-color'])).out.toString();
    expect(text).toMatch(/-- TLS client: TLSv1 /);
    expect(text).toMatch(/-- TLS upstream: TLSv1\.2 .*SNI localhost, cert CN=localhost; issuer CN=localhost; .*; verified/);
    const masked = maskVolatile(text, sid);
    const file = path.join(GOLDEN, 'tls10-to-tls12.txt');
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, masked);
    expect(masked).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('the key log (0600) lets tshark decrypt the SMTP commands of both legs', () => {
    expect(fs.statSync(keylog()).mode & 0o077).toBe(0);
    const keys = fs.readFileSync(keylog(), 'utf8');
    expect(keys).toMatch(/^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$/m);
    const fields = (keyfile: string) =>
      execFileSync(
        'tshark',
        ['-r', pcapLive(), '-o', `tls.keylog_file:${keyfile}`, '-d', `tcp.port==${port},smtp`, '-d', `tcp.port==${up.port},smtp`, '-Y', 'smtp.req', '-T', 'fields', '-e', 'tcp.dstport', '-e', 'smtp.req.command'],
        { encoding: 'utf8', timeout: 30_000 },
      )
        .trim()
        .split('\n')
        .map((l) => l.split('\t'));
    const rows = fields(keylog());
    const leg = (p: number) => rows.filter((r) => r[0] === String(p)).map((r) => r[1]);
    // (tshark shows a command's first four letters: STARTTLS -> STAR.) Client leg: EHLO and STARTTLS in the clear, then the decrypted commands.
    expect(leg(port)).toEqual(['EHLO', 'STAR', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
    // Upstream leg: mailshim's own EHLO + STARTTLS, then (decrypted) the relayed commands.
    // (mailshim relays each client EHLO, so two follow its STARTTLS.)
    const upLeg = leg(up.port);
    expect(upLeg.slice(upLeg.indexOf('STAR'))).toEqual(['STAR', 'EHLO', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
    // Without the keys only the cleartext part is visible: proof the capture really was encrypted.
    const none = path.join(dir, 'empty.log');
    fs.writeFileSync(none, '');
    expect(fields(none).filter((r) => r[1] === 'MAIL')).toEqual([]);
  });

  it('the exported pcap shows the cleartext SMTP of both legs after STARTTLS, no keys needed', async () => {
    const r = await traceCli(['pcap', sid, '--dir', path.join(dir, 'sessions')]);
    const file = path.join(dir, 'export.pcap');
    fs.writeFileSync(file, r.out);
    const out = execFileSync('tshark', ['-r', file, '-Y', 'smtp.req', '-T', 'fields', '-e', 'smtp.req.command'], { encoding: 'utf8', timeout: 30_000 });
    const cmds = out.trim().split('\n');
    expect(cmds.filter((c) => c === 'MAIL')).toHaveLength(2);
    // tshark's smtp.req.command holds the first four letters of a command (STARTTLS -> STAR).
    expect(cmds.filter((c) => c === 'STAR')).toHaveLength(2);
  });
});
