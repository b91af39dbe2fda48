// Shared by the tls-*.test.ts files: start mailshim with its real logger captured (warnings at start and
// per-session log lines are part of what these tests assert), and a tiny line-oriented TLS-capable client.
import net from 'node:net';
import tls from 'node:tls';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.js';
import { App } from '../../src/app.js';
import type { SessionEvent, SessionSummary } from '../../src/observe/events.js';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface Mailshim {
  app: App;
  /** Port of the listener with this name. */
  port(name: string): number;
  events: SessionEvent[];
  logs: LogLine[];
  ended(): SessionSummary[];
  waitFor<T>(pick: () => T | undefined, what: string, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

export async function startMailshim(config: { listeners: Record<string, unknown>[] } & Record<string, unknown>): Promise<Mailshim> {
  const raw = structuredClone(config);
  for (const l of raw.listeners) l.listen ??= '127.0.0.1:0';
  const cfg = configSchema.parse(raw);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const events: SessionEvent[] = [];
  const app = await App.start(cfg, { logger: pino({ level: 'info' }, sink), observers: [(ev) => events.push(ev)] });
  const ended = () => events.flatMap((e) => (e.type === 'session.end' ? [e.summary] : []));
  return {
    app,
    port: (name) => {
      const l = app.listeners.find((x) => x.compiled.name === name);
      if (!l) throw new Error(`no listener ${name}`);
      return l.address().port;
    },
    events,
    logs,
    ended,
    async waitFor(pick, what, timeoutMs = 8000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = pick();
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: () => app.stop(500),
  };
}

/** A line client on a plain or TLS socket: read whole replies, send lines or raw bytes. */
export class LineClient {
  received = '';
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;

  constructor(public socket: net.Socket) {
    this.listen(socket);
  }

  private listen(s: net.Socket): void {
    s.on('data', (c: Buffer) => {
      const t = c.toString('latin1');
      this.received += t;
      this.buf += t;
      for (const w of this.waiters.splice(0)) w();
    });
    s.on('error', () => {});
    s.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static connect(port: number): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new LineClient(s)));
      s.once('error', reject);
    });
  }

  static connectTls(port: number, opts: tls.ConnectionOptions = {}): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => resolve(new LineClient(s)));
      s.once('error', reject);
    });
  }

  write(bytes: string): void {
    this.socket.write(bytes, 'latin1');
  }

  /** The next complete reply (multi-line joined with CRLF), or null when the connection closed first. */
  async reply(timeoutMs = 8000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0];
      }
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms; received so far: ${JSON.stringify(this.received)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  /** Hand the socket to TLS (after a 220 to STARTTLS). */
  async startTls(opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect({ socket: raw, rejectUnauthorized: false, ...opts }, () => resolve(t));
      t.once('error', reject);
    });
    this.socket = s;
    this.buf = '';
    this.listen(s);
    return s;
  }
}
