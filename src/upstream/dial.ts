// Opening upstream connections: plain TCP, implicit TLS (RFC 8314) and the STARTTLS upgrade of an open
// socket. Certificate verification is on unless the upstream config turns it off.
import net from 'node:net';
import tls from 'node:tls';
import type { TlsInfo } from '../observe/events.js';
import { socketOptions } from '../listener/fast-read.js';

export interface UpstreamTlsOptions {
  minVersion: tls.SecureVersion;
  maxVersion: tls.SecureVersion;
  verify: boolean;
  ca?: string | Buffer;
  servername: string;
  ciphers?: string;
  /** NSS key log sink for Wireshark (capture.keylog). */
  onKeylog?: (line: Buffer) => void;
}

export class DialError extends Error {
  constructor(
    message: string,
    readonly stage: 'connect' | 'tls',
  ) {
    super(message);
  }
}

export function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => connectTcpCb(host, port, timeoutMs, (err, sock) => (err ? reject(err) : resolve(sock!))));
}

/**
 * connectTcp with a callback: the per-session path for plain upstreams, without promise and microtask work.
 * `onread` (Node's net.connect option) hands each read to the callback instead of the stream: see
 * UpstreamClient.open for when that is used.
 */
export function connectTcpCb(
  host: string,
  port: number,
  timeoutMs: number,
  cb: (err: DialError | undefined, sock?: net.Socket) => void,
  onread?: net.OnReadOpts,
): void {
  // noDelay: a relayed dialogue, every reply is small and latency-bound (applied as the socket connects).
  // An onread socket is built from the options every socket of ours shares (see socketOptions for why).
  const sock = onread ? new net.Socket(socketOptions(undefined, true, onread)).connect({ host, port }) : net.connect({ host, port, noDelay: true });
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) return;
    settled = true;
    sock.destroy();
    cb(new DialError(`connect to ${host}:${port} timed out after ${timeoutMs} ms`, 'connect'));
  }, timeoutMs);
  const onError = (err: NodeJS.ErrnoException) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    cb(new DialError(`connect to ${host}:${port} failed: ${err.code ?? err.message}`, 'connect'));
  };
  sock.once('error', onError);
  sock.once('connect', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    sock.off('error', onError);
    cb(undefined, sock);
  });
}

/** Wrap `socket` (fresh TCP for implicit TLS, or after a 220 to STARTTLS) in a verified TLS client. */
export function upgradeToTls(socket: net.Socket, opts: UpstreamTlsOptions, timeoutMs: number): Promise<{ socket: tls.TLSSocket; info: TlsInfo }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      socket,
      servername: net.isIP(opts.servername) ? undefined : opts.servername,
      minVersion: opts.minVersion,
      maxVersion: opts.maxVersion,
      ca: opts.ca,
      ciphers: opts.ciphers,
      rejectUnauthorized: false, // checked below so the failure reason is ours to report
      checkServerIdentity: () => undefined,
    });
    if (opts.onKeylog) s.on('keylog', opts.onKeylog);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new DialError(`TLS handshake timed out after ${timeoutMs} ms`, 'tls'));
    }, timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      const info = tlsInfo(s, performance.now() - started);
      if (opts.verify) {
        let problem: string | undefined;
        if (!s.authorized) problem = `certificate not trusted: ${describeCertError(s.authorizationError)}`;
        else {
          const idErr = tls.checkServerIdentity(opts.servername, s.getPeerCertificate());
          if (idErr) problem = `certificate name mismatch: ${idErr.message}`;
        }
        if (problem) {
          s.destroy();
          reject(new DialError(problem, 'tls'));
          return;
        }
      }
      s.setNoDelay(true);
      resolve({ socket: s, info });
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new DialError(`TLS handshake failed: ${describeTlsError(err)}`, 'tls'));
    });
  });
}

// Node reports a failed verification as OpenSSL's code name (authorizationError: 'CERT_HAS_EXPIRED');
// the log shows OpenSSL's own words, which is what owners search for.
const CERT_ERRORS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  CERT_REVOKED: 'certificate revoked',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in certificate chain',
  UNABLE_TO_GET_ISSUER_CERT: 'unable to get issuer certificate',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unable to get local issuer certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate',
  UNABLE_TO_GET_CRL: 'unable to get certificate CRL',
  CRL_HAS_EXPIRED: 'CRL has expired',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  CERT_UNTRUSTED: 'certificate not trusted',
  CERT_REJECTED: 'certificate rejected',
  INVALID_PURPOSE: 'unsupported certificate purpose',
  INVALID_CA: 'invalid CA certificate',
  ERR_TLS_CERT_ALTNAME_INVALID: 'certificate name mismatch',
};

/** "certificate has expired (CERT_HAS_EXPIRED)" from Node's authorizationError code. */
export function describeCertError(code: Error | string | null | undefined): string {
  const c = code instanceof Error ? ((code as NodeJS.ErrnoException).code ?? code.message) : String(code ?? 'unknown');
  return CERT_ERRORS[c] ? `${CERT_ERRORS[c]} (${c})` : c;
}

/** "TLS alert protocol_version" rather than OpenSSL's long routine strings. */
export function describeTlsError(err: NodeJS.ErrnoException): string {
  const m = /alert (?:number \d+|([a-z ]+))/i.exec(err.message) ?? /SSL alert number (\d+)/.exec(err.message);
  const alert = /tlsv1 alert ([a-z ]+)|sslv3 alert ([a-z ]+)/i.exec(err.message);
  if (alert) return `TLS alert ${(alert[1] ?? alert[2]).trim().replace(/ /g, '_')} (${err.code ?? 'error'})`;
  if (m && m[1]) return `TLS alert ${m[1].trim().replace(/ /g, '_')}`;
  if (err.code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' || /unsupported protocol/i.test(err.message)) return 'no TLS version in common (unsupported protocol)';
  if (err.code === 'ECONNRESET') return 'connection reset during handshake';
  return err.code ? `${err.code}: ${err.message}` : err.message;
}

export function tlsInfo(s: tls.TLSSocket, handshakeMs: number): TlsInfo {
  const cipher = s.getCipher();
  const peer = s.getPeerCertificate();
  const hasPeer = peer && Object.keys(peer).length > 0;
  return {
    version: s.getProtocol(),
    cipher: cipher?.name ?? null,
    servername: (s as tls.TLSSocket & { servername?: string | false }).servername || null,
    peerSubject: hasPeer ? formatDn(peer.subject) : null,
    peerIssuer: hasPeer ? formatDn(peer.issuer) : null,
    peerValidTo: hasPeer ? peer.valid_to : null,
    authorized: s.authorized,
    authorizationError: s.authorizationError ? String(s.authorizationError) : null,
    handshakeMs: Math.round(handshakeMs * 10) / 10,
  };
}

function formatDn(dn: tls.Certificate | undefined): string | null {
  if (!dn) return null;
  return Object.entries(dn)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ');
}
