// A tiny SMTP server that offers STARTTLS (or implicit TLS) with settings no well-behaved peer would use:
// a TLS 1.0-only stack, a self-signed or expired certificate, bytes injected after its 220 to STARTTLS.
// It records every command with whether it arrived inside TLS, so a test can prove nothing went in the clear.
import net from 'node:net';
import tls from 'node:tls';

export interface TlsFakeOptions {
  cert: string | Buffer;
  key: string | Buffer;
  mode?: 'starttls' | 'implicit';
  /** Leave STARTTLS out of the EHLO reply (and refuse the command). */
  noStarttls?: boolean;
  /** Sent as the reply to STARTTLS (CRLFs included). Default "220 2.0.0 ready\r\n". */
  starttlsReply?: string;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  ciphers?: string;
}

export interface TlsFakeCommand {
  line: string;
  tls: boolean;
}

export interface TlsFake {
  port: number;
  commands: TlsFakeCommand[];
  /** Server-side TLS errors (e.g. the handshake mailshim refused). */
  tlsErrors: string[];
  messages: string[];
  stop(): Promise<void>;
}

export async function startTlsFake(opts: TlsFakeOptions): Promise<TlsFake> {
  const commands: TlsFakeCommand[] = [];
  const tlsErrors: string[] = [];
  const messages: string[] = [];
  const sockets = new Set<net.Socket>();
  const tlsOpts: tls.TlsOptions = {
    cert: opts.cert,
    key: opts.key,
    minVersion: opts.minVersion,
    maxVersion: opts.maxVersion,
    ciphers: opts.ciphers,
  };

  const serve = (sock: net.Socket, secure: boolean): void => {
    let buf = '';
    let inData = false;
    let body = '';
    const write = (t: string) => {
      if (!sock.destroyed) sock.write(t);
    };
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('latin1');
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            messages.push(body);
            body = '';
            write('250 2.0.0 queued\r\n');
          } else body += line + '\r\n';
          continue;
        }
        commands.push({ line, tls: secure });
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO') {
          write(secure || opts.noStarttls ? '250-fake.tls.test\r\n250 PIPELINING\r\n' : '250-fake.tls.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n');
        } else if (verb === 'STARTTLS' && !secure && !opts.noStarttls) {
          sock.off('data', onData);
          sock.pause();
          write(opts.starttlsReply ?? '220 2.0.0 ready\r\n');
          upgrade(sock);
          return;
        } else if (verb === 'DATA') {
          inData = true;
          write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          write('221 2.0.0 bye\r\n');
          sock.end();
        } else if (verb === 'STARTTLS') write('502 5.5.1 not implemented\r\n');
        else write('250 2.0.0 ok\r\n');
      }
    };
    sock.on('data', onData);
    sock.on('error', () => {});
  };

  const upgrade = (raw: net.Socket): void => {
    const t = new tls.TLSSocket(raw, { isServer: true, ...tlsOpts, secureContext: tls.createSecureContext(tlsOpts) });
    t.on('error', (err) => tlsErrors.push(err.message));
    t.once('secure', () => serve(t, true));
    if (opts.mode === 'implicit') t.once('secure', () => t.write('220 fake.tls.test ESMTP\r\n'));
  };

  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    if (opts.mode === 'implicit') {
      upgrade(sock);
      return;
    }
    sock.write('220 fake.tls.test ESMTP\r\n');
    serve(sock, false);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    commands,
    tlsErrors,
    messages,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
