// The probe engine: open the connections `mailshim probe` needs and return what it saw as a ProbeReport.
// Text and JSON rendering, the verdict and the config suggestion live in report.ts.
//
// Connections, one after the other (servers rate-limit parallel probes):
//   1. the main one: greeting, EHLO, STARTTLS with every version allowed, certificate, EHLO again;
//   2. one per TLS version, pinned to it (min = max), to learn whether the server accepts it;
//   3. with --auth, one per offered mechanism, and only when the main connection's certificate verified
//      and named the server (or --insecure-auth): the probe hands out no password mailshim itself would keep.
import net from 'node:net';
import type tls from 'node:tls';
import { authMechanisms, hasCap } from '../protocol/capabilities.js';
import type { UpstreamTlsOptions } from '../upstream/dial.js';
import { canTry, tryMechanism, type Credentials } from './auth.js';
import { certificateReport } from './certificate.js';
import { Dialogue, errorText, type Ehlo } from './dialogue.js';
import { analyse } from './report.js';
import { TLS_VERSIONS, type AuthAttempt, type ProbeMode, type ProbeReport, type TlsVersionName, type TlsVersionResult } from './types.js';

/**
 * The widest cipher list this machine's OpenSSL will offer. SECLEVEL=0 is needed for TLS 1.0/1.1
 * (OpenSSL 3 refuses their SHA-1 signatures at the default level 1) and must be set per context in
 * Node; anonymous and null ciphers are left out so the server still has to show its certificate.
 * TLS 1.3 suites are configured separately and Node offers all three standard ones.
 */
export const WIDEST_CIPHERS = 'ALL:!aNULL:!eNULL:@SECLEVEL=0';

export const EHLO_NAME = 'mailshim-probe';

export interface ProbeOptions {
  host: string;
  port: number;
  mode: ProbeMode;
  /** SNI and the name checked against the certificate; defaults to host. */
  servername?: string;
  /** Trust store (PEM) for certificate verification, with a label for the report and the --ca file, if any. */
  ca: { pem: string; label: string; file?: string };
  /** Per step: connect, each reply, each handshake. */
  timeoutMs: number;
  auth?: Credentials;
  /** --insecure-auth: send the password even when the certificate did not verify or does not name the server. */
  insecureAuth?: boolean;
}

/** The host could not be reached or did not greet; the probe has nothing to report. */
export class UnreachableError extends Error {}

type Partial = Omit<ProbeReport, 'findings' | 'verdict' | 'suggestedConfig'>;

export async function probe(opts: ProbeOptions): Promise<ProbeReport> {
  const servername = opts.servername ?? opts.host;
  const report: Partial = {
    target: { host: opts.host, port: opts.port, mode: opts.mode, servername, ...(opts.ca.file ? { caFile: opts.ca.file } : {}) },
    greeting: null,
    greetingCode: null,
    starttlsOffered: false,
    ehlo: { beforeTls: null, afterTls: null },
    auth: { beforeTls: null, afterTls: null },
    tls: Object.fromEntries(TLS_VERSIONS.map((v) => [v, { accepted: false }])) as Record<TlsVersionName, TlsVersionResult>,
    certificate: null,
    authResults: null,
    ...(opts.auth ? { authUser: opts.auth.user } : {}),
    notes: [],
  };
  const tlsOptions = (min: tls.SecureVersion, max: tls.SecureVersion): UpstreamTlsOptions => ({
    minVersion: min,
    maxVersion: max,
    // Verdicts on the certificate are reported, not enforced: the probe must see past a bad one.
    verify: false,
    ca: opts.ca.pem,
    servername,
    ciphers: WIDEST_CIPHERS,
  });

  // 1. The main connection.
  let serverName = servername;
  const main = await openGreeted(opts, report);
  try {
    if (opts.mode === 'implicit') {
      const ok = await handshake(main, tlsOptions('TLSv1', 'TLSv1.3'), report, servername, opts.ca.label);
      if (ok) {
        const greeting = await main.read();
        report.greeting = greeting.lines;
        report.greetingCode = greeting.code;
        const after = await ehlo(main, report);
        report.ehlo.afterTls = after?.lines ?? null;
        report.auth.afterTls = after ? authMechanisms(after.caps) : null;
        serverName = hostFromEhlo(after) ?? serverName;
      }
    } else {
      const before = await ehlo(main, report);
      report.ehlo.beforeTls = before?.lines ?? null;
      report.auth.beforeTls = before ? authMechanisms(before.caps) : null;
      report.starttlsOffered = before ? hasCap(before.caps, 'STARTTLS') : false;
      serverName = hostFromEhlo(before) ?? serverName;
      if (opts.mode === 'starttls' && report.starttlsOffered) {
        const go = await main.command('STARTTLS');
        if (go.code !== 220) report.notes.push(`STARTTLS answered ${go.code} ${go.lines.join(' ')}`);
        else if (await handshake(main, tlsOptions('TLSv1', 'TLSv1.3'), report, servername, opts.ca.label)) {
          const after = await ehlo(main, report);
          report.ehlo.afterTls = after?.lines ?? null;
          report.auth.afterTls = after ? authMechanisms(after.caps) : null;
        }
      }
    }
  } catch (err) {
    report.notes.push(`main connection: ${errorText(err)}`);
  } finally {
    await main.close();
  }

  // 2. One handshake per TLS version.
  for (const v of TLS_VERSIONS) {
    if (opts.mode === 'plain') report.tls[v] = { accepted: false, error: 'not tried (--plain)' };
    else if (opts.mode === 'starttls' && !report.starttlsOffered) report.tls[v] = { accepted: false, error: 'STARTTLS not offered' };
    else report.tls[v] = await versionProbe(opts, v, tlsOptions(v, v));
  }

  // 3. --auth: each offered mechanism on its own connection.
  if (opts.auth) {
    const gate = authGate(opts, report, tlsOptions('TLSv1', 'TLSv1.3'));
    report.authResults = await authProbes(opts, report, opts.auth, gate, serverName);
    if (gate.allowed && gate.warning && report.authResults.some((a) => a.tried)) report.authWarning = gate.warning;
  }

  return { ...report, ...analyse(report) };
}

