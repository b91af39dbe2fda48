// The demo's built-in upstream: a small SMTP server that behaves like the providers in FIELD-NOTES.
// - 'hardened' (section 1): STARTTLS with TLS 1.2+ only, the plala EHLO reply after TLS, AUTH PLAIN/LOGIN
//   checked against one account, mail only after AUTH. A TLS 1.0 client gets alert protocol_version.
// - 'qmail' (section 2): plaintext, advertises `AUTH LOGIN CRAM-MD5 PLAIN` but fails every CRAM-MD5 attempt.
// It keeps what it received so the demo can show it. Not a mail server: one account, no queue, loopback only.
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import selfsigned from 'selfsigned';

export interface ProviderAccount {
  user: string;
  password: string;
}

export interface ProviderOptions {
  mode: 'hardened' | 'qmail';
  account: ProviderAccount;
  /** The name in the greeting and the EHLO reply. */
  hostname?: string;
  /** qmail mode: how long the failing CRAM-MD5 takes (the real one took about 5 s). */
  cramFailDelayMs?: number;
}

export interface ReceivedMessage {
  from: string;
  to: string[];
  /** The message as the provider stored it (dot-unstuffed, CRLF line ends). */
  data: Buffer;
  authUser: string;
  authMechanism: string;
  tls: { version: string | null; cipher: string | null } | undefined;
}

/** One line per notable thing the provider saw (TLS refused, AUTH failed ...), for the demo's output. */
export interface ProviderNote {
  at: number;
  text: string;
}

const MAX_LINE = 4096;
const MAX_DATA_LINE = 1024 * 1024;
const MAX_MESSAGE = 20_971_520; // the SIZE the plala reply advertises
const SESSION_IDLE_MS = 30_000;

export class DemoProvider {
  readonly messages: ReceivedMessage[] = [];
  readonly notes: ProviderNote[] = [];
  readonly hostname: string;
  /** PEM of the self-signed certificate generated at start (hardened mode): mailshim's upstream `ca:`. */
  certPem = '';
  private keyPem = '';
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(readonly opts: ProviderOptions) {
    this.hostname = opts.hostname ?? (opts.mode === 'qmail' ? 'servidor.example' : 'smtp.provider.example');
  }

