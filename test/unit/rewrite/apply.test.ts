import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseEhlo, serializeEhlo } from '../../../src/protocol/capabilities.js';
import { ReplyParser } from '../../../src/protocol/reply-parser.js';
import { formatReply } from '../../../src/protocol/reply.js';
import { applyRules, setAuth, withCap, withoutKeywords } from '../../../src/rewrite/apply.js';
import { compileRules, describeRule, RuleError } from '../../../src/rewrite/rules.js';
import type { RuleConfig } from '../../../src/config/schema.js';
import type { EhloReply } from '../../../src/types.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/ehlo/${name}`, import.meta.url), 'latin1').replace(/\r?\n/g, '\r\n');
const ehlo = (name: string): EhloReply =>
  parseEhlo(new ReplyParser().push(Buffer.from(fixture(name), 'latin1'))[0]);

/** Run YAML-shaped rules on a fixture and return what the client would read. */
function rewrite(name: string, rules: RuleConfig[]) {
  const e = ehlo(name);
  const out = applyRules(e.caps, compileRules(rules));
  return { text: formatReply(serializeEhlo({ ...e, caps: out.caps })), changes: out.changes, input: e.caps, caps: out.caps };
}

const wire = (...lines: string[]) => lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('');

describe('the qmail that offers CRAM-MD5 it cannot do (FIELD-NOTES §2)', () => {
  it('remove-auth CRAM-MD5 leaves LOGIN and PLAIN, everything else untouched', () => {
    const r = rewrite('qmail.txt', [{ 'remove-auth': 'CRAM-MD5' }]);
    expect(r.text).toBe(wire('servidor', 'AUTH LOGIN PLAIN', 'STARTTLS', 'PIPELINING', 'SIZE 10485760', '8BITMIME'));
    expect(r.changes).toEqual([
      { rule: 'remove-auth', action: 'changed', before: 'AUTH LOGIN CRAM-MD5 PLAIN', after: 'AUTH LOGIN PLAIN' },
    ]);
  });

  it('matches the mechanism case-insensitively', () => {
    expect(rewrite('qmail.txt', [{ 'remove-auth': 'cram-md5' }]).text).toContain('250-AUTH LOGIN PLAIN\r\n');
  });

  it('add-auth-equals adds the legacy line right after AUTH when none exists', () => {
    const r = rewrite('qmail.txt', [{ 'remove-auth': 'CRAM-MD5' }, { 'add-auth-equals': true }]);
    expect(r.text).toBe(
      wire('servidor', 'AUTH LOGIN PLAIN', 'AUTH=LOGIN PLAIN', 'STARTTLS', 'PIPELINING', 'SIZE 10485760', '8BITMIME'),
    );
    expect(r.changes.map((c) => [c.rule, c.action, c.after])).toEqual([
      ['remove-auth', 'changed', 'AUTH LOGIN PLAIN'],
      ['add-auth-equals', 'added', 'AUTH=LOGIN PLAIN'],
    ]);
  });

  it('rule order matters: add-auth-equals first copies CRAM-MD5, then remove-auth cleans both lines', () => {
    const a = rewrite('qmail.txt', [{ 'add-auth-equals': true }, { 'remove-auth': 'CRAM-MD5' }]);
    expect(a.text).toBe(
      wire('servidor', 'AUTH LOGIN PLAIN', 'AUTH=LOGIN PLAIN', 'STARTTLS', 'PIPELINING', 'SIZE 10485760', '8BITMIME'),
    );
    expect(a.changes.map((c) => `${c.rule} ${c.action}`)).toEqual([
      'add-auth-equals added',
      'remove-auth changed',
      'remove-auth changed',
    ]);
    // remove AUTH then add-auth-equals: nothing left to copy, so no AUTH= line appears.
    const b = rewrite('qmail.txt', [{ remove: 'AUTH' }, { 'add-auth-equals': true }]);
    expect(b.text).toBe(wire('servidor', 'STARTTLS', 'PIPELINING', 'SIZE 10485760', '8BITMIME'));
    // add-auth-equals then remove AUTH: both lines go.
    const c = rewrite('qmail.txt', [{ 'add-auth-equals': true }, { remove: 'AUTH' }]);
    expect(c.text).toBe(b.text);
    expect(c.changes.map((x) => x.before ?? x.after)).toEqual([
      'AUTH=LOGIN CRAM-MD5 PLAIN',
      'AUTH LOGIN CRAM-MD5 PLAIN',
      'AUTH=LOGIN CRAM-MD5 PLAIN',
    ]);
  });
});