async function openGreeted(opts: ProbeOptions, report: Partial): Promise<Dialogue> {
  let d: Dialogue;
  try {
    d = await Dialogue.open(opts.host, opts.port, opts.timeoutMs);
  } catch (err) {
    throw new UnreachableError(errorText(err));
  }
  if (opts.mode === 'implicit') return d;
  try {
    const greeting = await d.read();
    report.greeting = greeting.lines;
    report.greetingCode = greeting.code;
    return d;
  } catch (err) {
    await d.close();
    throw new UnreachableError(`${opts.host}:${opts.port} accepted the connection but sent no greeting: ${errorText(err)}`);
  }
}

async function ehlo(d: Dialogue, report: Partial): Promise<Ehlo | null> {
  const e = await d.ehlo(EHLO_NAME);
  if (e.reply.code === 250) return e;
  report.notes.push(`EHLO answered ${e.reply.code} ${e.reply.lines.join(' ')}`);
  return null;
}

/** The server's own name: the first word of the EHLO reply. */
function hostFromEhlo(e: Ehlo | null): string | undefined {
  const name = e?.reply.lines[0]?.split(' ')[0];
  return name && !net.isIP(name) && /^[A-Za-z0-9.-]+$/.test(name) ? name : undefined;
}

async function handshake(d: Dialogue, o: UpstreamTlsOptions, report: Partial, name: string, trustedBy: string): Promise<boolean> {
  try {
    const s = await d.startTls(o);
    report.certificate = certificateReport(s, name, trustedBy);
    return true;
  } catch (err) {
    report.notes.push(`TLS handshake with every version allowed failed: ${errorText(err)}`);
    return false;
  }
}

/** OpenSSL refused to build the ClientHello: the version is off on this machine, not refused by the server. */
function isLocalLimit(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  const text = errorText(err);
  return /NO_PROTOCOLS_AVAILABLE|NO_CIPHERS_AVAILABLE/.test(code) || /no protocols available|no ciphers available/i.test(text);
}

async function versionProbe(opts: ProbeOptions, v: TlsVersionName, o: UpstreamTlsOptions): Promise<TlsVersionResult> {
  let d: Dialogue;
  try {
    d = await Dialogue.open(opts.host, opts.port, opts.timeoutMs);
  } catch (err) {
    return { accepted: false, error: `not tested: ${errorText(err)}` };
  }
  try {
    if (opts.mode === 'starttls') {
      await d.read();
      await d.ehlo(EHLO_NAME);
      const go = await d.command('STARTTLS');
      if (go.code !== 220) return { accepted: false, error: `STARTTLS answered ${go.code} ${go.lines.join(' ')}` };
    }
    const s = await d.startTls(o);
    const cipher = s.getCipher()?.name;
    return { accepted: true, ...(cipher ? { cipher } : {}) };
  } catch (err) {
    return { accepted: false, error: errorText(err), ...(isLocalLimit(err) ? { localLimit: true } : {}) };
  } finally {
    await d.close();
  }
}

