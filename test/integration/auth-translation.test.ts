// AUTH translation with real peers: swaks, Python smtplib and openssl s_client talk to mailshim, which
// verifies them locally (CRAM-MD5, DIGEST-MD5, LOGIN, PLAIN, EXTERNAL) or forwards LOGIN/PLAIN, and logs in
// to a Postfix provider stand-in that offers only PLAIN and LOGIN over TLS 1.2+ (Cyrus sasldb), and that
// refuses any recipient to unauthenticated clients, so every delivery proves the upstream login.
import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createCerts, type TestCerts } from './harness/certs.js';
import { pythonSmtplib, swaks } from './harness/peers.js';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';
import { App } from '../../src/app.js';
import { configSchema } from '../../src/config/schema.js';
import type { SessionEvent } from '../../src/observe/events.js';
import { cramMd5ClientResponse } from '../../src/auth/mechanisms/index.js';

const DOOR = 'door-Secret-42';
const PRINTER = 'printer-Secret-7';
const STALE = 'stale-Secret-9';
const NOTIFY = 'n0tify-Provider-Pw';
const SOMEONE = 'himitsunokotoba';
const SECRETS = [DOOR, PRINTER, STALE, NOTIFY, SOMEONE, 'wrong-provider-pw', 'not-the-password'];

let certs: TestCerts;
let provider: PostfixInstance;
let app: App;
const events: SessionEvent[] = [];
const logLines: string[] = [];
const port: Record<string, number> = {};

beforeAll(async () => {
  certs = await createCerts();
  provider = await startPostfix({
    hostname: 'smtp.provider.test',
    domain: 'provider.test',
    tls: { ...certs.server, protocols: '>=TLSv1.2' },
    sasl: {
      users: [
        { user: 'notify', password: NOTIFY },
        { user: 'someone@example.net', password: SOMEONE },
      ],
      mechanisms: 'PLAIN LOGIN',
      requireTls: true,
      requireAuth: true,
    },
  });
  const upstream = (extra: object = {}) => ({
    host: '127.0.0.1',
    port: provider.port,
    tls: { mode: 'starttls', minVersion: 'TLSv1.2', ca: certs.ca.cert },
    accounts: { notify: { user: 'notify', password: NOTIFY }, broken: { user: 'notify', password: 'wrong-provider-pw' } },
    ...extra,
  });
  const doorUser = { name: 'doorphone', password: DOOR, upstreamAccount: 'notify' };
  const legacyTls = { mode: 'starttls', cert: certs.server.cert, key: certs.server.key, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' };
  const cfg = configSchema.parse({
    listeners: [
      {
        name: 'doorphone',
        listen: '127.0.0.1:0',
        hostname: 'mailshim.test',
        upstream: 'provider',
        tls: { ...legacyTls, requestClientCert: true, ca: certs.ca.cert },
        auth: {
          mode: 'local',
          mechanisms: ['CRAM-MD5', 'DIGEST-MD5', 'LOGIN', 'PLAIN', 'EXTERNAL'],
          users: [
            doorUser,
            { name: 'printer', password: PRINTER, upstreamAccount: 'notify' },
            { name: 'stale', password: STALE, upstreamAccount: 'broken' },
            { name: 'camera', certificateSubject: 'doorphone', upstreamAccount: 'notify' },
          ],
          failureDelay: '20ms',
          maxFailures: 100,
        },
      },
      // Plaintext LAN listener for the raw dialogues (cancel, garbage, 530 ...).
      { name: 'lan', listen: '127.0.0.1:0', hostname: 'mailshim.test', upstream: 'provider', auth: { mode: 'local', users: [doorUser], failureDelay: 0, maxFailures: 100 } },
      { name: 'lockout', listen: '127.0.0.1:0', hostname: 'mailshim.test', upstream: 'provider', auth: { mode: 'local', users: [doorUser], failureDelay: 0, maxFailures: 3 } },
      { name: 'forward', listen: '127.0.0.1:0', hostname: 'mailshim.test', upstream: 'provider', tls: legacyTls, auth: { mode: 'forward', failureDelay: '20ms' } },
      {
        name: 'devices',
        listen: '127.0.0.1:0',
        upstream: 'provider',
        clients: { relayWithoutAuth: ['127.0.0.1/32'] },
        auth: { mode: 'local', defaultUpstreamAccount: 'notify' },
      },
      { name: 'login-only', listen: '127.0.0.1:0', upstream: 'provider-login', auth: { mode: 'local', users: [doorUser] } },
      { name: 'unverified', listen: '127.0.0.1:0', upstream: 'provider-unverified', auth: { mode: 'local', users: [doorUser] } },
      { name: 'office', listen: '127.0.0.1:0', upstream: 'provider', clients: { allow: ['10.0.0.0/8'] } },
    ],
    upstreams: {
      provider: upstream(),
      'provider-login': upstream({ auth: { mechanism: 'LOGIN' } }),
      'provider-unverified': upstream({ tls: { mode: 'starttls', minVersion: 'TLSv1.2', verify: false } }),
    },
    log: { level: 'debug' },
  });
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  app = await App.start(cfg, { logger: pino({ level: 'debug' }, sink), observers: [(ev) => events.push(ev)] });
  app.listeners.forEach((l) => (port[l.compiled.name] = l.address().port));
});

afterAll(async () => {
  for (const d of open) d.end();
  await app?.stop(1000);
  await provider?.stop();
  await certs?.cleanup();
});

// --- helpers ---------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** swaks through the listener, as the owner's devices would send. */
function send(listener: string, subject: string, args: string[]) {
  return swaks(
    ['--server', `127.0.0.1:${port[listener]}`, '--from', 'doorphone@example.org', '--to', 'owner@provider.test',
      '--header', `Subject: ${subject}`, '--body', `mailshim test ${subject}`, '--timeout', '20', ...args],
    { timeoutMs: 30_000 },
  );
}

async function delivered(subject: string): Promise<boolean> {
  return (await provider.deliveries()).some((d) => d.content.includes(`Subject: ${subject}\r\n`));
}

async function waitDelivered(subject: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await delivered(subject))) {
    if (Date.now() > deadline) throw new Error(`"${subject}" was not delivered; provider log:\n${await provider.log()}`);
    await sleep(50);
  }
}

