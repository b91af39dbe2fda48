// What a probe means for a legacy device (findings, a one-paragraph verdict, a mailshim config that
// bridges the gap) and the text rendering of the report. Pure: data in, strings out.
import { TLS_VERSIONS, type ProbeReport, type TlsVersionName } from './types.js';

type Facts = Omit<ProbeReport, 'findings' | 'verdict' | 'suggestedConfig'>;

const NICE: Record<TlsVersionName, string> = { TLSv1: 'TLS 1.0', 'TLSv1.1': 'TLS 1.1', 'TLSv1.2': 'TLS 1.2', 'TLSv1.3': 'TLS 1.3' };

/** Mechanisms a client sees when it is about to authenticate: after TLS when there is TLS. */
function offeredMechanisms(r: Facts): string[] | null {
  return r.auth.afterTls ?? r.auth.beforeTls;
}

function tlsWord(r: Facts): string {
  return r.target.mode === 'implicit' ? 'implicit TLS' : 'STARTTLS';
}

function refusedReason(r: Facts, v: TlsVersionName): string {
  const e = r.tls[v].error ?? '';
  // "TLS alert protocol_version (ERR_...)" -> "TLS alert protocol_version"
  return e.replace(/ \(ERR_[A-Z0-9_]+\)$/, '');
}

function lowestAccepted(r: Facts): TlsVersionName | undefined {
  return TLS_VERSIONS.find((v) => r.tls[v].accepted);
}

/** Whether the TLS side was tested at all (plain mode and a server without STARTTLS were not). */
function tlsTested(r: Facts): boolean {
  return r.target.mode === 'implicit' || (r.target.mode === 'starttls' && r.starttlsOffered);
}

export function analyse(r: Facts): { findings: string[]; verdict: string; suggestedConfig: string } {
  const findings: string[] = [];
  const short: string[] = [];
  const word = tlsWord(r);
  let tlsGap = false;

  if (r.target.mode === 'starttls' && !r.starttlsOffered) {
    tlsGap = true;
    short.push('the server does not offer STARTTLS');
    findings.push('The server does not offer STARTTLS: a device set to STARTTLS ("TLS") cannot connect, and one set to "none" sends its password unencrypted.');
  } else if (tlsTested(r)) {
    const low = lowestAccepted(r);
    const legacyRefused = (['TLSv1', 'TLSv1.1'] as const).filter((v) => !r.tls[v].accepted && !r.tls[v].localLimit);
    if (!low) {
      tlsGap = true;
      short.push(`no TLS version works with ${word} here`);
      findings.push(`No TLS handshake succeeded with ${word} (TLS 1.0: ${refusedReason(r, 'TLSv1') || 'refused'}).`);
    } else {
      if (legacyRefused.includes('TLSv1')) {
        tlsGap = true;
        short.push(`a TLS 1.0-only client cannot use ${word} here`);
        const also = legacyRefused.includes('TLSv1.1') ? ', nor can a TLS 1.1 one' : '';
        findings.push(`A TLS 1.0-only client cannot use ${word} here${also} (${refusedReason(r, 'TLSv1')}). The oldest version the server accepts is ${NICE[low]}.`);
      } else if (r.tls.TLSv1.accepted) {
        findings.push(`TLS 1.0 clients can use ${word} here (cipher ${r.tls.TLSv1.cipher ?? 'unknown'}).`);
      }
      for (const v of TLS_VERSIONS) {
        if (r.tls[v].localLimit) findings.push(`This machine's OpenSSL cannot offer ${NICE[v]}, so the server was not asked about it.`);
      }
    }
  }

  const mechs = offeredMechanisms(r);
  if (mechs === null || mechs.length === 0) {
    short.push('no AUTH is offered');
    findings.push('The server offers no AUTH mechanism (it may be a relay that trusts client addresses).');
  } else {
    const legacy = ['CRAM-MD5', 'DIGEST-MD5'].filter((m) => !mechs.includes(m));
    if (!mechs.includes('CRAM-MD5')) short.push('CRAM-MD5 is not offered');
    if (legacy.length > 0) findings.push(`${legacy.join(' and ')} ${legacy.length > 1 ? 'are' : 'is'} not offered (mechanisms: ${mechs.join(' ')}).`);
    if (r.target.mode === 'starttls' && r.auth.afterTls !== null && (r.auth.beforeTls ?? []).length === 0 && r.auth.afterTls.length > 0) {
      findings.push('AUTH is offered only after STARTTLS.');
    }
    const clear = (r.auth.beforeTls ?? []).filter((m) => m === 'PLAIN' || m === 'LOGIN');
    if (clear.length > 0) findings.push(`${clear.join(' and ')} ${clear.length > 1 ? 'are' : 'is'} offered before TLS: a device set to "none" sends its password readable on the network.`);
  }

  const cert = r.certificate;
  if (cert) {
    if (!cert.verified) {
      const why = cert.expired ? `it expired on ${cert.chain[0]?.validTo.slice(0, 10)}` : (cert.verifyError ?? 'not trusted');
      short.push(`its certificate does not verify (${why})`);
      findings.push(`The certificate does not verify against ${cert.trustedBy}: ${cert.verifyError ?? 'not trusted'}. Devices that check certificates will refuse it, and mailshim will too unless given tls.ca (or verify: false).`);
    }
    if (!cert.hostnameMatch) {
      findings.push(`The certificate does not name ${cert.checkedName}: ${cert.hostnameError ?? ''}`.trim());
    }
  } else if (tlsTested(r) && lowestAccepted(r)) {
    findings.push('No certificate was seen (the handshake with every version allowed failed).');
  }

  if (r.authResults) {
    const ok = r.authResults.filter((a) => a.ok).map((a) => a.mechanism);
    const bad = r.authResults.flatMap((a) => (a.tried && !a.ok ? [`${a.mechanism} failed (${a.detail})`] : []));
    const reasons = [...new Set(r.authResults.flatMap((a) => (a.tried ? [] : [a.reason])))];
    if (r.authResults.some((a) => a.tried)) {
      findings.push(
        `Logging in as the given user: ${ok.length > 0 ? `${ok.join(', ')} succeeded` : 'no mechanism succeeded'}` +
          (bad.length > 0 ? `; ${bad.join('; ')}` : '') +
          '.',
      );
    } else if (reasons.length > 0) {
      // Not "no mechanism succeeded": the server was never asked.
      findings.push(`Logging in as the given user was not tried: ${reasons.join('; ')}.`);
    }
    if (r.authWarning) findings.push(`The password was sent over TLS that did not verify (--insecure-auth).`);
  }

  const authGap = mechs !== null && mechs.length > 0 && !mechs.includes('CRAM-MD5');
  let advice: string;
  if (tlsGap || authGap) {
    const parts = ['tls.minVersion TLSv1'];
    parts.push(authGap ? 'auth.mode local' : 'auth.mode passthrough');
    advice = `route it through a mailshim listener with ${parts.join(' and ')}`;
  } else if (cert && !cert.verified) {
    advice = 'a device that does not check certificates can use it directly; one that does needs a mailshim listener in front';
  } else {
    advice = 'a legacy client with TLS 1.0 and CRAM-MD5 can use this server directly';
  }
  short.push(advice);
  const sentence = short.join('; ');
  const verdict = sentence.charAt(0).toUpperCase() + sentence.slice(1) + '.';
  return { findings, verdict, suggestedConfig: suggestConfig(r, authGap) };
}

