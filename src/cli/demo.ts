// `mailshim demo`: the main job end to end on loopback with no setup. It starts a built-in provider,
// starts mailshim in-process with the bundled config/demo.yaml, sends a notification as the doorphone of
// FIELD-NOTES section 1 would, and prints both legs of the session as a C:/S: transcript.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import selfsigned from 'selfsigned';
import { App } from '../app.js';
import { parseConfig, ConfigError } from '../config/load.js';
import { DemoProvider, type ReceivedMessage } from '../demo/provider.js';
import { runDevice, type DeviceResult } from '../demo/device.js';
import { TranscriptPrinter, styleFor, colours, plain, type Style } from '../demo/transcript-printer.js';
import type { SessionEvent } from '../observe/events.js';

const HELP = `usage: mailshim demo [--story doorphone|phone|all] [--color|--no-color]

Runs mailshim end to end on 127.0.0.1 with nothing to set up: a built-in provider, mailshim with the
bundled config/demo.yaml, and a legacy client. Prints both legs of the session as a C:/S: transcript
(passwords masked) and exits 0 when the message arrived, non-zero with the reason when it did not.

Stories (FIELD-NOTES):
  doorphone  (default) a doorphone that can only do STARTTLS with TLS 1.0 and AUTH CRAM-MD5 sends a
             notification through mailshim to a provider that demands TLS 1.2+ and AUTH PLAIN/LOGIN
  phone      a phone that picks CRAM-MD5 against a qmail that advertises it but cannot do it; one
             EHLO rule (remove-auth: CRAM-MD5) makes it log in with LOGIN
  all        both, one after the other

Passwords are random per run; DOORPHONE_PASSWORD and PROVIDER_PASSWORD in the environment replace them.
Colour is used in a terminal unless NO_COLOR is set.
`;

const PROVIDER_USER = 'notify@provider.example';
const DOORPHONE_USER = 'doorphone';
/** TLS 1.0 only, with the legacy ciphers a 2012 embedded stack offers. */
const TLS10_ONLY = { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' } as const;

type Story = 'doorphone' | 'phone';

interface Options {
  stories: Story[];
  style: Style;
}

function parseArgs(argv: string[]): Options | { help: true } | { error: string } {
  let story = 'doorphone';
  let style = styleFor(process.stdout);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return { help: true };
    else if (a === '--color' || a === '--colour') style = colours;
    else if (a === '--no-color' || a === '--no-colour') style = plain;
    else if (a === '--story' && argv[i + 1]) story = argv[++i]!;
    else if (a.startsWith('--story=')) story = a.slice('--story='.length);
    else return { error: `unknown option "${a}"` };
  }
  if (story !== 'doorphone' && story !== 'phone' && story !== 'all') return { error: `unknown story "${story}" (doorphone, phone or all)` };
  return { stories: story === 'all' ? ['doorphone', 'phone'] : [story], style };
}

export async function run(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  if ('help' in opts) {
    process.stdout.write(HELP);
    return 0;
  }
  if ('error' in opts) {
    process.stderr.write(`mailshim demo: ${opts.error}\n\n${HELP}`);
    return 2;
  }
  const out = (text: string) => process.stdout.write(text);
  const demo = new Demo(opts.style, out);
  try {
    await demo.setUp();
    let failed = 0;
    for (const story of opts.stories) {
      const ok = story === 'doorphone' ? await demo.doorphone() : await demo.phone();
      if (!ok) failed++;
    }
    return failed === 0 ? 0 : 1;
  } catch (err) {
    const msg = err instanceof ConfigError ? `config/demo.yaml is not valid:\n${err.message}` : err instanceof Error ? err.message : String(err);
    out(`\n${opts.style.bad('demo failed:')} ${msg}\n`);
    return 1;
  } finally {
    await demo.tearDown();
  }
}