/** Dialogues still open, closed before mailshim stops (a failed test must not hang the stop). */
const open = new Set<Dialogue>();

/** A line-oriented SMTP client on a raw socket, for the dialogues real clients will not produce. */
class Dialogue {
  private buf = '';
  private closed = false;
  private waiters: (() => void)[] = [];
  constructor(public sock: net.Socket) {
    open.add(this);
    this.attach(sock);
  }
  private attach(sock: net.Socket) {
    this.sock = sock;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('error', () => {});
  }
  static open(p: number): Promise<Dialogue> {
    return new Promise((resolve, reject) => {
      const s = net.connect(p, '127.0.0.1', () => resolve(new Dialogue(s)));
      s.once('error', reject);
    });
  }
  send(line: string): void {
    this.sock.write(line + '\r\n');
  }
  /** The next complete reply (multi-line joined), or null when the connection closed first. */
  async reply(timeoutMs = 10_000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0];
      }
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms; have ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }
  async cmd(line: string): Promise<string | null> {
    this.send(line);
    return this.reply();
  }
  async ehlo(): Promise<string> {
    expect(await this.reply()).toMatch(/^220 /);
    const r = await this.cmd('EHLO tester.example');
    expect(r).toMatch(/^250 /m);
    return r!;
  }
  async starttls(): Promise<void> {
    expect(await this.cmd('STARTTLS')).toMatch(/^220 /);
    const raw = this.sock;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const t = tls.connect({ socket: raw, rejectUnauthorized: false });
    await new Promise((r) => t.once('secureConnect', r));
    this.attach(t);
  }
  async closedByServer(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await sleep(20);
    return this.closed;
  }
  end(): void {
    this.sock.destroy();
  }
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

// --- local mode: every mechanism, real clients ---------------------------------------------------------

