import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  authMechanisms,
  formatCapability,
  hasCap,
  parseCapability,
  parseEhlo,
  serializeEhlo,
} from '../../../src/protocol/capabilities.js';
import { ReplyParser } from '../../../src/protocol/reply-parser.js';
import { formatReply } from '../../../src/protocol/reply.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/ehlo/${name}`, import.meta.url), 'latin1').replace(/\r?\n/g, '\r\n');
const ehlo = (name: string) => parseEhlo(new ReplyParser().push(Buffer.from(fixture(name), 'latin1'))[0]);

describe('parseEhlo', () => {
  it('splits the plala reply into greeting and capabilities, AUTH= kept apart from AUTH', () => {
    expect(ehlo('plala.txt')).toEqual({
      code: 250,
      greeting: 'msc12.plala.or.jp',
      caps: [
        { keyword: 'AUTH', sep: '=', params: ['LOGIN', 'PLAIN'] },
        { keyword: 'AUTH', sep: ' ', params: ['LOGIN', 'PLAIN'] },
        { keyword: 'PIPELINING', sep: ' ', params: [] },
        { keyword: 'DSN', sep: ' ', params: [] },
        { keyword: '8BITMIME', sep: ' ', params: [] },
        { keyword: 'SIZE', sep: ' ', params: ['20971520'] },
      ],
    });
  });

  it('serialises both fixtures back to the exact bytes received', () => {
    for (const name of ['plala.txt', 'qmail.txt']) {
      expect(formatReply(serializeEhlo(ehlo(name))), name).toBe(fixture(name));
    }
  });

  it('treats a one-line reply (no extensions) as a greeting with no capabilities', () => {
    expect(parseEhlo({ code: 250, lines: ['mx.example Hello'] })).toEqual({ code: 250, greeting: 'mx.example Hello', caps: [] });
  });

  it('upper-cases keywords but keeps parameter case', () => {
    expect(parseCapability('auth=login Plain')).toEqual({ keyword: 'AUTH', sep: '=', params: ['login', 'Plain'] });
    expect(parseCapability('x-foo a=b')).toEqual({ keyword: 'X-FOO', sep: ' ', params: ['a=b'] });
    expect(parseCapability('AUTH')).toEqual({ keyword: 'AUTH', sep: ' ', params: [] });
  });

  it('formats capabilities in both forms', () => {
    expect(formatCapability({ keyword: 'AUTH', sep: '=', params: ['LOGIN', 'PLAIN'] })).toBe('AUTH=LOGIN PLAIN');
    expect(formatCapability({ keyword: 'SIZE', sep: ' ', params: ['1'] })).toBe('SIZE 1');
    expect(formatCapability({ keyword: 'DSN', sep: ' ', params: [] })).toBe('DSN');
  });
});

describe('authMechanisms and hasCap', () => {
  it('lists the union of AUTH and AUTH= in first-seen order, upper-cased, without duplicates', () => {
    expect(authMechanisms(ehlo('plala.txt').caps)).toEqual(['LOGIN', 'PLAIN']);
    expect(authMechanisms(ehlo('qmail.txt').caps)).toEqual(['LOGIN', 'CRAM-MD5', 'PLAIN']);
    expect(authMechanisms([parseCapability('AUTH=login'), parseCapability('AUTH PLAIN LOGIN xoauth2')])).toEqual([
      'LOGIN',
      'PLAIN',
      'XOAUTH2',
    ]);
    expect(authMechanisms([parseCapability('PIPELINING')])).toEqual([]);
  });

  it('finds keywords case-insensitively', () => {
    const caps = ehlo('qmail.txt').caps;
    expect(hasCap(caps, 'starttls')).toBe(true);
    expect(hasCap(caps, 'CHUNKING')).toBe(false);
    expect(hasCap(ehlo('plala.txt').caps, 'STARTTLS')).toBe(false);
  });
});
