// The probe report: what `mailshim probe` found, as data. The text and JSON outputs both render this.

export const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersionName = (typeof TLS_VERSIONS)[number];

export type ProbeMode = 'starttls' | 'implicit' | 'plain';

export interface TlsVersionResult {
  accepted: boolean;
  cipher?: string;
  /** Why the handshake failed: "TLS alert protocol_version (...)", "STARTTLS not offered", ... */
  error?: string;
  /** True when this machine's OpenSSL could not even offer the version, so the server was not asked. */
  localLimit?: boolean;
}

export interface CertificateSummary {
  subject: string;
  issuer: string;
  /** Subject alternative names as "DNS:x", "IP Address:y". */
  subjectAltNames: string[];
  validFrom: string;
  validTo: string;
  serialNumber: string;
  fingerprint256: string;
}

export interface CertificateReport {
  /** Leaf first, then each issuer the server sent or the trust store supplied. */
  chain: CertificateSummary[];
  /** The leaf is past its notAfter (or before its notBefore) now. */
  expired: boolean;
  notYetValid: boolean;
  /** Verified against the trust store (`trustedBy`). */
  verified: boolean;
  verifyError?: string;
  trustedBy: string;
  /** The name checked against the certificate (--servername, else the host). */
  checkedName: string;
  hostnameMatch: boolean;
  hostnameError?: string;
  /** Version and cipher of the handshake the certificate came from (the widest one). */
  protocol: string | null;
  cipher: string | null;
}

/**
 * One mechanism under --auth. `tried` means the AUTH command was sent; when it was not (the certificate
 * did not verify, no TLS without --plain, a mechanism the probe cannot speak), `reason` says why.
 */
export type AuthAttempt =
  | {
      mechanism: string;
      tried: true;
      ok: boolean;
      /** The server's final reply ("235 2.7.0 Authentication successful"), or what broke the exchange. */
      detail: string;
      overTls: boolean;
      /** Sent over TLS whose certificate did not verify, because --insecure-auth allowed it. */
      unverifiedTls?: true;
    }
  | { mechanism: string; tried: false; ok: false; reason: string; overTls: boolean };

export interface ProbeReport {
  /** caFile: the --ca file, when given. */
  target: { host: string; port: number; mode: ProbeMode; servername: string; caFile?: string };
  /** The 220 greeting (after the TLS handshake for implicit TLS). */
  greeting: string[] | null;
  greetingCode: number | null;
  starttlsOffered: boolean;
  ehlo: { beforeTls: string[] | null; afterTls: string[] | null };
  auth: { beforeTls: string[] | null; afterTls: string[] | null };
  tls: Record<TlsVersionName, TlsVersionResult>;
  certificate: CertificateReport | null;
  /** The --auth user (never the password). */
  authUser?: string;
  authResults: AuthAttempt[] | null;
  /** Set when --insecure-auth let a password go over TLS whose certificate did not verify. */
  authWarning?: string;
  /** Problems met on the way that did not stop the probe. */
  notes: string[];
  findings: string[];
  verdict: string;
  suggestedConfig: string;
}
