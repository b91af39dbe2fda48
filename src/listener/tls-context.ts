// Server-side TLS for a listener: its own SecureContext, so weak settings (TLS 1.0, SECLEVEL=0) apply to
// that listener only and every other context keeps Node's defaults.
import fs from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import type { ListenerConfig } from '../config/schema.js';
import type { TlsInfo } from '../observe/events.js';
import { tlsInfo, describeTlsError, describeCertError } from '../upstream/dial.js';
import { bytesStillNeeded, describeOffer, sniffClientHello, type Offered } from './client-hello.js';

export interface ServerTls {
  /** Options for `new tls.TLSSocket(raw, { isServer: true, ...options })` and `tls.createServer`. */
  options: tls.TlsOptions;
  warnings: string[];
  /** NSS key log sink for Wireshark (capture.keylog), set by app.ts; attached before the handshake. */
  onKeylog?: (line: Buffer) => void;
}

const VERSION_ORDER = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

export async function buildServerTls(l: ListenerConfig, hostname: string): Promise<ServerTls | undefined> {
  if (l.tls.mode === 'none') return undefined;
  const warnings: string[] = [];
  let cert: string | Buffer;
  let key: string | Buffer;
  if (l.tls.cert && l.tls.key) {
    cert = fs.readFileSync(l.tls.cert);
    key = fs.readFileSync(l.tls.key);
  } else {
    // Loaded only here: the certificate library is large, and a listener with its own certificate never needs it.
    const { default: selfsigned } = await import('selfsigned');
    const pems = await selfsigned.generate([{ name: 'commonName', value: hostname }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] }],
    });
    cert = pems.cert;
    key = pems.private;
    warnings.push(`listener ${l.name}: no tls.cert/tls.key given; using a self-signed certificate for ${hostname} generated at start`);
  }
  const legacy = VERSION_ORDER.indexOf(l.tls.minVersion) < VERSION_ORDER.indexOf('TLSv1.2');
  // OpenSSL 3 refuses TLS 1.0/1.1 (and their SHA-1 signatures) at the default security level: the level
  // must be lowered in this context's cipher string, or the handshake dies with alert 80 (internal_error).
  // TLS 1.3 suites are configured separately by OpenSSL, so 1.3 keeps working on the same listener.
  const ciphers = l.tls.ciphers ?? (legacy ? 'DEFAULT:@SECLEVEL=0' : undefined);
  if (legacy) warnings.push(`listener ${l.name}: accepts ${l.tls.minVersion} with legacy ciphers (${ciphers}); use only for devices that cannot do better`);
  const options: tls.TlsOptions = {
    cert,
    key,
    minVersion: l.tls.minVersion,
    maxVersion: l.tls.maxVersion,
    ciphers,
    requestCert: l.tls.requestClientCert,
    rejectUnauthorized: false, // verified per session so the log can say why a certificate was refused
    ca: l.tls.ca ? fs.readFileSync(l.tls.ca) : undefined,
    crl: l.tls.crl ? fs.readFileSync(l.tls.crl) : undefined,
  };
  const sni = Object.entries(l.tls.sni);
  if (sni.length > 0) {
    const contexts = new Map(
      sni.map(([name, c]) => [
        name.toLowerCase(),
        tls.createSecureContext({ ...options, cert: fs.readFileSync(c.cert), key: fs.readFileSync(c.key) }),
      ]),
    );
    options.SNICallback = (servername, cb) => cb(null, contexts.get(servername.toLowerCase()));
  }
  options.secureContext = tls.createSecureContext(options);
  return { options, warnings };
}

export interface ClientTls {
  socket: tls.TLSSocket;
  info: TlsInfo;
  /** Subject CN of a client certificate that verified against the listener's `ca` (and `crl`). */
  certUser: string | undefined;
}

/** A failed client handshake: `reason` for the log, `offered` = what the ClientHello asked for. */
export class ClientTlsError extends Error {
  constructor(
    readonly reason: string,
    readonly offered: Offered | undefined,
  ) {
    super(reason);
  }
}

