// A small scripted SMTP server on 127.0.0.1:0, for the faults a real peer cannot be made to produce
// (drop mid-DATA, never answer, answer slowly, unsolicited 421) and for recording exactly what mailshim
// sent: every read, every command line, every message body, and how many commands were in flight.
import net from 'node:net';

export interface FakeUpstreamOptions {
  /** Greeting line (CRLF added); null: never greet. Default "220 fake.test ESMTP". */
  greeting?: string | null;
  /** Wait this long before greeting. */
  greetingDelayMs?: number;
  /** Text of the first EHLO reply line. Default "fake.test Hello <client name>". */
  ehloFirstLine?: string;
  /** EHLO capability lines after the first line, e.g. ['PIPELINING', 'AUTH LOGIN PLAIN']. */
  ehlo?: string[];
  /** Delay every reply by this long (a slow upstream; also exposes pipelining). */
  replyDelayMs?: number;
  /** Users for AUTH PLAIN / LOGIN; CRAM-MD5 always fails the way the qmail in FIELD-NOTES §2 did. */
  users?: Record<string, string>;
  /**
   * Custom reply for a command line: a string (CRLF added per line; may hold several lines separated by
   * "\r\n") is sent, null means never answer, undefined falls back to the default behaviour.
   */
  onCommand?: (line: string, conn: FakeConnection) => string | null | undefined;
  /** Reply to the end of DATA (default "250 2.0.0 Ok: queued as FAKE<n>"); null: never answer. */
  onMessage?: (body: Buffer, conn: FakeConnection) => string | null | undefined;
  /** Destroy the connection once this many body bytes arrived during DATA. */
  dropAfterBodyBytes?: number;
}

export interface FakeConnection {
  /** Each read as it arrived. */
  reads: Buffer[];
  /** Each command line (and AUTH exchange line) received outside DATA, without CRLF. */
  commands: string[];
  /** Message bodies as received after 354, still dot-stuffed, up to and including the final ".\r\n". */
  messages: Buffer[];
  /** Body bytes of the message in progress (or the last one). */
  bodyBytes: number;
  /** Most commands ever received and not yet answered at the same moment (1 = never pipelined). */
  maxInFlight: number;
  /** Whether the peer (mailshim) closed or the connection was destroyed. */
  closed: boolean;
  closedPromise: Promise<void>;
  write(text: string): void;
  end(): void;
  destroy(): void;
}

export interface FakeUpstream {
  port: number;
  connections: FakeConnection[];
  waitForConnections(n: number, timeoutMs?: number): Promise<FakeConnection[]>;
  /** All bytes every connection received, as latin1. */
  allReceived(): string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('latin1');

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const connections: FakeConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    let closedResolve!: () => void;
    const conn: FakeConnection = {
      reads: [],
      commands: [],
      messages: [],
      bodyBytes: 0,
      maxInFlight: 0,
      closed: false,
      closedPromise: new Promise((r) => (closedResolve = r)),
      write: (text) => {
        if (!sock.destroyed) sock.write(text, 'latin1');
      },
      end: () => sock.end(),
      destroy: () => sock.destroy(),
    };
    connections.push(conn);
    sock.on('error', () => {});
    sock.on('close', () => {
      conn.closed = true;
      sockets.delete(sock);
      closedResolve();
    });

    let buf: Buffer = Buffer.alloc(0);
    let mode: 'command' | 'data' | 'auth-login-user' | 'auth-login-pass' | 'auth-plain' | 'auth-cram' = 'command';
    let loginUser = '';
    let body: Buffer[] = [];
    let inFlight = 0;
    // Replies go out strictly in order, each after replyDelayMs.
    let chain: Promise<void> = Promise.resolve();
    let endAfterReply = false;
    const answer = (text: string | null) => {
      if (text === null) return; // never answered: stays in flight
      const end = endAfterReply;
      endAfterReply = false;
      chain = chain.then(async () => {
        if (opts.replyDelayMs) await sleep(opts.replyDelayMs);
        inFlight--;
        conn.write(text.endsWith('\r\n') ? text : text + '\r\n');
        if (end) sock.end();
      });
    };
    const greet = async () => {
      if (opts.greetingDelayMs) await sleep(opts.greetingDelayMs);
      if (opts.greeting !== null) conn.write((opts.greeting ?? '220 fake.test ESMTP') + '\r\n');
    };
    void greet();

    const authOk = (user: string, pass: string) => opts.users?.[user] === pass;

