// Helpers for the capture tests: a scripted fake upstream (optional STARTTLS, every SASL mechanism the
// client may try, a switch to fail AUTH like Microsoft 365), a line-dialogue client with STARTTLS, and a
// self-signed certificate made with the openssl CLI, and a live tshark capture that is known to be running.
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';

export function makeCert(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '2', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

export interface FakeUpstream {
  port: number;
  /** Every command line received (AUTH payloads included), in order. */
  received: string[];
  close(): Promise<void>;
}

export interface FakeUpstreamOptions {
  tls?: { cert: string; key: string; maxVersion?: tls.SecureVersion };
  /** Reply to the end of every AUTH exchange; default 235. */
  authReply?: string;
}

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    serve(raw, false);
  });
  function serve(sock: net.Socket, secure: boolean): void {
    let buf = '';
    let inData = false;
    let authSteps: string[] = [];
    const w = (s: string) => sock.write(s + '\r\n');
    sock.on('error', () => {});
    if (!secure) w('220 upstream.test ESMTP fake');
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (let guard = 0; guard < 10_000; guard++) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buf = buf.slice(end + 5);
          inData = false;
          w('250 2.0.0 Ok: queued as FAKE123');
          continue;
        }
        const i = buf.indexOf('\r\n');
        if (i < 0) return;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        received.push(line);
        if (authSteps.length > 0) {
          const next = line === '*' ? '501 5.7.0 cancelled' : authSteps.shift()!;
          if (line === '*') authSteps = [];
          w(next);
          continue;
        }
        const verb = line.split(' ')[0]!.toUpperCase();
        const done = opts.authReply ?? '235 2.7.0 Authentication successful';
        switch (verb) {
          case 'EHLO':
            w('250-upstream.test');
            w('250-PIPELINING');
            w('250-SIZE 20971520');
            if (opts.tls && !secure) w('250-STARTTLS');
            w('250-AUTH LOGIN CRAM-MD5 PLAIN DIGEST-MD5');
            w('250 8BITMIME');
            break;
          case 'STARTTLS': {
            w('220 2.0.0 Ready to start TLS');
            sock.off('data', onData);
            const t = new tls.TLSSocket(sock, {
              isServer: true,
              cert: fs.readFileSync(opts.tls!.cert),
              key: fs.readFileSync(opts.tls!.key),
              maxVersion: opts.tls!.maxVersion,
            });
            t.on('error', () => {});
            serve(t, true);
            return;
          }
          case 'AUTH': {
            const [, mech, initial] = line.split(' ');
            const m = mech!.toUpperCase();
            if (m === 'PLAIN') authSteps = initial ? [] : [done];
            if (m === 'LOGIN') authSteps = ['334 UGFzc3dvcmQ6', done];
            if (m === 'CRAM-MD5') authSteps = [done];
            if (m === 'DIGEST-MD5') authSteps = ['334 cnNwYXV0aD04MjUyMDUyODQ5YzMzN2QyYjMxOGVmM2IxMWQ4ZGI4Mw==', done];
            if (m === 'PLAIN' && initial) w(done);
            else if (m === 'PLAIN') w('334 ');
            else if (m === 'LOGIN') w('334 VXNlcm5hbWU6');
            else if (m === 'CRAM-MD5') w('334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+');
            else if (m === 'DIGEST-MD5') w('334 ' + Buffer.from('realm="example.com",nonce="JQMKtdgbEhMra4GdAYmAjQ==",qop="auth",charset=utf-8,algorithm=md5-sess').toString('base64'));
            else w('504 5.5.4 Unrecognized authentication type');
            break;
          }
          case 'DATA':
            inData = true;
            w('354 End data with <CR><LF>.<CR><LF>');
            break;
          case 'QUIT':
            w('221 2.0.0 Bye');
            sock.end();
            return;
          default:
            w('250 2.1.0 Ok');
        }
      }
    };
    sock.on('data', onData);
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A line-by-line SMTP client: send() a command, expect() the next reply (multi-line joined). */
export class Dialogue {
  private buf = '';
  private waiters: (() => void)[] = [];
  sock: net.Socket | tls.TLSSocket;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    this.listen(sock);
  }

  static connect(port: number): Promise<Dialogue> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Dialogue(s)));
      s.once('error', reject);
    });
  }

  private listen(sock: net.Socket): void {
    sock.on('data', (c: Buffer) => {
      this.buf += c.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => {});
  }

  send(line: string): void {
    this.sock.write(line + '\r\n');
  }

  /** The next complete reply (all its lines), within `withinMs` (5 s unless told). */
  async reply(withinMs = 5000): Promise<string> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0].trimEnd();
      }
      if (Date.now() > deadline) throw new Error(`no reply; have ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async cmd(line: string, expect: RegExp, withinMs?: number): Promise<string> {
    this.send(line);
    const r = await this.reply(withinMs);
    if (!expect.test(r)) throw new Error(`${line} -> ${r}`);
    return r;
  }

  async starttls(opts: tls.ConnectionOptions): Promise<void> {
    await this.cmd('STARTTLS', /^220/);
    this.sock.removeAllListeners('data');
    const t = tls.connect({ socket: this.sock, rejectUnauthorized: false, ...opts });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
    });
    this.sock = t;
    this.listen(t);
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.sock.once('close', () => r());
      this.sock.end();
      setTimeout(() => {
        this.sock.destroy();
        r();
      }, 1000).unref();
    });
  }
}

/** Replace what changes between runs (times, ports, ids, dates, cipher timing) so goldens compare. */
export function maskVolatile(text: string, sid: string): string {
  return text
    .split(sid)
    .join('SID')
    .replace(/^ *\+\d+\.\d{3}/gm, '  +T.TTT')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, 'DATE')
    .replace(/(127\.0\.0\.1|localhost):\d+/g, '$1:PORT')
    .replace(/connected in \d+ ms/g, 'connected in N ms')
    .replace(/handshake [\d.]+ ms/g, 'handshake N ms')
    .replace(/expires [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT/g, 'expires EXPIRY')
    .replace(/after \d+\.\d{3} s/g, 'after N s')
    .replace(/\d+ bytes in, \d+ bytes out/g, 'N bytes in, N bytes out');
}

export interface LiveCapture {
  /** Resolves once every packet sent before the call is in the capture (see startLiveCapture). */
  barrier(): Promise<void>;
  /** barrier(), then stop tshark and wait until the file is complete. */
  stop(): Promise<void>;
  /** Clean-up after a failure: kill tshark at once. */
  kill(): void;
}

/**
 * tshark on loopback writing `file`, filtered to `ports`. tshark prints "Capturing on" before its
 * dumpcap has even opened the interface (here the first ~0.1 s, seconds under load, were missed), so
 * readiness is proved instead: the filter also takes a probe port, and a throwaway connection to it is
 * made until tshark reports that connection's SYN (-P prints each packet while writing the file). Packets
 * on loopback are captured in order, so a probe seen later also proves every earlier packet is in.
 */
export async function startLiveCapture(ports: number[], file: string): Promise<LiveCapture> {
  const probe = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const probePort = (probe.address() as net.AddressInfo).port;
  const filter = [...ports, probePort].map((p) => `tcp port ${p}`).join(' or ');
  const proc = spawn('tshark', ['-i', 'lo', '-f', filter, '-P', '-l', '-w', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => void (stderr = (stderr + c.toString()).slice(-4000)));
  // Source ports of the probe SYNs tshark has seen; the rest of its output is drained and dropped.
  const seen = new Set<number>();
  const synToProbe = new RegExp(`\\b(\\d+) (?:→|->) ${probePort} \\[SYN\\]`);
  let rest = '';
  proc.stdout!.on('data', (c: Buffer) => {
    const lines = (rest + c.toString()).split('\n');
    rest = lines.pop()!;
    for (const l of lines) {
      const m = synToProbe.exec(l);
      if (m) seen.add(Number(m[1]));
    }
  });

  async function barrier(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const from = await new Promise<number>((resolve) => {
        const s = net.connect(probePort, '127.0.0.1', () => resolve(s.localPort ?? 0));
        s.on('error', () => resolve(0));
      });
      for (let i = 0; i < 10 && !seen.has(from); i++) await new Promise((r) => setTimeout(r, 50));
      if (seen.has(from)) return;
      if (proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`tshark is not capturing on lo (exit code ${proc.exitCode}): ${stderr}`);
      }
    }
  }

  try {
    await barrier();
  } catch (err) {
    proc.kill('SIGKILL');
    probe.close();
    throw err;
  }
  return {
    barrier,
    async stop() {
      try {
        await barrier();
      } finally {
        proc.kill('SIGINT');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
        probe.close();
      }
    },
    kill() {
      proc.kill('SIGKILL');
      probe.close();
    },
  };
}
