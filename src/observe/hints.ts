// Known replies from real providers and MTAs -> a one-line hint for transcripts and `mailshim trace show`.
// To add one: append a row. `code` is the reply code, `enhanced` the RFC 3463 code right after it (if any),
// `text` an optional pattern on the rest of the line. The first matching row wins, so put specific rows first.

export interface HintRow {
  code: number;
  enhanced?: string;
  text?: RegExp;
  hint: string;
}

export const REPLY_HINTS: HintRow[] = [
  { code: 535, enhanced: '5.7.139', hint: 'SMTP AUTH is disabled for this tenant or mailbox (Microsoft 365): enable Authenticated SMTP for the mailbox, or security defaults block it' },
  { code: 535, enhanced: '5.7.3', hint: 'the provider rejected the credentials (Microsoft 365): wrong password, or the account needs MFA/app passwords' },
  { code: 535, enhanced: '5.7.8', hint: 'username and password not accepted: wrong credentials (Gmail: use an app password)' },
  { code: 535, text: /authorization failed \(#5\.7\.0\)/, hint: 'qmail-smtpd could not check this mechanism (e.g. CRAM-MD5 advertised without a checkpassword that supports it): hide it with an EHLO rule such as `remove-auth: CRAM-MD5`' },
  { code: 535, hint: 'authentication failed: the server did not accept these credentials for this mechanism' },
  { code: 534, enhanced: '5.7.9', hint: 'the provider wants an application-specific password for this account (Gmail)' },
  { code: 534, hint: 'the mechanism is too weak for this server: use another one (or auth.mode: local to log in upstream with PLAIN over TLS)' },
  { code: 538, hint: 'the server requires encryption for this mechanism: use STARTTLS first' },
  { code: 530, enhanced: '5.7.57', hint: 'the client did not authenticate before MAIL FROM (Microsoft 365: "Client not authenticated to send mail")' },
  { code: 530, enhanced: '5.7.0', text: /STARTTLS/i, hint: 'the server wants STARTTLS before this command' },
  { code: 530, hint: 'authentication required before this command' },
  { code: 421, enhanced: '4.7.66', hint: 'the server refuses TLS below 1.2 (Microsoft 365): the client must use TLS 1.2 or newer, or let mailshim terminate the old TLS and speak 1.2+ upstream' },
  { code: 454, enhanced: '4.7.0', hint: 'temporary authentication or TLS failure at the server (too many attempts, or TLS not available): retry later' },
  { code: 550, enhanced: '5.7.1', hint: 'refused by policy: relaying denied or sender not permitted for this client (authenticate, or check the sender address)' },
  { code: 554, enhanced: '5.7.0', text: /too many/i, hint: 'the server limits how many messages or sessions this client may use' },
];

export interface TlsHintRow {
  pattern: RegExp;
  hint: string;
}

export const TLS_HINTS: TlsHintRow[] = [
  { pattern: /protocol_version|unsupported protocol|no TLS version in common/i, hint: 'the two sides share no TLS version (alert 70): e.g. a TLS 1.0-only device against a TLS 1.2+ server; allow it on the listener with tls.minVersion: TLSv1 and ciphers: "DEFAULT:@SECLEVEL=0"' },
  { pattern: /handshake_failure|no shared cipher/i, hint: 'no cipher in common (alert 40): legacy clients need tls.ciphers: "DEFAULT:@SECLEVEL=0" on the listener' },
  { pattern: /internal_error/i, hint: 'alert 80 during a TLS 1.0 handshake usually means minVersion was lowered without lowering the security level (ciphers: "DEFAULT:@SECLEVEL=0")' },
  { pattern: /certificate has expired/i, hint: "the upstream's certificate has expired" },
  { pattern: /not trusted|self[- ]signed|unable to get local issuer/i, hint: "the upstream's certificate does not chain to a trusted CA: set upstreams.<name>.tls.ca" },
  { pattern: /name mismatch/i, hint: "the upstream's certificate is for another name: set upstreams.<name>.tls.servername" },
];

/** The hint for one reply line (`535 5.7.139 Authentication unsuccessful ...`), if a row matches. */
export function hintForReply(line: string): string | undefined {
  const m = /^(\d{3})[ -](?:(\d\.\d{1,3}\.\d{1,3})\b)?\s*(.*)$/.exec(line);
  if (!m) return undefined;
  const code = Number(m[1]);
  for (const row of REPLY_HINTS) {
    if (row.code !== code) continue;
    if (row.enhanced !== undefined && row.enhanced !== m[2]) continue;
    if (row.text && !row.text.test(line)) continue;
    return row.hint;
  }
  return undefined;
}

/** The hint for a TLS failure reason, if a row matches. */
export function hintForTls(reason: string): string | undefined {
  return TLS_HINTS.find((r) => r.pattern.test(reason))?.hint;
}
