// A raw-socket SMTP client for dialogue-style tests (smtpscript habit): send lines or raw bytes, read whole
// (multi-line) replies in order, and notice when the server closes. For abuse a real client would not commit.
import net from 'node:net';

export interface Reply {
  code: number;
  /** Text of each line after "ddd-" / "ddd ". */
  lines: string[];
  /** The reply as received, CRLFs included. */
  raw: string;
}

export class Dialogue {
  /** Everything the server sent, as latin1 text. */
  received = '';
  private pending = '';
  private replies: Reply[] = [];
  private waiters: (() => void)[] = [];
  private isClosed = false;
  private closedPromise: Promise<void>;

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      this.received += text;
      this.pending += text;
      this.parse();
      this.wake();
    });
    socket.on('error', () => {
      // 'close' follows; tests look at what was received and at closed().
    });
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  private parse(): void {
    let lines: string[] = [];
    let start = 0;
    for (;;) {
      const idx = this.pending.indexOf('\r\n', start);
      if (idx === -1) break;
      const line = this.pending.slice(start, idx);
      start = idx + 2;
      lines.push(line);
      if (!/^\d{3}-/.test(line)) {
        const code = Number(line.slice(0, 3));
        const raw = lines.map((l) => l + '\r\n').join('');
        this.replies.push({ code, lines: lines.map((l) => l.slice(4)), raw });
        this.pending = this.pending.slice(start);
        start = 0;
        lines = [];
      }
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private waitForChange(timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received so far: ${JSON.stringify(this.received)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(done);
    });
  }

  /** Send one command line (CRLF appended). */
  send(line: string): void {
    this.socket.write(line + '\r\n', 'latin1');
  }

  sendRaw(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** The next whole reply; rejects when the connection closes first or after timeoutMs. */
  async reply(timeoutMs = 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.isClosed) throw new Error(`connection closed while waiting for a reply; received: ${JSON.stringify(this.received)}`);
      await this.waitForChange(Math.max(1, deadline - Date.now()), 'a reply');
    }
    return this.replies.shift()!;
  }

  /** The next reply, which must match `re` (tested against its raw text). */
  async expect(re: RegExp, timeoutMs = 5000): Promise<Reply> {
    const r = await this.reply(timeoutMs);
    if (!re.test(r.raw)) throw new Error(`expected a reply matching ${String(re)}, got ${JSON.stringify(r.raw)}`);
    return r;
  }

  /** Replies already received and not yet taken. */
  get queued(): number {
    return this.replies.length;
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Resolves when the server closed the connection; rejects after timeoutMs. */
  async closed(timeoutMs = 5000): Promise<void> {
    if (this.isClosed) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closedPromise,
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms; received: ${JSON.stringify(this.received)}`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Wait for the 220 greeting. */
  async greeted(): Promise<Reply> {
    return this.expect(/^220 /);
  }

  /** Greeting, then EHLO: returns the EHLO reply the client sees. */
  async ehloDone(name = 'client.example.org'): Promise<Reply> {
    await this.greeted();
    this.send(`EHLO ${name}`);
    return this.expect(/^250[ -]/);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function connect(port: number, host = '127.0.0.1'): Promise<Dialogue> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(new Dialogue(s));
    });
    s.once('error', reject);
  });
}