/** The demo's world: two providers, one mailshim, generated certificates and passwords. */
class Demo {
  private dir = '';
  private provider = new DemoProvider({ mode: 'hardened', account: { user: PROVIDER_USER, password: '' } });
  private qmail = new DemoProvider({ mode: 'qmail', account: { user: 'phone@qmail.example', password: '' }, cramFailDelayMs: 300 });
  private app: App | undefined;
  /** The printer of the story being told; sessions of other listeners are not printed. */
  private printer: TranscriptPrinter | undefined;
  private events: SessionEvent[] = [];
  private warnings: string[] = [];
  private readonly secrets = {
    doorphone: process.env.DOORPHONE_PASSWORD || randomBytes(9).toString('base64url'),
    provider: process.env.PROVIDER_PASSWORD || randomBytes(9).toString('base64url'),
    phone: randomBytes(9).toString('base64url'),
  };

  constructor(
    private readonly s: Style,
    private readonly out: (text: string) => void,
  ) {
    this.provider.opts.account.password = this.secrets.provider;
    this.qmail.opts.account.password = this.secrets.phone;
  }

  async setUp(): Promise<void> {
    this.dir = await mkdtemp(path.join(tmpdir(), 'mailshim-demo-'));
    const [providerPort, qmailPort] = await Promise.all([this.provider.start(), this.qmail.start()]);
    const mailshimCert = await selfsigned.generate([{ name: 'commonName', value: 'mailshim.demo' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'mailshim.demo' }, { type: 7, ip: '127.0.0.1' }] }],
    });
    const file = (name: string) => path.join(this.dir, name);
    await Promise.all([
      writeFile(file('provider.pem'), this.provider.certPem),
      writeFile(file('mailshim.pem'), mailshimCert.cert),
      writeFile(file('mailshim.key'), mailshimCert.private, { mode: 0o600 }),
    ]);
    this.mailshimCa = mailshimCert.cert;

    const configFile = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));
    const text = await readFile(configFile, 'utf8');
    const env = {
      PROVIDER_PORT: String(providerPort),
      PROVIDER_CA: file('provider.pem'),
      PROVIDER_PASSWORD: this.secrets.provider,
      DOORPHONE_PASSWORD: this.secrets.doorphone,
      MAILSHIM_CERT: file('mailshim.pem'),
      MAILSHIM_KEY: file('mailshim.key'),
      QMAIL_PORT: String(qmailPort),
    };
    const cfg = parseConfig(text, path.relative(process.cwd(), configFile) || configFile, env);
    const logger = pino(
      { level: 'warn', base: null },
      { write: (line: string) => this.warnings.push(logMessage(line)) },
    );
    const observers = [
      (ev: SessionEvent) => {
        this.events.push(ev);
        this.printer?.observer(ev);
      },
    ];
    this.app = await App.start(cfg, { logger, observers });
  }

  private mailshimCa = '';

  async tearDown(): Promise<void> {
    await this.app?.stop(1_000).catch(() => {});
    await Promise.all([this.provider.stop(), this.qmail.stop()]);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private address(listener: string): { host: string; port: number } {
    const l = this.app!.listeners.find((x) => x.compiled.name === listener);
    if (!l) throw new Error(`config/demo.yaml has no listener "${listener}"`);
    const a = l.address();
    return { host: '127.0.0.1', port: a.port };
  }

  private heading(text: string): void {
    this.out(`\n${this.s.bold(text)}\n`);
  }

  private item(text: string): void {
    this.out(`  ${text}\n`);
  }

  // --- FIELD-NOTES section 1 ------------------------------------------------------------------------

  async doorphone(): Promise<boolean> {
    const s = this.s;
    this.heading('mailshim demo: the doorphone and the provider that moved on (FIELD-NOTES section 1)');
    this.item('device    a doorphone: STARTTLS with TLS 1.0 only, AUTH CRAM-MD5 only');
    this.item('provider  built in, 127.0.0.1: STARTTLS with TLS 1.2+ only, AUTH PLAIN/LOGIN, certificate verified by mailshim');
    this.item('mailshim  in-process with config/demo.yaml, listener "doorphone"');
    this.out(`  ${s.note('mailshim:')} TLS 1.0 + CRAM-MD5 in, TLS 1.2+ + AUTH PLAIN out (auth.mode local).\n`);
    for (const w of this.warnings) this.item(s.dim(`mailshim warns at start: ${w}`));

    // Without mailshim: the device's TLS 1.0 ClientHello meets a TLS 1.2+ server.
    this.heading('1. Without mailshim: the device talks to the provider directly');
    const direct = await runDevice({ ...this.doorphoneDevice(), port: this.providerPort(), mechanisms: ['CRAM-MD5'], user: DOORPHONE_USER, password: this.secrets.doorphone });
    if (direct.ok) this.item(s.bad('unexpected: the provider accepted the device directly'));
    else {
      this.item(`device stopped at ${direct.stage}: ${direct.reason}`);
      const refusal = this.provider.notes.find((n) => /TLS handshake refused/.test(n.text));
      if (refusal) this.item(`provider: ${refusal.text}`);
      this.item(s.dim('(on the real doorphone this is error U149)'));
    }

    this.heading('2. Through mailshim');
    const before = this.provider.messages.length;
    const eventsFrom = this.events.length;
    this.printer = new TranscriptPrinter({ write: this.out, style: s });
    const { host, port } = this.address('doorphone');
    const device = await runDevice({
      ...this.doorphoneDevice(),
      host,
      port,
      mechanisms: ['CRAM-MD5'],
      user: DOORPHONE_USER,
      password: this.secrets.doorphone,
    });
    await this.sessionsEnded(eventsFrom);
    this.printer = undefined;
    const arrived = this.provider.messages.slice(before);
    this.printArrived(arrived);

    const sessionEvents = this.events.slice(eventsFrom);
    const clientTls = lastTls(sessionEvents, 'client');
    const upstreamTls = lastTls(sessionEvents, 'upstream');
    const problems: string[] = [];
    if (!device.ok) problems.push(`the device stopped at ${device.stage}: ${device.reason}`);
    if (clientTls !== 'TLSv1') problems.push(`the device side used ${clientTls ?? 'no TLS'}, not TLSv1`);
    if (upstreamTls !== 'TLSv1.2' && upstreamTls !== 'TLSv1.3') problems.push(`the provider side used ${upstreamTls ?? 'no TLS'}, not TLS 1.2+`);
    if (arrived.length !== 1) problems.push(`the provider received ${arrived.length} messages, expected 1`);
    const got = arrived[0];
    if (got && got.authUser !== PROVIDER_USER) problems.push(`the provider saw the login as ${got.authUser}, expected ${PROVIDER_USER}`);

    this.heading('Summary');
    const deviceSide = `device: ${device.tls?.version ?? clientTls ?? 'no TLS'} + ${device.mechanism ?? 'no AUTH'}`;
    const providerSide = got
      ? `provider: ${got.tls?.version ?? 'no TLS'} + AUTH ${got.authMechanism} as ${got.authUser}`
      : `provider: ${upstreamTls ?? 'no TLS'}`;
    const verdict = problems.length === 0 ? s.good('delivered') : s.bad('NOT delivered');
    this.item(`${deviceSide} -> mailshim -> ${providerSide}: ${verdict}`);
    for (const p of problems) this.item(s.bad(`problem: ${p}`));
    return problems.length === 0;
  }

  private doorphoneDevice() {
    return {
      host: '127.0.0.1',
      heloName: 'vl-swh705',
      starttls: { ...TLS10_ONLY, ca: this.mailshimCa },
      from: 'doorphone@home.example',
      to: 'owner@home.example',
      message: [
        'From: Doorphone <doorphone@home.example>',
        'To: owner@home.example',
        'Subject: Visitor at the front door',
        `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
        '',
        'Someone rang the front door bell.',
        '.A line that starts with a dot, to show dot-stuffing.',
      ].join('\r\n'),
    };
  }

  private providerPort(): number {
    return this.app!.compiled.listeners.find((l) => l.name === 'doorphone')!.upstream.port;
  }

  // --- FIELD-NOTES section 2 ------------------------------------------------------------------------

  async phone(): Promise<boolean> {
    const s = this.s;
    this.heading('mailshim demo: the MTA that advertises what it cannot do (FIELD-NOTES section 2)');
    this.item('phone     picks CRAM-MD5 when offered, else LOGIN, else PLAIN; no TLS');
    this.item('qmail     built in: advertises AUTH LOGIN CRAM-MD5 PLAIN, fails every CRAM-MD5 attempt');
    this.item('mailshim  listener "phone" with one EHLO rule: remove-auth: CRAM-MD5 (auth.mode passthrough)');
    const phone = {
      host: '127.0.0.1',
      heloName: 'nokia-e51',
      user: 'phone@qmail.example',
      password: this.secrets.phone,
      mechanisms: ['CRAM-MD5', 'LOGIN', 'PLAIN'] as const,
      from: 'phone@qmail.example',
      to: 'friend@qmail.example',
      message: 'Subject: hello from the phone\r\n\r\nSent through mailshim.',
    };
    const qmailPort = this.app!.compiled.listeners.find((l) => l.name === 'phone')!.upstream.port;

    this.heading('1. Without mailshim');
    const direct = await runDevice({ ...phone, mechanisms: [...phone.mechanisms], port: qmailPort });
    this.item(direct.ok ? s.bad('unexpected: CRAM-MD5 worked') : `phone chose AUTH ${direct.mechanism ?? '?'} and stopped at ${direct.stage}: ${direct.reason}`);

    this.heading('2. Through mailshim');
    const before = this.qmail.messages.length;
    const eventsFrom = this.events.length;
    this.printer = new TranscriptPrinter({ write: this.out, style: s, clientName: 'phone', upstreamName: 'qmail' });
    const { host, port } = this.address('phone');
    const device = await runDevice({ ...phone, mechanisms: [...phone.mechanisms], host, port });
    await this.sessionsEnded(eventsFrom);
    this.printer = undefined;
    const arrived = this.qmail.messages.slice(before);
    const problems: string[] = [];
    if (!device.ok) problems.push(`the phone stopped at ${device.stage}: ${device.reason}`);
    if (device.mechanism !== 'LOGIN') problems.push(`the phone used ${device.mechanism ?? 'no AUTH'}, expected LOGIN`);
    if (arrived.length !== 1) problems.push(`qmail received ${arrived.length} messages, expected 1`);
    this.heading('Summary');
    this.item(`phone: AUTH ${device.mechanism ?? '-'} (CRAM-MD5 hidden by mailshim) -> qmail: ${problems.length === 0 ? s.good('delivered') : s.bad('NOT delivered')}`);
    for (const p of problems) this.item(s.bad(`problem: ${p}`));
    return problems.length === 0;
  }

  // --- helpers -----------------------------------------------------------------------------------------

  /** Wait (bounded) until every session started since `from` has ended, so the transcript is complete. */
  private async sessionsEnded(from: number): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const evs = this.events.slice(from);
      const started = evs.filter((e) => e.type === 'session.start').length;
      const ended = evs.filter((e) => e.type === 'session.end').length;
      if (started > 0 && ended >= started) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private printArrived(messages: ReceivedMessage[]): void {
    for (const m of messages) {
      this.heading('What the provider received');
      this.item(`over ${m.tls?.version ?? 'plaintext'} ${m.tls?.cipher ?? ''}, logged in with AUTH ${m.authMechanism} as ${m.authUser}`);
      this.item(`MAIL FROM:<${m.from}>  RCPT TO:<${m.to.join('>, <')}>  (${m.data.length} bytes)`);
      for (const l of m.data.toString('utf8').replace(/\r\n$/, '').split('\r\n')) this.item(this.s.dim('| ') + l);
    }
  }
}

function lastTls(events: SessionEvent[], side: 'client' | 'upstream'): string | undefined {
  let v: string | undefined;
  for (const e of events) if (e.type === 'link.tls' && e.side === side) v = e.tls.version ?? undefined;
  return v;
}

function logMessage(line: string): string {
  try {
    const o = JSON.parse(line) as { msg?: string };
    return o.msg ?? line.trim();
  } catch {
    return line.trim();
  }
}