describe('local mode: devices verified by mailshim, provider login with PLAIN as the mapped account', () => {
  for (const mech of ['CRAM-MD5', 'DIGEST-MD5', 'LOGIN', 'PLAIN']) {
    it(`swaks --auth ${mech} over STARTTLS delivers through the provider`, async () => {
      const subject = `swaks ${mech}`;
      const r = await send('doorphone', subject, ['--tls', '--auth', mech, '--auth-user', 'doorphone', '--auth-password', DOOR]);
      expect(r.stdout, r.stderr).toMatch(/^<~ +235 2\.7\.0/m);
      expect(r.code, r.stdout).toBe(0);
      await waitDelivered(subject);
    });
  }

  it('several users share one upstream account (printer sends as notify too)', async () => {
    const r = await send('doorphone', 'shared account', ['--tls', '--auth', 'CRAM-MD5', '--auth-user', 'printer', '--auth-password', PRINTER]);
    expect(r.code, r.stdout).toBe(0);
    await waitDelivered('shared account');
  });

  it('the provider saw the proxy authenticate with PLAIN as the mapped account, never CRAM-MD5', async () => {
    const log = await provider.waitForLog(/sasl_method=PLAIN, sasl_username=notify/);
    expect(log).not.toMatch(/sasl_method=(CRAM|DIGEST)/);
    expect(log).not.toMatch(/sasl_username=doorphone/);
  });

  it('swaks as a TLS 1.0 client (--tls-protocol tlsv1) with CRAM-MD5 delivers', async () => {
    const subject = 'swaks tls1 cram';
    const r = await send('doorphone', subject, ['--tls', '--tls-protocol', 'tlsv1', '--tls-cipher', 'DEFAULT:@SECLEVEL=0',
      '--auth', 'CRAM-MD5', '--auth-user', 'doorphone', '--auth-password', DOOR]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await waitDelivered(subject);
  });

  it('Python smtplib login() picks CRAM-MD5 and delivers', async () => {
    const subject = 'python smtplib';
    const r = await pythonSmtplib(
      [
        'import smtplib, ssl',
        'ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE',
        `s = smtplib.SMTP('127.0.0.1', ${port.doorphone}, timeout=20)`,
        's.set_debuglevel(1)',
        's.starttls(context=ctx)',
        `print('LOGIN', s.login('doorphone', ${JSON.stringify(DOOR)}))`,
        `s.sendmail('doorphone@example.org', ['owner@provider.test'], 'Subject: ${subject}\\r\\n\\r\\nhello\\r\\n')`,
        's.quit()',
      ].join('\n'),
      { timeoutMs: 30_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/AUTH CRAM-MD5/);
    expect(r.stdout).toMatch(/LOGIN \(235/);
    await waitDelivered(subject);
  });

  it('the doorphone path: openssl s_client -starttls smtp -tls1, AUTH CRAM-MD5 by hand, message delivered', async () => {
    const subject = 'doorphone tls1 cram by hand';
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port.doorphone}`, '-starttls', 'smtp', '-tls1',
      '-cipher', 'DEFAULT:@SECLEVEL=0', '-crlf', '-ign_eof'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (d: string) => (out += d));
    child.stderr.resume();
    let cursor = 0;
    const waitFor = async (re: RegExp): Promise<RegExpExecArray> => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const m = re.exec(out.slice(cursor));
        if (m) {
          cursor += m.index + m[0].length;
          return m;
        }
        if (Date.now() > deadline) throw new Error(`s_client: no ${String(re)} in ${out}`);
        await sleep(20);
      }
    };
    const say = (line: string) => child.stdin.write(line + '\n');
    try {
      await waitFor(/Protocol *: TLSv1\n/);
      say('EHLO doorphone');
      const ehlo = await waitFor(/250-AUTH ([^\r\n]*)\r?\n(?:250[- ][^\n]*\n)*?250 [^\n]*\n/);
      expect(ehlo[1]).toContain('CRAM-MD5');
      say('AUTH CRAM-MD5');
      const challenge = Buffer.from((await waitFor(/334 (\S+)\r?\n/))[1], 'base64');
      expect(challenge.toString()).toMatch(/^<\d+\.\d+@mailshim\.test>$/);
      say(cramMd5ClientResponse('doorphone', DOOR, challenge).toString('base64'));
      await waitFor(/235 2\.7\.0[^\n]*\n/);
      say('MAIL FROM:<doorphone@example.org>');
      await waitFor(/250 [^\n]*\n/);
      say('RCPT TO:<owner@provider.test>');
      await waitFor(/250 [^\n]*\n/);
      say('DATA');
      await waitFor(/354 [^\n]*\n/);
      say(`Subject: ${subject}\r\n\r\nSomeone rang.\r\n.`);
      await waitFor(/250 [^\n]*\n/);
      say('QUIT');
      await waitFor(/221 /);
    } finally {
      child.kill();
    }
    await waitDelivered(subject);
    const clientTls = events.filter((e): e is Extract<SessionEvent, { type: 'link.tls' }> => e.type === 'link.tls' && e.side === 'client');
    expect(clientTls.some((e) => e.tls.version === 'TLSv1')).toBe(true);
  });

  it('EXTERNAL with a verified client certificate (CN=doorphone -> user camera) delivers', async () => {
    const subject = 'external cert';
    const r = await pythonSmtplib(
      [
        'import smtplib, ssl',
        'ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE',
        `ctx.load_cert_chain(${JSON.stringify(certs.client.cert)}, ${JSON.stringify(certs.client.key)})`,
        `s = smtplib.SMTP('127.0.0.1', ${port.doorphone}, timeout=20)`,
        's.starttls(context=ctx); s.ehlo()',
        "print('AUTH', s.auth('EXTERNAL', lambda challenge=None: ''))",
        `s.sendmail('camera@example.org', ['owner@provider.test'], 'Subject: ${subject}\\r\\n\\r\\nhello\\r\\n')`,
        's.quit()',
      ].join('\n'),
      { timeoutMs: 30_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/AUTH \(235/);
    await waitDelivered(subject);
    expect(events.some((e) => e.type === 'auth' && e.side === 'client' && e.mechanism === 'EXTERNAL' && e.user === 'camera' && e.result === 'ok')).toBe(true);
  });

  it('a device that never sends AUTH delivers from a relayWithoutAuth address (defaultUpstreamAccount)', async () => {
    const r = await send('devices', 'no auth device', []);
    expect(r.code, r.stdout).toBe(0);
    await waitDelivered('no auth device');
  });

  it('upstream auth.mechanism: LOGIN makes mailshim log in with LOGIN', async () => {
    const r = await send('login-only', 'upstream login mech', ['--auth', 'PLAIN', '--auth-user', 'doorphone', '--auth-password', DOOR]);
    expect(r.code, r.stdout).toBe(0);
    await waitDelivered('upstream login mech');
    await provider.waitForLog(/sasl_method=LOGIN, sasl_username=notify/);
  });
});

// --- forward mode ----------------------------------------------------------------------------------

describe('forward mode: the client identity goes upstream as PLAIN', () => {
  it('swaks --auth LOGIN: Postfix sees PLAIN with the same user; message delivered', async () => {
    const r = await send('forward', 'forward login', ['--tls', '--auth', 'LOGIN', '--auth-user', 'someone@example.net', '--auth-password', SOMEONE]);
    expect(r.code, r.stdout).toBe(0);
    await waitDelivered('forward login');
    await provider.waitForLog(/sasl_method=PLAIN, sasl_username=someone@example.net/);
    expect(await provider.log()).not.toMatch(/sasl_method=LOGIN, sasl_username=someone/);
  });

  it('swaks --auth PLAIN with an initial response is forwarded too', async () => {
    const r = await send('forward', 'forward plain', ['--tls', '--auth', 'PLAIN', '--auth-user', 'notify', '--auth-password', NOTIFY]);
    expect(r.code, r.stdout).toBe(0);
    await waitDelivered('forward plain');
  });

  it('a wrong password: the client gets the provider\'s own 535 and nothing is delivered', async () => {
    const r = await send('forward', 'forward wrong', ['--tls', '--auth', 'LOGIN', '--auth-user', 'someone@example.net', '--auth-password', 'not-the-password']);
    expect(r.code).not.toBe(0);
    // Postfix's text, not mailshim's catalogue text ("Authentication credentials invalid").
    expect(r.stdout).toMatch(/^<~?\*+ +535 5\.7\.8 Error: authentication failed/m);
    await sleep(300);
    expect(await delivered('forward wrong')).toBe(false);
  });

  it('offers only LOGIN and PLAIN, and refuses CRAM-MD5 with 504', async () => {
    const d = await Dialogue.open(port.forward);
    await d.ehlo();
    await d.starttls();
    expect(await d.cmd('EHLO tester.example')).toMatch(/^250-AUTH PLAIN LOGIN\r$/m);
    expect(await d.cmd('AUTH CRAM-MD5')).toMatch(/^504 5\.5\.4/);
    d.end();
  });
});

// --- refusals --------------------------------------------------------------------------------------

describe('refusals', () => {
  it('wrong password: 535 5.7.8 and nothing delivered', async () => {
    for (const mech of ['CRAM-MD5', 'PLAIN']) {
      const subject = `wrong ${mech}`;
      const r = await send('doorphone', subject, ['--tls', '--auth', mech, '--auth-user', 'doorphone', '--auth-password', 'not-the-password']);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toMatch(/^<~?\*+ +535 5\.7\.8 Authentication credentials invalid/m);
      await sleep(300);
      expect(await delivered(subject)).toBe(false);
    }
  });

  it('unauthenticated relay attempt: 530 5.7.0 and nothing delivered', async () => {
    const r = await send('lan', 'open relay attempt', []);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/^<~?\*+ +530 5\.7\.0 Authentication required/m);
    await sleep(300);
    expect(await delivered('open relay attempt')).toBe(false);
  });

  it('AUTH before STARTTLS on a listener that offers TLS: 538, and AUTH is not advertised', async () => {
    const d = await Dialogue.open(port.doorphone);
    const ehlo = await d.ehlo();
    expect(ehlo).toMatch(/STARTTLS/);
    expect(ehlo).not.toMatch(/AUTH/);
    expect(await d.cmd(`AUTH PLAIN ${b64(`\0doorphone\0${DOOR}`)}`)).toMatch(/^538 5\.7\.11/);
    d.end();
  });

  it('cancel with *, garbage base64, unknown mechanism, second AUTH', async () => {
    const d = await Dialogue.open(port.lan);
    await d.ehlo();
    expect(await d.cmd('AUTH LOGIN')).toBe('334 VXNlcm5hbWU6\r\n');
    expect(await d.cmd('*')).toMatch(/^501 5\.7\.0 Authentication cancelled/);
    expect(await d.cmd('AUTH LOGIN')).toMatch(/^334 /);
    expect(await d.cmd('not base64!!')).toMatch(/^501 5\.5\.2/);
    expect(await d.cmd('AUTH CRAM-MD5')).toMatch(/^504 5\.5\.4/);
    expect(await d.cmd('AUTH PLAIN AGVvb3I=x')).toMatch(/^501 5\.5\.2/);
    expect(await d.cmd('AUTH NTLM')).toMatch(/^504 5\.5\.4/);
    expect(await d.cmd('AUTH PLAIN')).toBe('334 \r\n');
    expect(await d.cmd(b64(`\0doorphone\0${DOOR}`))).toMatch(/^235 2\.7\.0/);
    expect(await d.cmd(`AUTH PLAIN ${b64(`\0doorphone\0${DOOR}`)}`)).toMatch(/^503 5\.5\.1/);
    // MAIL FROM's AUTH= claim is replaced by the authenticated identity in xtext.
    expect(await d.cmd('MAIL FROM:<doorphone@example.org> AUTH=someone+2Belse@example.org')).toMatch(/^250 /);
    expect(await d.cmd('QUIT')).toMatch(/^221 /);
    const sent = events.filter((e) => e.type === 'protocol' && e.leg === 'proxy->upstream' && /^MAIL FROM/.test(e.line));
    expect(sent.at(-1)).toMatchObject({ line: 'MAIL FROM:<doorphone@example.org> AUTH=doorphone' });
  });

  it('LOGIN with the username inline (AUTH LOGIN <b64-user>) gets the Password: prompt', async () => {
    const d = await Dialogue.open(port.lan);
    await d.ehlo();
    expect(await d.cmd(`AUTH LOGIN ${b64('doorphone')}`)).toBe('334 UGFzc3dvcmQ6\r\n');
    expect(await d.cmd(b64(DOOR))).toMatch(/^235 /);
    d.end();
  });

  it('brute force: after maxFailures failures the next AUTH gets 421 4.7.0 and the connection closes', async () => {
    const d = await Dialogue.open(port.lockout);
    await d.ehlo();
    for (let i = 0; i < 3; i++) expect(await d.cmd(`AUTH PLAIN ${b64(`\0doorphone\0guess${i}`)}`)).toMatch(/^535 5\.7\.8/);
    expect(await d.cmd(`AUTH PLAIN ${b64(`\0doorphone\0${DOOR}`)}`)).toMatch(/^421 4\.7\.0/);
    expect(await d.closedByServer()).toBe(true);
    // A new connection from the same address is still locked out, even with the right password.
    const again = await Dialogue.open(port.lockout);
    await again.ehlo();
    expect(await again.cmd(`AUTH PLAIN ${b64(`\0doorphone\0${DOOR}`)}`)).toMatch(/^421 4\.7\.0/);
    expect(await again.closedByServer()).toBe(true);
  });

  it('the provider refuses the mapped account: 454 4.7.0 for MAIL, a loud error log, nothing delivered', async () => {
    const r = await send('doorphone', 'stale account', ['--tls', '--auth', 'PLAIN', '--auth-user', 'stale', '--auth-password', STALE]);
    expect(r.stdout).toMatch(/^<~ +235 /m);
    expect(r.stdout).toMatch(/^<~?\*+ +454 4\.7\.0 Temporary authentication failure/m);
    expect(r.code).not.toBe(0);
    const loud = logLines.map((l) => JSON.parse(l)).find((l) => /UPSTREAM LOGIN FAILED/.test(l.msg));
    expect(loud).toMatchObject({ level: 50, user: 'notify', code: 535 });
    expect(loud.reason).toMatch(/account "broken"/);
    await sleep(300);
    expect(await delivered('stale account')).toBe(false);
  });

  it('an upstream whose certificate is not verified never gets the credentials: 454', async () => {
    const before = (await provider.log()).match(/sasl_username/g)?.length ?? 0;
    const r = await send('unverified', 'unverified upstream', ['--auth', 'PLAIN', '--auth-user', 'doorphone', '--auth-password', DOOR]);
    expect(r.stdout).toMatch(/^<~?\*+ +454 4\.7\.0/m);
    const reasons = events.filter((e) => e.type === 'auth' && e.side === 'upstream' && e.result === 'error').map((e) => (e as { reason?: string }).reason);
    expect(reasons.some((x) => /no verified TLS certificate/.test(x ?? ''))).toBe(true);
    expect((await provider.log()).match(/sasl_username/g)?.length ?? 0).toBe(before);
  });

  it('a client outside clients.allow gets 554 5.7.1 at connect', async () => {
    const d = await Dialogue.open(port.office);
    expect(await d.reply()).toMatch(/^554 5\.7\.1/);
    expect(await d.closedByServer()).toBe(true);
  });
});

describe('redaction', () => {
  it('no password, PLAIN blob or provider password in any event or log line', () => {
    const blobs = [b64(`\0doorphone\0${DOOR}`), b64(`\0notify\0${NOTIFY}`), b64(DOOR), b64(NOTIFY), b64(SOMEONE), b64(`\0someone@example.net\0${SOMEONE}`)];
    const text = JSON.stringify(events.filter((e) => e.type !== 'tx.data')) + logLines.join('\n');
    expect(events.some((e) => e.type === 'protocol' && e.line === 'AUTH PLAIN ********')).toBe(true);
    for (const s of [...SECRETS, ...blobs]) expect(text).not.toContain(s);
  });
});
