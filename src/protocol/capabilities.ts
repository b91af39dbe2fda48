// EHLO replies as data (Haraka's habit): parse into Capability[] and serialise back. Pure.
import type { Capability, EhloReply, SmtpReply } from '../types.js';

/**
 * Parse one capability line: the keyword ends at the first space or '=' (the legacy `AUTH=LOGIN PLAIN`
 * form). The keyword is upper-cased (EHLO keywords are case-insensitive, RFC 5321 2.4); parameters keep
 * their case. Runs of spaces between parameters collapse to one on output.
 */
export function parseCapability(line: string): Capability {
  const m = /[ =]/.exec(line);
  if (!m) return { keyword: line.toUpperCase(), params: [], sep: ' ' };
  const rest = line.slice(m.index + 1);
  return {
    keyword: line.slice(0, m.index).toUpperCase(),
    params: rest.split(' ').filter((p) => p !== ''),
    sep: m[0] as ' ' | '=',
  };
}

/** `AUTH LOGIN PLAIN`, `AUTH=LOGIN PLAIN`, `SIZE 20971520`, `PIPELINING`. */
export function formatCapability(cap: Capability): string {
  if (cap.params.length === 0) return cap.sep === '=' ? `${cap.keyword}=` : cap.keyword;
  return `${cap.keyword}${cap.sep}${cap.params.join(' ')}`;
}

/** First line = domain and greeting text; every further line = one capability. */
export function parseEhlo(r: SmtpReply): EhloReply {
  return {
    code: r.code,
    greeting: r.lines[0] ?? '',
    caps: r.lines.slice(1).map(parseCapability),
  };
}

export function serializeEhlo(e: EhloReply): SmtpReply {
  return { code: e.code, lines: [e.greeting, ...e.caps.map(formatCapability)] };
}

export function sameKeyword(cap: Capability, keyword: string): boolean {
  return cap.keyword.toUpperCase() === keyword.toUpperCase();
}

export function hasCap(caps: readonly Capability[], keyword: string): boolean {
  return caps.some((c) => sameKeyword(c, keyword));
}

/** Mechanisms offered by the `AUTH` and `AUTH=` lines together: upper-cased, first-seen order, no duplicates. */
export function authMechanisms(caps: readonly Capability[]): string[] {
  const seen = new Set<string>();
  for (const c of caps) {
    if (!sameKeyword(c, 'AUTH')) continue;
    for (const p of c.params) seen.add(p.toUpperCase());
  }
  return [...seen];
}
