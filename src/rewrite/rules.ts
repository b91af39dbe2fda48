// Turn the `ehlo:` rules of a listener's YAML into CapabilityRule values, validated once at startup.
import type { RuleConfig } from '../config/schema.js';
import type { CapabilityRule } from '../types.js';
import { formatCapability, parseCapability } from '../protocol/capabilities.js';

/** A rule that parses as YAML but cannot be applied; `index` is its position in the `ehlo:` list. */
export class RuleError extends Error {
  override readonly name = 'RuleError';
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(`ehlo rule ${index + 1}: ${message}`);
  }
}

// RFC 5321 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// RFC 4422 3.1: sasl-mech = 1*20mech-char, mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE
// (lower case accepted here and upper-cased, since names are compared case-insensitively).
const MECHANISM = /^[A-Za-z0-9_-]{1,20}$/;

function keyword(index: number, text: string): string {
  const k = text.trim();
  if (!KEYWORD.test(k)) throw new RuleError(index, `"${text}" is not an EHLO keyword (letters, digits, -)`);
  return k.toUpperCase();
}

/** Parse "KEYWORD params" and check the keyword; returns the normalised line. */
function capabilityLine(index: number, text: string) {
  const cap = parseCapability(text.trim());
  keyword(index, cap.keyword);
  return cap;
}

export function compileRules(config: readonly RuleConfig[]): CapabilityRule[] {
  return config.map((r, index): CapabilityRule => {
    if ('remove' in r) return { kind: 'remove', keyword: keyword(index, r.remove) };
    if ('remove-auth' in r) {
      const m = r['remove-auth'].trim();
      if (!MECHANISM.test(m)) throw new RuleError(index, `"${r['remove-auth']}" is not a SASL mechanism name`);
      return { kind: 'remove-auth', mechanism: m.toUpperCase() };
    }
    if ('add-auth-equals' in r) return { kind: 'add-auth-equals' };
    if ('add' in r) {
      const cap = capabilityLine(index, r.add);
      // CapabilityRule 'add' has no separator; the legacy AUTH= line has its own rule.
      if (cap.sep === '=') throw new RuleError(index, `"${r.add}": use add-auth-equals for the AUTH= form`);
      return { kind: 'add', keyword: cap.keyword, params: cap.params };
    }
    if ('replace' in r) {
      const cap = capabilityLine(index, r.replace.with);
      return { kind: 'replace', keyword: keyword(index, r.replace.keyword), with: formatCapability(cap) };
    }
    const never: never = r;
    throw new RuleError(index, `unknown rule ${JSON.stringify(never)}`);
  });
}

/** One line for logs and transcripts, in the YAML's own words: `remove-auth: CRAM-MD5`. */
export function describeRule(rule: CapabilityRule): string {
  switch (rule.kind) {
    case 'remove':
      return `remove: ${rule.keyword}`;
    case 'remove-auth':
      return `remove-auth: ${rule.mechanism}`;
    case 'add-auth-equals':
      return 'add-auth-equals: true';
    case 'add':
      return `add: ${[rule.keyword, ...rule.params].join(' ')}`;
    case 'replace':
      return `replace: ${rule.keyword} with ${rule.with}`;
  }
}