describe('the plala provider (FIELD-NOTES §1)', () => {
  it('remove-auth of every mechanism drops both AUTH lines', () => {
    const r = rewrite('plala.txt', [{ 'remove-auth': 'LOGIN' }, { 'remove-auth': 'PLAIN' }]);
    expect(r.text).toBe(wire('msc12.plala.or.jp', 'PIPELINING', 'DSN', '8BITMIME', 'SIZE 20971520'));
    expect(r.changes).toEqual([
      { rule: 'remove-auth', action: 'changed', before: 'AUTH=LOGIN PLAIN', after: 'AUTH=PLAIN' },
      { rule: 'remove-auth', action: 'changed', before: 'AUTH LOGIN PLAIN', after: 'AUTH PLAIN' },
      { rule: 'remove-auth', action: 'removed', before: 'AUTH=PLAIN' },
      { rule: 'remove-auth', action: 'removed', before: 'AUTH PLAIN' },
    ]);
  });

  it('remove AUTH drops the AUTH= line too; remove matches keywords case-insensitively', () => {
    const r = rewrite('plala.txt', [{ remove: 'auth' }, { remove: 'Dsn' }]);
    expect(r.text).toBe(wire('msc12.plala.or.jp', 'PIPELINING', '8BITMIME', 'SIZE 20971520'));
    expect(r.changes.map((c) => c.before)).toEqual(['AUTH=LOGIN PLAIN', 'AUTH LOGIN PLAIN', 'DSN']);
  });

  it('add-auth-equals does nothing when an identical AUTH= line exists (even before AUTH)', () => {
    const r = rewrite('plala.txt', [{ 'add-auth-equals': true }]);
    expect(r.caps).toBe(r.input);
    expect(r.changes).toEqual([]);
    expect(r.text).toBe(fixture('plala.txt'));
  });

  it('add-auth-equals replaces an AUTH= line that lists other mechanisms', () => {
    const e = ehlo('plala.txt');
    const caps = [{ keyword: 'AUTH', sep: '=' as const, params: ['CRAM-MD5'] }, ...e.caps.slice(1)];
    const out = applyRules(caps, [{ kind: 'add-auth-equals' }]);
    expect(formatReply(serializeEhlo({ ...e, caps: out.caps }))).toBe(
      wire('msc12.plala.or.jp', 'AUTH LOGIN PLAIN', 'AUTH=LOGIN PLAIN', 'PIPELINING', 'DSN', '8BITMIME', 'SIZE 20971520'),
    );
    expect(out.changes).toEqual([
      { rule: 'add-auth-equals', action: 'removed', before: 'AUTH=CRAM-MD5' },
      { rule: 'add-auth-equals', action: 'added', after: 'AUTH=LOGIN PLAIN' },
    ]);
  });

  it('add appends a new keyword and leaves an existing one alone (the upstream parameters win)', () => {
    const r = rewrite('plala.txt', [{ add: 'ENHANCEDSTATUSCODES' }, { add: 'SIZE 1000' }, { add: 'x-demo a b' }]);
    expect(r.text).toBe(
      wire('msc12.plala.or.jp', 'AUTH=LOGIN PLAIN', 'AUTH LOGIN PLAIN', 'PIPELINING', 'DSN', '8BITMIME', 'SIZE 20971520', 'ENHANCEDSTATUSCODES', 'X-DEMO a b'),
    );
    expect(r.changes).toEqual([
      { rule: 'add', action: 'added', after: 'ENHANCEDSTATUSCODES' },
      { rule: 'add', action: 'added', after: 'X-DEMO a b' },
    ]);
  });

  it('replace swaps the line in place; for AUTH one line replaces both', () => {
    const size = rewrite('plala.txt', [{ replace: { keyword: 'size', with: 'SIZE 10485760' } }]);
    expect(size.text).toBe(
      wire('msc12.plala.or.jp', 'AUTH=LOGIN PLAIN', 'AUTH LOGIN PLAIN', 'PIPELINING', 'DSN', '8BITMIME', 'SIZE 10485760'),
    );
    expect(size.changes).toEqual([{ rule: 'replace', action: 'replaced', before: 'SIZE 20971520', after: 'SIZE 10485760' }]);

    const auth = rewrite('plala.txt', [{ replace: { keyword: 'AUTH', with: 'AUTH PLAIN' } }]);
    expect(auth.text).toBe(wire('msc12.plala.or.jp', 'AUTH PLAIN', 'PIPELINING', 'DSN', '8BITMIME', 'SIZE 20971520'));
    expect(auth.changes.map((c) => c.action)).toEqual(['replaced', 'removed']);
  });

  it('replace of an absent keyword adds nothing', () => {
    const r = rewrite('plala.txt', [{ replace: { keyword: 'CHUNKING', with: 'CHUNKING' } }]);
    expect(r.caps).toBe(r.input);
  });
});