const q = (s: string) => JSON.stringify(s);

/** The server already suits a TLS 1.0 device: it takes TLS 1.0 with a certificate that verifies. */
function fine(r: Facts): boolean {
  return tlsTested(r) && r.tls.TLSv1.accepted && r.certificate !== null && r.certificate.verified;
}

/** A config for a mailshim in front of this server, for a device that speaks TLS 1.0 and CRAM-MD5. */
export function suggestConfig(r: Facts, authLocal: boolean): string {
  const t = r.target;
  const low = lowestAccepted(r);
  const upTlsMode = t.mode === 'implicit' ? 'implicit' : t.mode === 'starttls' && r.starttlsOffered && low ? 'starttls' : 'none';
  // Upstream: the newest floor the server allows, never below what it accepts.
  const upMin: TlsVersionName = r.tls['TLSv1.2'].accepted || r.tls['TLSv1.3'].accepted ? (r.tls['TLSv1.2'].accepted ? 'TLSv1.2' : 'TLSv1.3') : (low ?? 'TLSv1.2');
  const mechs = offeredMechanisms(r) ?? [];
  const lines = [
    ...(authLocal || !fine(r) ? [] : ['# Not needed for a TLS 1.0 / CRAM-MD5 device (see the verdict); shown for reference.']),
    `# Suggested by mailshim probe for ${t.host}:${t.port}. Set DEVICE_PASSWORD and UPSTREAM_PASSWORD in the`,
    '# environment, put the listener certificate in tls/, and narrow clients.allow to the device network.',
    'listeners:',
    '  - name: legacy',
    '    listen: 0.0.0.0:587',
    '    tls: { mode: starttls, cert: tls/cert.pem, key: tls/key.pem, minVersion: TLSv1, ciphers: "DEFAULT:@SECLEVEL=0" }',
    '    clients: { allow: [192.168.0.0/16] }',
    '    upstream: probed',
    '    auth:',
  ];
  if (authLocal) {
    lines.push(
      '      mode: local',
      '      mechanisms: [CRAM-MD5, DIGEST-MD5, LOGIN, PLAIN]',
      '      users:',
      '        - { name: device, password: "${DEVICE_PASSWORD}", upstreamAccount: main }',
    );
  } else {
    lines.push('      mode: passthrough');
  }
  lines.push('upstreams:', '  probed:', `    host: ${q(t.host)}`, `    port: ${t.port}`);
  const tlsParts = [`mode: ${upTlsMode}`];
  if (upTlsMode !== 'none') {
    tlsParts.push(`minVersion: ${upMin}`, 'verify: true');
    if (t.caFile) tlsParts.push(`ca: ${q(t.caFile)}`);
    if (t.servername !== t.host) tlsParts.push(`servername: ${q(t.servername)}`);
    if (upMin === 'TLSv1' || upMin === 'TLSv1.1') tlsParts.push('ciphers: "DEFAULT:@SECLEVEL=0"');
  }
  if (r.certificate && !r.certificate.verified) {
    lines.push(`    # the certificate did not verify (${r.certificate.verifyError ?? 'untrusted'}): give tls.ca, or verify: false only on a trusted network`);
  }
  lines.push(`    tls: { ${tlsParts.join(', ')} }`);
  if (authLocal) {
    lines.push('    accounts:', `      main: { user: ${q(r.authUser ?? 'you@example.net')}, password: "\${UPSTREAM_PASSWORD}" }`);
    if (!mechs.includes('PLAIN') && mechs.includes('LOGIN')) lines.push('    auth: { mechanism: LOGIN }');
    if (upTlsMode === 'none') lines.push('    allowAuthWithoutVerifiedTls: true   # the server offers no TLS');
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------------
// Text rendering

function section(title: string, body: string[]): string[] {
  return [title, ...body.map((l) => `  ${l}`), ''];
}

export function renderText(r: ProbeReport): string {
  const t = r.target;
  const modeText = { starttls: 'STARTTLS', implicit: 'implicit TLS', plain: 'no TLS (--plain)' }[t.mode];
  const out: string[] = [`mailshim probe ${t.host}:${t.port} (${modeText}, server name ${t.servername})`, ''];

  out.push(...section('Greeting', r.greeting ? r.greeting.map((l, i) => `${r.greetingCode}${i === r.greeting!.length - 1 ? ' ' : '-'}${l}`) : ['(none)']));
  if (t.mode !== 'implicit') out.push(...section('EHLO before TLS', r.ehlo.beforeTls ?? ['(no EHLO reply)']));

  const width = Math.max(...TLS_VERSIONS.map((v) => v.length));
  out.push(
    ...section(
      'TLS versions (one handshake each, pinned to the version, widest cipher list)',
      TLS_VERSIONS.map((v) => {
        const x = r.tls[v];
        return x.accepted ? `${v.padEnd(width)}  accepted  ${x.cipher ?? ''}`.trimEnd() : `${v.padEnd(width)}  refused   ${x.error ?? ''}`.trimEnd();
      }),
    ),
  );

  const c = r.certificate;
  if (c) {
    const body: string[] = [];
    c.chain.forEach((x, i) => {
      body.push(`[${i}] subject  ${x.subject}`, `    issuer   ${x.issuer}`);
      if (x.subjectAltNames.length > 0) body.push(`    SANs     ${x.subjectAltNames.join(', ')}`);
      body.push(`    valid    ${x.validFrom} .. ${x.validTo}`, `    sha256   ${x.fingerprint256}`);
    });
    body.push(
      `verifies: ${c.verified ? 'yes' : `NO (${c.verifyError ?? 'untrusted'})`} against ${c.trustedBy}`,
      `expired:  ${c.expired ? 'YES' : c.notYetValid ? 'not yet valid' : 'no'}`,
      `name:     ${c.hostnameMatch ? `matches ${c.checkedName}` : `does NOT match ${c.checkedName}`}`,
    );
    out.push(...section(`Certificate (seen with ${c.protocol ?? '?'}, ${c.cipher ?? '?'})`, body));
  } else if (t.mode !== 'plain') {
    out.push(...section('Certificate', ['(none seen)']));
  }

  if (t.mode !== 'plain') out.push(...section('EHLO after TLS', r.ehlo.afterTls ?? ['(not reached)']));

  const mechText = (m: string[] | null) => (m === null ? '(not reached)' : m.length === 0 ? '(none)' : m.join(' '));
  const authBody = t.mode === 'implicit' ? [`after TLS:  ${mechText(r.auth.afterTls)}`] : [`before TLS: ${mechText(r.auth.beforeTls)}`];
  if (t.mode === 'starttls') authBody.push(`after TLS:  ${mechText(r.auth.afterTls)}`);
  out.push(...section('AUTH mechanisms', authBody));

  if (r.authResults) {
    const w = Math.max(10, ...r.authResults.map((a) => a.mechanism.length));
    out.push(
      ...section(
        `AUTH as ${JSON.stringify(r.authUser ?? '')} (one connection per mechanism)`,
        [
          ...(r.authWarning ? [`WARNING: ${r.authWarning}`] : []),
          ...(r.authResults.length === 0
            ? ['(nothing offered to try)']
            : r.authResults.map((a) => `${a.mechanism.padEnd(w)}  ${a.tried ? (a.ok ? 'ok     ' : 'FAILED ') : 'skipped'}  ${a.tried ? a.detail : a.reason}`)),
        ],
      ),
    );
  }

  if (r.notes.length > 0) out.push(...section('Notes', r.notes));
  out.push(...section('Verdict', [r.verdict, ...r.findings.map((f) => `- ${f}`)]));
  out.push('Suggested mailshim config (check it with: mailshim check-config --config FILE)', '', r.suggestedConfig);
  return out.join('\n');
}
