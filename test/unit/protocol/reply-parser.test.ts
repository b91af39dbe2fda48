import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ReplyParseError, ReplyParser } from '../../../src/protocol/reply-parser.js';
import {
  encodeReply,
  enhancedCode,
  formatReply,
  isCompletion,
  isIntermediate,
  isPermanent,
  isPositive,
  isTransient,
  reply,
  replyClass,
} from '../../../src/protocol/reply.js';
import * as replies from '../../../src/protocol/replies.js';
import type { SmtpReply } from '../../../src/types.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/ehlo/${name}`, import.meta.url), 'latin1').replace(/\r?\n/g, '\r\n');

const PLALA_LINES = [
  'msc12.plala.or.jp',
  'AUTH=LOGIN PLAIN',
  'AUTH LOGIN PLAIN',
  'PIPELINING',
  'DSN',
  '8BITMIME',
  'SIZE 20971520',
];

function parseAll(...chunks: (string | Buffer)[]): SmtpReply[] {
  const p = new ReplyParser();
  return chunks.flatMap((c) => p.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c));
}

describe('ReplyParser', () => {
  it('parses the plala EHLO reply into one reply with its seven lines', () => {
    expect(parseAll(fixture('plala.txt'))).toEqual([{ code: 250, lines: PLALA_LINES }]);
  });

  it('gives the same reply for every split position of the chunk', () => {
    const bytes = Buffer.from(fixture('plala.txt'), 'latin1');
    for (let i = 0; i <= bytes.length; i++) {
      const p = new ReplyParser();
      const first = p.push(bytes.subarray(0, i));
      // Nothing is complete until the final CRLF has arrived.
      expect(first, `split at ${i}`).toEqual(i === bytes.length ? [{ code: 250, lines: PLALA_LINES }] : []);
      const second = p.push(bytes.subarray(i));
      expect([...first, ...second], `split at ${i}`).toEqual([{ code: 250, lines: PLALA_LINES }]);
      expect(p.hasPartial()).toBe(false);
    }
  });

  it('survives one byte per chunk', () => {
    const bytes = Buffer.from(fixture('qmail.txt'), 'latin1');
    const p = new ReplyParser();
    const out: SmtpReply[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...p.push(bytes.subarray(i, i + 1)));
    expect(out).toHaveLength(1);
    expect(out[0].lines[1]).toBe('AUTH LOGIN CRAM-MD5 PLAIN');
  });

  it('returns several replies found in one chunk, in order (pipelining)', () => {
    expect(parseAll('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n')).toEqual([
      { code: 250, lines: ['2.1.0 Ok'] },
      { code: 250, lines: ['2.1.5 Ok'] },
      { code: 354, lines: ['End data with <CR><LF>.<CR><LF>'] },
    ]);
  });

  it('accepts bare LF line endings', () => {
    expect(parseAll('250-a\n250 b\n220 x\r\n')).toEqual([
      { code: 250, lines: ['a', 'b'] },
      { code: 220, lines: ['x'] },
    ]);
  });

  it('accepts a code with no text, and an empty text after the separator', () => {
    expect(parseAll('250\r\n334 \r\n250-\r\n250 end\r\n')).toEqual([
      { code: 250, lines: [''] },
      { code: 334, lines: [''] },
      { code: 250, lines: ['', 'end'] },
    ]);
  });

  it('keeps every octet: latin1 text turns back into the bytes received', () => {
    const raw = Buffer.concat([Buffer.from('250 caf'), Buffer.from([0xc3, 0xa9, 0xff, 0x80]), Buffer.from('\r\n')]);
    const [r] = new ReplyParser().push(raw);
    expect(encodeReply(r)).toEqual(raw);
  });

  it('reports bytes buffered after a reply (STARTTLS response injection)', () => {
    const p = new ReplyParser();
    expect(p.push(Buffer.from('220 2.0.0 Ready to start TLS\r\n'))).toHaveLength(1);
    expect(p.hasPartial()).toBe(false);

    const injected = new ReplyParser();
    expect(injected.push(Buffer.from('220 2.0.0 Ready to start TLS\r\n250-evil'))).toHaveLength(1);
    expect(injected.hasPartial()).toBe(true);

    const midReply = new ReplyParser();
    expect(midReply.push(Buffer.from('250-first\r\n'))).toEqual([]);
    expect(midReply.hasPartial()).toBe(true);
  });

  describe('limits and malformed input', () => {
    const rejects = (input: string | Buffer, reason: RegExp, parser = new ReplyParser()) => {
      let err: unknown;
      try {
        parser.push(typeof input === 'string' ? Buffer.from(input, 'latin1') : input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ReplyParseError);
      expect((err as ReplyParseError).reason).toMatch(reason);
    };

    it('accepts a 4096-octet line and rejects 4097', () => {
      const ok = `250 ${'x'.repeat(4092)}`;
      expect(parseAll(`${ok}\r\n`)[0].lines[0]).toHaveLength(4092);
      rejects(`250 ${'x'.repeat(4093)}\r\n`, /longer than 4096/);
    });

    it('rejects an endless line before its end arrives, so memory stays bounded', () => {
      const p = new ReplyParser();
      expect(p.push(Buffer.from(`250 ${'x'.repeat(4000)}`))).toEqual([]);
      rejects('y'.repeat(200), /longer than 4096/, p);
    });

    it('accepts 100 lines and rejects 101', () => {
      const lines = (n: number) => Array.from({ length: n }, (_, i) => `250${i === n - 1 ? ' ' : '-'}l${i}\r\n`).join('');
      expect(parseAll(lines(100))[0].lines).toHaveLength(100);
      rejects(lines(101), /longer than 100 lines/);
    });

    it('rejects a non-numeric code', () => {
      rejects('25x ok\r\n', /reply code/);
      rejects('hello\r\n', /reply code/);
      rejects('\r\n', /reply code/);
      rejects('650 not smtp\r\n', /reply code/);
    });

    it('rejects a bad separator after the code', () => {
      rejects('2500 ok\r\n', /separator/);
    });

    it('rejects a code change inside a multi-line reply', () => {
      rejects('250-a\r\n550 b\r\n', /changed from 250 to 550/);
    });

    it('rejects a bare CR inside a line', () => {
      rejects('250 a\rb\r\n', /bare CR/);
    });

    it('stays failed after an error until reset', () => {
      const p = new ReplyParser();
      expect(() => p.push(Buffer.from('nope\r\n'))).toThrow(ReplyParseError);
      expect(() => p.push(Buffer.from('250 ok\r\n'))).toThrow(ReplyParseError);
      p.reset();
      expect(p.push(Buffer.from('250 ok\r\n'))).toEqual([{ code: 250, lines: ['ok'] }]);
    });
  });
});

describe('formatReply', () => {
  it('writes continuation lines with "-" and the last with a space', () => {
    expect(formatReply(reply(250, 'a', 'b', 'c'))).toBe('250-a\r\n250-b\r\n250 c\r\n');
  });

  it('writes a reply with no lines as the bare code, and keeps the space of an empty last text', () => {
    expect(formatReply(reply(250))).toBe('250\r\n');
    expect(formatReply(reply(334, ''))).toBe('334 \r\n');
  });

  it('round-trips the plala fixture byte for byte', () => {
    const text = fixture('plala.txt');
    expect(formatReply(parseAll(text)[0])).toBe(text);
  });

  it('refuses CR or LF inside a line and codes outside 200..599', () => {
    expect(() => formatReply(reply(250, 'a\r\n250 forged'))).toThrow(TypeError);
    expect(() => formatReply(reply(250, 'a\nb'))).toThrow(TypeError);
    expect(() => formatReply(reply(99, 'x'))).toThrow(RangeError);
    expect(() => formatReply(reply(600, 'x'))).toThrow(RangeError);
  });
});

describe('reply classes', () => {
  it('classifies codes', () => {
    expect([220, 354, 421, 535].map(replyClass)).toEqual(['2xx', '3xx', '4xx', '5xx']);
    expect(isPositive(250) && isPositive(reply(354, 'go'))).toBe(true);
    expect(isPositive(421) || isPositive(500)).toBe(false);
    expect(isCompletion(235) && !isCompletion(334)).toBe(true);
    expect(isIntermediate(334) && !isIntermediate(250)).toBe(true);
    expect(isTransient(451) && !isTransient(550) && !isTransient(250)).toBe(true);
    expect(isPermanent(554) && !isPermanent(454)).toBe(true);
    expect(() => replyClass(700)).toThrow(RangeError);
  });

  it('extracts the enhanced status code', () => {
    expect(enhancedCode(reply(535, '5.7.8 Authentication credentials invalid'))).toBe('5.7.8');
    expect(enhancedCode(reply(250, 'msc12.plala.or.jp'))).toBeUndefined();
  });
});

describe('reply catalogue', () => {
  const host = 'mx.test';
  const catalogue = Object.entries(replies)
    .filter(([, v]) => typeof v === 'function' && v !== replies.SmtpError)
    .map(([name, fn]) => [name, (fn as (h: string) => SmtpReply)(host)] as const);

  it('gives each error reply an enhanced code of the same class as its code', () => {
    for (const [name, r] of catalogue) {
      const enhanced = enhancedCode(r);
      if (r.code === 334 || (r.code === 250 && name === 'hello') || (r.code === 220 && name === 'serviceReady')) continue;
      expect(enhanced, name).toBeDefined();
      expect(enhanced![0], name).toBe(String(r.code)[0]);
    }
  });

  it('names mailshim first in every 421, as RFC 5321 4.2 asks', () => {
    const closing = catalogue.filter(([, r]) => r.code === 421);
    expect(closing.length).toBeGreaterThan(3);
    for (const [name, r] of closing) expect(r.lines[0], name).toMatch(/^4\.\d\.\d mx\.test /);
  });

  it('formats the replies the RFCs name', () => {
    expect(formatReply(replies.authFailed())).toBe('535 5.7.8 Authentication credentials invalid\r\n');
    expect(formatReply(replies.tlsReady())).toBe('220 2.0.0 Ready to start TLS\r\n');
    expect(formatReply(replies.encryptionRequired())).toBe(
      '538 5.7.11 Encryption required for requested authentication mechanism\r\n',
    );
    expect(formatReply(replies.authChallenge(''))).toBe('334 \r\n');
    expect(formatReply(replies.timeout(host))).toBe('421 4.4.2 mx.test Error: timeout exceeded\r\n');
  });

  it('keeps the client reply and the log reason apart in SmtpError', () => {
    const err = new replies.SmtpError(replies.authFailed(), 'CRAM-MD5 digest mismatch for user doorphone');
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('CRAM-MD5 digest mismatch for user doorphone');
    expect(formatReply(err.reply)).not.toContain('doorphone');
  });
});