describe('identity when nothing changes', () => {
  it('returns the very same array and no changes', () => {
    for (const name of ['plala.txt', 'qmail.txt']) {
      const r = rewrite(name, [
        { remove: 'CHUNKING' },
        { 'remove-auth': 'DIGEST-MD5' },
        { add: 'PIPELINING' },
        { replace: { keyword: 'PIPELINING', with: 'pipelining' } },
      ]);
      expect(r.caps, name).toBe(r.input);
      expect(r.changes).toEqual([]);
      expect(r.text).toBe(fixture(name));
    }
    const e = ehlo('qmail.txt');
    expect(applyRules(e.caps, []).caps).toBe(e.caps);
  });

  it('never mutates its input', () => {
    const e = ehlo('qmail.txt');
    const before = structuredClone(e.caps);
    applyRules(e.caps, compileRules([{ 'remove-auth': 'CRAM-MD5' }, { 'add-auth-equals': true }, { remove: 'SIZE' }]));
    expect(e.caps).toEqual(before);
  });
});

describe('session helpers', () => {
  it('withoutKeywords drops the listed keywords, identity when none is present', () => {
    const caps = ehlo('qmail.txt').caps;
    expect(withoutKeywords(caps, ['starttls', 'CHUNKING']).map((c) => c.keyword)).toEqual([
      'AUTH',
      'PIPELINING',
      'SIZE',
      '8BITMIME',
    ]);
    expect(withoutKeywords(caps, ['CHUNKING'])).toBe(caps);
  });

  it('withCap appends a keyword once', () => {
    const caps = ehlo('plala.txt').caps;
    const withTls = withCap(caps, 'STARTTLS');
    expect(withTls.at(-1)).toEqual({ keyword: 'STARTTLS', sep: ' ', params: [] });
    expect(withCap(withTls, 'starttls')).toBe(withTls);
  });

  it('setAuth offers local mechanisms in both AUTH forms, in place', () => {
    const e = ehlo('plala.txt');
    const caps = setAuth(e.caps, ['CRAM-MD5', 'digest-md5', 'LOGIN', 'PLAIN']);
    expect(formatReply(serializeEhlo({ ...e, caps }))).toBe(
      wire(
        'msc12.plala.or.jp',
        'AUTH=CRAM-MD5 DIGEST-MD5 LOGIN PLAIN',
        'AUTH CRAM-MD5 DIGEST-MD5 LOGIN PLAIN',
        'PIPELINING',
        'DSN',
        '8BITMIME',
        'SIZE 20971520',
      ),
    );
    expect(setAuth(e.caps, ['login', 'PLAIN'])).toBe(e.caps);
  });

  it('setAuth adds an AUTH line when the upstream offers none, and null removes AUTH', () => {
    const e = ehlo('plala.txt');
    const none = setAuth(e.caps, null);
    expect(none.some((c) => c.keyword === 'AUTH')).toBe(false);
    expect(setAuth(none, ['PLAIN']).at(-1)).toEqual({ keyword: 'AUTH', sep: ' ', params: ['PLAIN'] });
    expect(setAuth(none, [])).toBe(none);
  });
});

describe('compileRules', () => {
  it('turns every YAML shape into a rule, names upper-cased', () => {
    expect(
      compileRules([
        { remove: 'chunking' },
        { 'remove-auth': 'cram-md5' },
        { 'add-auth-equals': true },
        { add: 'size 1000' },
        { replace: { keyword: 'size', with: 'size  2000' } },
      ]),
    ).toEqual([
      { kind: 'remove', keyword: 'CHUNKING' },
      { kind: 'remove-auth', mechanism: 'CRAM-MD5' },
      { kind: 'add-auth-equals' },
      { kind: 'add', keyword: 'SIZE', params: ['1000'] },
      { kind: 'replace', keyword: 'SIZE', with: 'SIZE 2000' },
    ]);
  });

  it('rejects names that cannot appear in an EHLO reply, saying which rule', () => {
    const bad = (r: RuleConfig, msg: RegExp) => {
      let err: unknown;
      try {
        compileRules([{ remove: 'DSN' }, r]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RuleError);
      expect((err as RuleError).index).toBe(1);
      expect((err as RuleError).message).toMatch(msg);
    };
    bad({ remove: 'AUTH LOGIN' }, /ehlo rule 2: .*not an EHLO keyword/);
    bad({ 'remove-auth': 'CRAM MD5' }, /not a SASL mechanism/);
    bad({ add: 'AUTH=LOGIN' }, /add-auth-equals/);
    bad({ replace: { keyword: 'SIZE', with: '-SIZE 1' } }, /not an EHLO keyword/);
  });

  it('describes rules in the YAML words', () => {
    expect(compileRules([{ 'remove-auth': 'CRAM-MD5' }, { add: 'X-A b' }]).map(describeRule)).toEqual([
      'remove-auth: CRAM-MD5',
      'add: X-A b',
    ]);
  });
});
