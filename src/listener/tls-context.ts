// Server-side TLS for a listener: its own SecureContext, so weak settings (TLS 1.0, SECLEVEL=0) apply to
// that listener only and every other context keeps Node's defaults.
import fs from 'node:fs';
import tls from 'node:tls';
import selfsigned from 'selfsigned';
import type { ListenerConfig } from '../config/schema.js';

export interface ServerTls {
  /** Options for `new tls.TLSSocket(raw, { isServer: true, ...options })` and `tls.createServer`. */
  options: tls.TlsOptions;
  warnings: string[];
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
