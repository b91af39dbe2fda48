// The server certificate as the probe reports it: the chain, whether it verifies, whether the name matches.
import { existsSync, readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { CertificateReport, CertificateSummary } from './types.js';

/** Debian/Ubuntu, Fedora/RHEL and Alpine locations of the system CA bundle. */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

/**
 * The CAs a certificate is checked against when no --ca is given: Node's bundled Mozilla roots plus
 * the system bundle (a company CA installed with update-ca-certificates counts, as it does for openssl).
 */
export function systemTrustStore(): { pem: string; label: string } {
  const file = SYSTEM_BUNDLES.find((f) => existsSync(f));
  const extra = file ? [readFileSync(file, 'utf8')] : [];
  return { pem: [...tls.rootCertificates, ...extra].join('\n'), label: file ? `system CAs (${file} and Node's roots)` : "Node's bundled root CAs" };
}

/** Node reports OpenSSL's verify result as a code; add the words a user would search for. */
const VERIFY_WORDS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in the chain',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'issuer not in the trust store, or intermediate missing',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'issuer not in the trust store',
  CERT_REVOKED: 'certificate revoked',
};

function verifyText(code: string): string {
  const words = VERIFY_WORDS[code];
  return words ? `${code}: ${words}` : code;
}

function formatDn(dn: tls.Certificate | undefined): string {
  if (!dn) return '';
  return Object.entries(dn)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
    .join(', ');
}

function summarise(c: tls.PeerCertificate): CertificateSummary {
  return {
    subject: formatDn(c.subject),
    issuer: formatDn(c.issuer),
    subjectAltNames: c.subjectaltname ? c.subjectaltname.split(', ').filter((s) => s !== '') : [],
    validFrom: new Date(c.valid_from).toISOString(),
    validTo: new Date(c.valid_to).toISOString(),
    serialNumber: c.serialNumber,
    fingerprint256: c.fingerprint256,
  };
}

/** Read the chain and the verdicts from a finished handshake made with `ca` as the trust store. */
export function certificateReport(s: tls.TLSSocket, checkedName: string, trustedBy: string, now = new Date()): CertificateReport | null {
  const leaf = s.getPeerCertificate(true);
  if (!leaf || Object.keys(leaf).length === 0) return null;
  const chain: CertificateSummary[] = [];
  const seen = new Set<string>();
  // issuerCertificate points at itself for a self-signed root; bound the walk as well.
  for (let c: tls.DetailedPeerCertificate | undefined = leaf; c && !seen.has(c.fingerprint256) && chain.length < 10; c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    chain.push(summarise(c));
  }
  const idErr = tls.checkServerIdentity(checkedName, leaf);
  const notAfter = new Date(leaf.valid_to);
  const notBefore = new Date(leaf.valid_from);
  const cipher = s.getCipher();
  return {
    chain,
    expired: now > notAfter,
    notYetValid: now < notBefore,
    verified: s.authorized,
    ...(s.authorizationError ? { verifyError: verifyText(String(s.authorizationError)) } : {}),
    trustedBy,
    checkedName,
    hostnameMatch: idErr === undefined,
    ...(idErr ? { hostnameError: idErr.message } : {}),
    protocol: s.getProtocol(),
    cipher: cipher?.name ?? null,
  };
}