/** More than one record's worth of bytes is never needed to see the ClientHello. */
const SNIFF_LIMIT = 16384 + 5;

/**
 * Server side of a client handshake, shared by implicit TLS (listener) and STARTTLS (session). The first
 * record is read here and put back (`unshift`) before TLS takes the socket: Node's TLSSocket feeds bytes
 * already buffered on the wrapped socket to OpenSSL, so nothing is lost, and when the handshake fails the
 * log can say which versions, suites and SNI name the client offered.
 *
 * Client certificates: a client may present none (the session goes on without a certificate user). A
 * presented certificate that does not verify (unknown CA, revoked by `crl`, expired) ends the connection
 * right after the handshake, with the reason in the log: a device with a bad certificate is a
 * misconfiguration or an attack, and silently demoting it to an anonymous session would hide both.
 */
export function acceptClientTls(raw: net.Socket, server: ServerTls, timeoutMs: number): Promise<ClientTls> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let offered: Offered | undefined;
    let settled = false;
    const chunks: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => fail('handshake timed out'), timeoutMs);
    let tlsSock: tls.TLSSocket | undefined;

    function fail(reason: string): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('close', onEarlyClose);
      raw.off('error', onEarlyError);
      if (tlsSock) tlsSock.destroy();
      else raw.destroy();
      reject(new ClientTlsError(reason, offered));
    }
    const onEarlyClose = () => fail('connection closed before the TLS handshake');
    const onEarlyError = (err: NodeJS.ErrnoException) => fail(`connection error before the TLS handshake: ${err.code ?? err.message}`);

    function onData(chunk: Buffer): void {
      chunks.push(chunk);
      have += chunk.length;
      const buf = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      if (bytesStillNeeded(buf) > 0 && have < SNIFF_LIMIT) return;
      raw.off('data', onData);
      raw.off('close', onEarlyClose);
      raw.off('error', onEarlyError);
      raw.pause();
      raw.unshift(buf);
      offered = describeOffer(sniffClientHello(buf));
      handshake();
    }

    function handshake(): void {
      const s = new tls.TLSSocket(raw, { isServer: true, ...server.options });
      if (server.onKeylog) s.on('keylog', server.onKeylog);
      tlsSock = s;
      s.once('error', (err: NodeJS.ErrnoException) => fail(describeTlsError(err)));
      s.once('close', () => fail('connection closed during the TLS handshake'));
      s.once('secure', () => {
        if (settled) return;
        const peer = s.getPeerCertificate();
        const presented = peer !== null && Object.keys(peer).length > 0;
        if (presented) {
          // Node sets `authorized` only for sockets a tls.Server created (its onServerSocketSecure); a
          // TLSSocket wrapped by hand must ask OpenSSL's verify result itself, the same call Node makes.
          const verifyError = (s as unknown as { ssl?: { verifyError(): (Error & { code?: string }) | null } }).ssl?.verifyError() ?? null;
          s.authorized = verifyError === null;
          // Node stores the OpenSSL code name here (typed as Error in @types/node).
          if (verifyError) s.authorizationError = (verifyError.code ?? verifyError.message) as unknown as Error;
          if (verifyError) {
            fail(`client certificate refused: ${describeCertError(verifyError)}`);
            return;
          }
        }
        settled = true;
        clearTimeout(timer);
        s.removeAllListeners('error');
        s.removeAllListeners('close');
        s.setNoDelay(true);
        resolve({ socket: s, info: tlsInfo(s, performance.now() - started), certUser: presented ? certCn(s) : undefined });
      });
    }

    raw.on('data', onData);
    raw.on('close', onEarlyClose);
    raw.on('error', onEarlyError);
    raw.resume();
  });
}

function certCn(s: tls.TLSSocket): string | undefined {
  const cn = s.getPeerCertificate()?.subject?.CN;
  return (Array.isArray(cn) ? cn[0] : cn) || undefined;
}
