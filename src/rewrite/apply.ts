// Apply EHLO rewrite rules to a capability list: pure and in order; returns the new list and what changed.
// Nothing is mutated. When nothing changes the very same array comes back, so callers can relay the
// upstream's reply untouched with a cheap `result.caps === caps` test.
import type { Capability, CapabilityChange, CapabilityRule } from '../types.js';
import { formatCapability, parseCapability, sameKeyword } from '../protocol/capabilities.js';

type Changes = CapabilityChange[];

const isAuth = (c: Capability) => sameKeyword(c, 'AUTH');
const mechKey = (params: readonly string[]) => params.map((p) => p.toUpperCase()).join(' ');

/** Drop every line with the keyword (for AUTH that includes the AUTH= line). */
function remove(caps: Capability[], keyword: string, changes: Changes): Capability[] {
  const out = caps.filter((c) => !sameKeyword(c, keyword));
  if (out.length === caps.length) return caps;
  for (const c of caps) {
    if (sameKeyword(c, keyword)) changes.push({ rule: 'remove', action: 'removed', before: formatCapability(c) });
  }
  return out;
}

/** Drop a mechanism from the AUTH and AUTH= lines; a line left with no mechanism goes too. */
function removeAuth(caps: Capability[], mechanism: string, changes: Changes): Capability[] {
  const mech = mechanism.toUpperCase();
  let changed = false;
  const out: Capability[] = [];
  for (const c of caps) {
    if (!isAuth(c)) {
      out.push(c);
      continue;
    }
    const params = c.params.filter((p) => p.toUpperCase() !== mech);
    if (params.length === c.params.length) {
      out.push(c);
      continue;
    }
    changed = true;
    if (params.length === 0) {
      changes.push({ rule: 'remove-auth', action: 'removed', before: formatCapability(c) });
    } else {
      const next: Capability = { ...c, params };
      out.push(next);
      changes.push({ rule: 'remove-auth', action: 'changed', before: formatCapability(c), after: formatCapability(next) });
    }
  }
  return changed ? out : caps;
}

/**
 * Put `AUTH=<mechs>` (for Outlook Express 4/5, Netscape 4.0x) right after the first `AUTH <mechs>` line.
 * An identical AUTH= line already present means nothing to do; a different one is dropped, because an old
 * client reads only that line and would pick a mechanism the standard line no longer offers.
 */
function addAuthEquals(caps: Capability[], changes: Changes): Capability[] {
  const at = caps.findIndex((c) => isAuth(c) && c.sep === ' ');
  if (at === -1 || caps[at].params.length === 0) return caps;
  const mechs = caps[at].params;
  const key = mechKey(mechs);
  if (caps.some((c) => isAuth(c) && c.sep === '=' && mechKey(c.params) === key)) return caps;
  const legacy: Capability = { keyword: 'AUTH', sep: '=', params: [...mechs] };
  const out: Capability[] = [];
  caps.forEach((c, i) => {
    if (isAuth(c) && c.sep === '=') {
      changes.push({ rule: 'add-auth-equals', action: 'removed', before: formatCapability(c) });
      return;
    }
    out.push(c);
    if (i === at) {
      out.push(legacy);
      changes.push({ rule: 'add-auth-equals', action: 'added', after: formatCapability(legacy) });
    }
  });
  return out;
}

/** Append a line unless the keyword is already offered: the upstream's own parameters win (e.g. SIZE). */
function add(caps: Capability[], keyword: string, params: string[], changes: Changes): Capability[] {
  if (caps.some((c) => sameKeyword(c, keyword))) return caps;
  const cap: Capability = { keyword: keyword.toUpperCase(), sep: ' ', params: [...params] };
  changes.push({ rule: 'add', action: 'added', after: formatCapability(cap) });
  return [...caps, cap];
}

/**
 * Swap the keyword's line for the given one, at the position of its first line. Further lines with the
 * keyword (AUTH and AUTH=) are dropped so the client is not offered two different lists. An absent keyword
 * is left absent: `replace` never adds.
 */
function replace(caps: Capability[], keyword: string, withText: string, changes: Changes): Capability[] {
  const first = caps.findIndex((c) => sameKeyword(c, keyword));
  if (first === -1) return caps;
  const next = parseCapability(withText.trim());
  const after = formatCapability(next);
  const count = caps.filter((c) => sameKeyword(c, keyword)).length;
  if (count === 1 && formatCapability(caps[first]) === after) return caps;
  const out: Capability[] = [];
  caps.forEach((c, i) => {
    if (!sameKeyword(c, keyword)) {
      out.push(c);
    } else if (i === first) {
      out.push(next);
      const before = formatCapability(c);
      if (before !== after) changes.push({ rule: 'replace', action: 'replaced', before, after });
    } else {
      changes.push({ rule: 'replace', action: 'removed', before: formatCapability(c) });
    }
  });
  return out;
}

function applyRule(caps: Capability[], rule: CapabilityRule, changes: Changes): Capability[] {
  switch (rule.kind) {
    case 'remove':
      return remove(caps, rule.keyword, changes);
    case 'remove-auth':
      return removeAuth(caps, rule.mechanism, changes);
    case 'add-auth-equals':
      return addAuthEquals(caps, changes);
    case 'add':
      return add(caps, rule.keyword, rule.params, changes);
    case 'replace':
      return replace(caps, rule.keyword, rule.with, changes);
  }
}

export function applyRules(
  caps: Capability[],
  rules: readonly CapabilityRule[],
): { caps: Capability[]; changes: CapabilityChange[] } {
  const changes: Changes = [];
  let current = caps;
  for (const rule of rules) current = applyRule(current, rule, changes);
  return { caps: changes.length === 0 ? caps : current, changes };
}

// Helpers for the session's own edits (not configured rules): same contract, the input array comes back
// when nothing changes.

/** Drop every line whose keyword is listed (e.g. the upstream's STARTTLS and CHUNKING). */
export function withoutKeywords(caps: Capability[], keywords: readonly string[]): Capability[] {
  const drop = new Set(keywords.map((k) => k.toUpperCase()));
  const out = caps.filter((c) => !drop.has(c.keyword.toUpperCase()));
  return out.length === caps.length ? caps : out;
}

/** Append a capability (a Capability or a "KEYWORD params" line) unless its keyword is already there. */
export function withCap(caps: Capability[], cap: Capability | string): Capability[] {
  const c = typeof cap === 'string' ? parseCapability(cap.trim()) : cap;
  return caps.some((x) => sameKeyword(x, c.keyword)) ? caps : [...caps, c];
}

/**
 * Offer exactly these AUTH mechanisms (e.g. the local ones in `auth.mode: local`). Existing AUTH and
 * AUTH= lines keep their place and form and get the new list; with no AUTH line one is appended.
 * `null` or an empty list removes AUTH entirely (RFC 4954 requires at least one mechanism).
 */
export function setAuth(caps: Capability[], mechs: readonly string[] | null): Capability[] {
  if (mechs === null || mechs.length === 0) return withoutKeywords(caps, ['AUTH']);
  const params = [...new Set(mechs.map((m) => m.toUpperCase()))];
  if (!caps.some(isAuth)) return [...caps, { keyword: 'AUTH', sep: ' ', params }];
  let changed = false;
  const out = caps.map((c) => {
    if (!isAuth(c)) return c;
    if (c.keyword === 'AUTH' && c.params.join(' ') === params.join(' ')) return c;
    changed = true;
    return { keyword: 'AUTH', sep: c.sep, params: [...params] };
  });
  return changed ? out : caps;
}