/** What stands between the certificate of the main connection and a password: [] when nothing does. */
function certificateProblems(report: Partial): { problems: string[]; fixes: string[] } {
  const c = report.certificate;
  if (!c) return { problems: ['no certificate was seen'], fixes: [] };
  const problems: string[] = [];
  const fixes: string[] = [];
  if (!c.verified) {
    problems.push(`certificate did not verify: ${c.verifyError ?? 'not trusted'}`);
    // Another trust store cannot cure an expired, not yet valid or revoked certificate.
    if (!c.expired && !c.notYetValid && !/REVOKED/.test(c.verifyError ?? '')) fixes.push('--ca FILE');
  }
  if (!c.hostnameMatch) {
    problems.push(`certificate does not name ${c.checkedName}`);
    fixes.push('--servername NAME');
  }
  return { problems, fixes };
}

/**
 * Whether --auth may send passwords, and with which TLS options. Over TLS the main connection's
 * certificate must have verified and named the server, as mailshim's own upstream login requires; each
 * auth connection is then verified again (verify: true), so a man in the middle of a later connection
 * gets nothing either. --insecure-auth lifts this, with a warning in the report. Without TLS the
 * existing rule holds: only with --plain.
 */
type AuthGate = { allowed: true; tls: UpstreamTlsOptions; warning?: string } | { allowed: false; reason: string };

function authGate(opts: ProbeOptions, report: Partial, widest: UpstreamTlsOptions): AuthGate {
  if (report.ehlo.afterTls === null) {
    return opts.mode === 'plain' ? { allowed: true, tls: widest } : { allowed: false, reason: 'the password would cross the network unencrypted (use --plain to allow)' };
  }
  const { problems, fixes } = certificateProblems(report);
  if (problems.length === 0) return { allowed: true, tls: { ...widest, verify: true } };
  if (opts.insecureAuth) {
    return {
      allowed: true,
      tls: widest,
      warning: `--insecure-auth: the password was sent over TLS that did not verify (${problems.join('; ')}); anyone between this machine and the server could have read it`,
    };
  }
  const fix = fixes.length > 0 ? `${fixes.join(' and ')}, or ` : '';
  return { allowed: false, reason: `${problems.join('; ')}; pass ${fix}--insecure-auth to try anyway` };
}

async function authProbes(opts: ProbeOptions, report: Partial, cred: Credentials, gate: AuthGate, serverName: string): Promise<AuthAttempt[]> {
  // With TLS available, mechanisms are tried only over TLS; without, only when the user asked for --plain.
  const overTls = report.ehlo.afterTls !== null;
  const offered = overTls ? report.auth.afterTls ?? [] : report.auth.beforeTls ?? [];
  const out: AuthAttempt[] = [];
  for (const mechanism of offered) {
    if (!canTry(mechanism)) out.push({ mechanism, tried: false, ok: false, overTls, reason: 'mailshim probe cannot try this mechanism' });
    else if (!gate.allowed) out.push({ mechanism, tried: false, ok: false, overTls, reason: gate.reason });
    else out.push(await authProbe(opts, mechanism, cred, gate.tls, serverName, overTls, overTls && !gate.tls.verify));
  }
  return out;
}

async function authProbe(
  opts: ProbeOptions,
  mechanism: string,
  cred: Credentials,
  o: UpstreamTlsOptions,
  serverName: string,
  overTls: boolean,
  unverified: boolean,
): Promise<AuthAttempt> {
  const notTried = (reason: string): AuthAttempt => ({ mechanism, tried: false, ok: false, overTls, reason });
  let d: Dialogue;
  try {
    d = await Dialogue.open(opts.host, opts.port, opts.timeoutMs);
  } catch (err) {
    return notTried(`could not connect: ${errorText(err)}`);
  }
  // Until the AUTH command goes out, a failure (a certificate that no longer verifies, say) means "not tried".
  let sent = false;
  const tried = (r: { ok: boolean; detail: string }): AuthAttempt => ({ mechanism, tried: true, overTls, ...r, ...(unverified ? { unverifiedTls: true as const } : {}) });
  try {
    if (opts.mode === 'implicit') await d.startTls(o);
    await d.read();
    await d.ehlo(EHLO_NAME);
    if (opts.mode === 'starttls') {
      const go = await d.command('STARTTLS');
      if (go.code !== 220) return notTried(`STARTTLS answered ${go.code}`);
      await d.startTls(o);
      await d.ehlo(EHLO_NAME);
    }
    sent = true;
    return tried(await tryMechanism(d, mechanism, cred, serverName));
  } catch (err) {
    return sent ? tried({ ok: false, detail: errorText(err) }) : notTried(errorText(err));
  } finally {
    await d.close();
  }
}