    const defaultReply = (line: string): string | null => {
      const verb = line.split(' ')[0].toUpperCase();
      const arg = line.slice(verb.length + 1);
      switch (mode) {
        case 'auth-login-user':
          loginUser = unb64(line);
          mode = 'auth-login-pass';
          return '334 UGFzc3dvcmQ6';
        case 'auth-login-pass':
          mode = 'command';
          return authOk(loginUser, unb64(line)) ? '235 2.7.0 Authentication successful' : '535 5.7.8 Authentication failed';
        case 'auth-plain': {
          mode = 'command';
          const [, user, pass] = unb64(line).split('\0');
          return authOk(user ?? '', pass ?? '') ? '235 2.7.0 Authentication successful' : '535 5.7.8 Authentication failed';
        }
        case 'auth-cram':
          mode = 'command';
          return '535 authorization failed (#5.7.0)';
        default:
          break;
      }
      switch (verb) {
        case 'EHLO':
          return [opts.ehloFirstLine ?? `fake.test Hello ${arg}`, ...(opts.ehlo ?? ['PIPELINING', '8BITMIME'])]
            .map((text, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${text}`)
            .join('\r\n');
        case 'HELO':
          return `250 fake.test Hello ${arg}`;
        case 'MAIL':
          return `250 2.1.0 Ok ${arg}`;
        case 'RCPT':
          return /bad/i.test(arg) ? `550 5.1.1 No such user ${arg}` : `250 2.1.5 Ok ${arg}`;
        case 'DATA':
          mode = 'data';
          body = [];
          conn.bodyBytes = 0;
          return '354 End data with <CR><LF>.<CR><LF>';
        case 'RSET':
          return '250 2.0.0 Ok reset';
        case 'NOOP':
          return '250 2.0.0 Ok noop';
        case 'VRFY':
          return `252 2.0.0 ${arg}`;
        case 'QUIT':
          endAfterReply = true;
          return '221 2.0.0 Bye';
        case 'AUTH': {
          const [mech, initial] = arg.split(' ');
          switch ((mech ?? '').toUpperCase()) {
            case 'LOGIN':
              mode = 'auth-login-user';
              return '334 VXNlcm5hbWU6';
            case 'PLAIN':
              if (initial === undefined) {
                mode = 'auth-plain';
                return '334 ';
              }
              {
                const [, user, pass] = unb64(initial).split('\0');
                return authOk(user ?? '', pass ?? '') ? '235 2.7.0 Authentication successful' : '535 5.7.8 Authentication failed';
              }
            case 'CRAM-MD5':
              mode = 'auth-cram';
              return `334 ${b64('<1896.697170952@fake.test>')}`;
            default:
              return '504 5.5.4 Unrecognized authentication type';
          }
        }
        default:
          return '502 5.5.2 Error: command not recognized';
      }
    };

    const onLine = (line: string) => {
      conn.commands.push(line);
      inFlight++;
      conn.maxInFlight = Math.max(conn.maxInFlight, inFlight);
      const custom = opts.onCommand?.(line, conn);
      answer(custom !== undefined ? custom : defaultReply(line));
    };

    sock.on('data', (chunk: Buffer) => {
      conn.reads.push(chunk);
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (mode === 'data') {
          const prevLen = body.reduce((n, b) => n + b.length, 0);
          // Terminator: ".\r\n" at the start of the body or after a CRLF.
          const joined = Buffer.concat([...body, buf]);
          let end = -1;
          if (joined.subarray(0, 3).toString('latin1') === '.\r\n') end = 3;
          else {
            const i = joined.indexOf('\r\n.\r\n', Math.max(0, prevLen - 4));
            if (i !== -1) end = i + 5;
          }
          if (end === -1) {
            body = [joined];
            buf = Buffer.alloc(0);
            conn.bodyBytes = joined.length;
            if (opts.dropAfterBodyBytes !== undefined && conn.bodyBytes >= opts.dropAfterBodyBytes) sock.destroy();
            return;
          }
          conn.messages.push(joined.subarray(0, end));
          conn.bodyBytes = end;
          buf = joined.subarray(end);
          body = [];
          mode = 'command';
          inFlight++;
          conn.maxInFlight = Math.max(conn.maxInFlight, inFlight);
          const custom = opts.onMessage?.(conn.messages[conn.messages.length - 1], conn);
          answer(custom !== undefined ? custom : '250 2.0.0 Ok: queued as FAKE' + conn.messages.length);
          continue;
        }
        const idx = buf.indexOf('\r\n');
        if (idx === -1) return;
        const line = buf.subarray(0, idx).toString('latin1');
        buf = buf.subarray(idx + 2);
        onLine(line);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections,
    async waitForConnections(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (connections.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} upstream connection(s), got ${connections.length}`);
        await sleep(10);
      }
      return connections;
    },
    allReceived: () => connections.map((c) => Buffer.concat(c.reads).toString('latin1')).join(''),
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