  /** Generate the certificate (hardened mode) and listen on 127.0.0.1 on a free port. */
  async start(): Promise<number> {
    if (this.opts.mode === 'hardened') {
      const pems = await selfsigned.generate([{ name: 'commonName', value: this.hostname }], {
        keySize: 2048,
        algorithm: 'sha256',
        extensions: [
          { name: 'basicConstraints', cA: false },
          { name: 'subjectAltName', altNames: [{ type: 2, value: this.hostname }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
        ],
      });
      this.certPem = pems.cert;
      this.keyPem = pems.private;
    }
    const server = net.createServer((sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return (server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private note(text: string): void {
    this.notes.push({ at: Date.now(), text });
  }

  private accept(raw: net.Socket): void {
    this.sockets.add(raw);
    raw.on('close', () => this.sockets.delete(raw));
    new ProviderSession(this, raw, (t) => this.note(t), {
      certPem: this.certPem,
      keyPem: this.keyPem,
    }).start();
  }
}

/** One SMTP conversation with the provider. Lines are handled strictly one after another (PIPELINING-safe). */
class ProviderSession {
  private sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private busy = false;
  private closed = false;
  private tls: ReceivedMessage['tls'];
  private greeted = false;
  private authUser: string | undefined;
  private authMechanism = '';
  private from: string | undefined;
  private to: string[] = [];
  /** Set while a multi-step exchange (AUTH, DATA) owns the next lines. */
  private lineWaiter: ((line: string) => void) | undefined;
  private dataChunks: Buffer[] = [];
  private dataSize = 0;

  constructor(
    private readonly p: DemoProvider,
    sock: net.Socket,
    private readonly note: (text: string) => void,
    private readonly pki: { certPem: string; keyPem: string },
  ) {
    this.sock = sock;
  }

  private get hardened(): boolean {
    return this.p.opts.mode === 'hardened';
  }

  start(): void {
    this.attach(this.sock);
    this.send(`220 ${this.p.hostname} ESMTP ready`);
  }

  private attach(sock: net.Socket): void {
    this.sock = sock;
    sock.setTimeout(SESSION_IDLE_MS, () => sock.destroy());
    sock.on('data', this.onData);
    sock.on('error', () => {});
    sock.on('close', () => (this.closed = true));
  }

  private send(line: string): void {
    if (!this.closed && !this.sock.destroyed) this.sock.write(line + '\r\n');
  }

  private onData = (chunk: Buffer): void => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.drain();
  };

  /** Hand out complete lines one at a time; a command that waits (TLS, delayed 535) holds the rest. */
  private drain(): void {
    while (!this.busy && !this.closed) {
      const nl = this.buf.indexOf('\r\n');
      if (nl < 0) {
        // Bounded memory: a command line is short; a body line may be long but not endless.
        if (this.buf.length > (this.dataMode ? MAX_DATA_LINE : MAX_LINE)) {
          this.send(this.dataMode ? '552 5.3.4 Line too long' : '500 5.5.2 Line too long');
          this.sock.destroy();
        }
        return;
      }
      const line = this.buf.subarray(0, nl).toString('latin1');
      this.buf = this.buf.subarray(nl + 2);
      if (this.lineWaiter) {
        const w = this.lineWaiter;
        this.lineWaiter = undefined;
        w(line);
      } else this.command(line);
    }
  }

  private dataMode = false;

  private command(line: string): void {
    const sp = line.indexOf(' ');
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const args = sp < 0 ? '' : line.slice(sp + 1).trim();
    switch (verb) {
      case 'EHLO':
        return this.ehlo(args);
      case 'HELO':
        this.greeted = true;
        return this.send(`250 ${this.p.hostname}`);
      case 'STARTTLS':
        return this.starttls();
      case 'AUTH':
        return this.auth(args);
      case 'MAIL':
        return this.mail(args);
      case 'RCPT':
        return this.rcpt(args);
      case 'DATA':
        return this.data();
      case 'RSET':
        this.from = undefined;
        this.to = [];
        return this.send('250 2.0.0 Ok');
      case 'NOOP':
        return this.send('250 2.0.0 Ok');
      case 'QUIT':
        this.send('221 2.0.0 Bye');
        this.sock.end();
        return;
      default:
        return this.send('502 5.5.2 Command not recognized');
    }
  }

  private ehlo(name: string): void {
    if (!name) return this.send('501 5.5.4 Syntax: EHLO hostname');
    this.greeted = true;
    this.from = undefined;
    this.to = [];
    let caps: string[];
    if (!this.hardened) {
      // FIELD-NOTES section 2: qmail-smtpd offering a mechanism it has no checkpassword for.
      caps = ['AUTH LOGIN CRAM-MD5 PLAIN', 'PIPELINING', '8BITMIME'];
    } else if (this.tls) {
      // FIELD-NOTES section 1, exactly: the provider's reply after the change.
      caps = ['AUTH=LOGIN PLAIN', 'AUTH LOGIN PLAIN', 'PIPELINING', 'DSN', '8BITMIME', `SIZE ${MAX_MESSAGE}`];
    } else {
      // Before TLS the hardened provider offers no AUTH at all: credentials only inside TLS.
      caps = ['STARTTLS', 'PIPELINING', '8BITMIME', `SIZE ${MAX_MESSAGE}`];
    }
    const lines = [this.p.hostname, ...caps];
    lines.forEach((l, i) => this.send(`250${i === lines.length - 1 ? ' ' : '-'}${l}`));
  }

  private starttls(): void {
    if (!this.hardened) return this.send('502 5.5.1 STARTTLS not available');
    if (this.tls) return this.send('503 5.5.1 TLS already active');
    this.send('220 2.0.0 Ready to start TLS');
    this.busy = true;
    const raw = this.sock;
    raw.removeAllListeners('data');
    raw.removeAllListeners('timeout');
    // RFC 3207: anything pipelined after STARTTLS is dropped, never run inside TLS.
    this.buf = Buffer.alloc(0);
    const s = new tls.TLSSocket(raw, {
      isServer: true,
      cert: this.pki.certPem,
      key: this.pki.keyPem,
      minVersion: 'TLSv1.2', // the hardening: TLS 1.0 and 1.1 get alert 70 (protocol_version)
    });
    s.once('secure', () => {
      const c = s.getCipher();
      this.tls = { version: s.getProtocol(), cipher: c?.name ?? null };
      this.note(`TLS ${this.tls.version} ${this.tls.cipher} accepted`);
      this.greeted = false;
      this.authUser = undefined;
      this.from = undefined;
      this.to = [];
      this.busy = false;
      this.attach(s);
      this.drain();
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      this.note(`TLS handshake refused: ${shortTlsError(err)}`);
      this.closed = true;
      s.destroy();
    });
  }

  private auth(args: string): void {
    if (!this.greeted) return this.send('503 5.5.1 EHLO first');
    if (this.authUser) return this.send('503 5.5.1 Already authenticated');
    if (this.hardened && !this.tls) return this.send('530 5.7.0 Must issue a STARTTLS command first');
    const [mechRaw, initial] = args.split(/ +/);
    const mech = (mechRaw ?? '').toUpperCase();
    const done = (user: string, password: string) => {
      if (user === this.p.opts.account.user && password === this.p.opts.account.password) {
        this.authUser = user;
        this.authMechanism = mech;
        this.note(`AUTH ${mech} as ${user}: accepted`);
        this.send('235 2.7.0 Authentication successful');
      } else {
        this.note(`AUTH ${mech} as ${user || '(none)'}: wrong credentials`);
        this.send('535 5.7.8 Error: authentication failed');
      }
    };
    const readLine = (cb: (line: string) => void) => {
      this.lineWaiter = (line) => (line === '*' ? this.send('501 5.7.0 Authentication cancelled') : cb(line));
    };
    if (mech === 'PLAIN') {
      const finish = (b64: string) => {
        const parts = decodeB64(b64)?.split('\0');
        if (!parts || parts.length !== 3) return this.send('501 5.5.2 Cannot decode AUTH PLAIN response');
        done(parts[1]!, parts[2]!);
      };
      if (initial && initial !== '=') return finish(initial);
      this.send('334 ');
      return readLine(finish);
    }
    if (mech === 'LOGIN') {
      const askPassword = (user: string) => {
        this.send('334 UGFzc3dvcmQ6');
        readLine((p) => done(user, decodeB64(p) ?? ''));
      };
      if (initial) return askPassword(decodeB64(initial) ?? '');
      this.send('334 VXNlcm5hbWU6');
      return readLine((u) => askPassword(decodeB64(u) ?? ''));
    }
    if (mech === 'CRAM-MD5' && !this.hardened) {
      // Advertised, challenged, and always refused after a pause: the qmail of FIELD-NOTES section 2.
      const challenge = `<${randomBytes(4).readUInt32BE()}.${Date.now()}@${this.p.hostname}>`;
      this.send(`334 ${Buffer.from(challenge).toString('base64')}`);
      readLine(() => {
        this.busy = true;
        setTimeout(() => {
          this.note('AUTH CRAM-MD5: advertised but not installed, refused');
          this.send('535 authorization failed (#5.7.0)');
          this.busy = false;
          this.drain();
        }, this.p.opts.cramFailDelayMs ?? 0);
      });
      return;
    }
    this.send('504 5.5.4 Unrecognized authentication type');
  }

  private mail(args: string): void {
    if (!this.greeted) return this.send('503 5.5.1 EHLO first');
    if (!this.authUser) return this.send('530 5.7.0 Authentication required');
    if (this.from !== undefined) return this.send('503 5.5.1 Nested MAIL command');
    const m = /^FROM:\s*<([^>]*)>/i.exec(args);
    if (!m) return this.send('501 5.5.4 Syntax: MAIL FROM:<address>');
    this.from = m[1]!;
    this.to = [];
    this.send('250 2.1.0 Ok');
  }

  private rcpt(args: string): void {
    if (this.from === undefined) return this.send('503 5.5.1 Need MAIL command');
    const m = /^TO:\s*<([^>]+)>/i.exec(args);
    if (!m) return this.send('501 5.5.4 Syntax: RCPT TO:<address>');
    this.to.push(m[1]!);
    this.send('250 2.1.5 Ok');
  }

  private data(): void {
    if (this.from === undefined || this.to.length === 0) return this.send('503 5.5.1 Need RCPT command');
    this.send('354 End data with <CR><LF>.<CR><LF>');
    this.dataMode = true;
    this.dataChunks = [];
    this.dataSize = 0;
    const nextLine = (line: string): void => {
      if (line === '.') {
        this.dataMode = false;
        if (this.dataSize > MAX_MESSAGE) {
          this.send('552 5.3.4 Message size exceeds fixed limit');
        } else {
          const id = randomBytes(5).toString('hex').toUpperCase();
          this.p.messages.push({
            from: this.from!,
            to: [...this.to],
            data: Buffer.concat(this.dataChunks),
            authUser: this.authUser!,
            authMechanism: this.authMechanism,
            tls: this.tls,
          });
          this.send(`250 2.0.0 Ok: queued as ${id}`);
        }
        this.from = undefined;
        this.to = [];
        this.dataChunks = [];
        return;
      }
      const body = line.startsWith('.') ? line.slice(1) : line; // RFC 5321 4.5.2 dot-unstuffing
      this.dataSize += body.length + 2;
      if (this.dataSize <= MAX_MESSAGE) this.dataChunks.push(Buffer.from(body + '\r\n', 'latin1'));
      this.lineWaiter = nextLine;
    };
    this.lineWaiter = nextLine;
  }
}

/** Strict enough for a demo: only the base64 alphabet, then UTF-8. */
function decodeB64(s: string): string | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  return Buffer.from(s, 'base64').toString('utf8');
}

function shortTlsError(err: NodeJS.ErrnoException): string {
  if (/unsupported protocol|wrong version number/i.test(err.message)) return 'client offered only TLS below 1.2 (alert protocol_version)';
  return err.code ?? err.message;
}
