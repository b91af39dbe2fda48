import { describe, expect, it } from 'vitest';
import { DataTerminator } from '../../../src/protocol/data-terminator.js';

/** Feed `input` split at the given points; return relayed bytes, whether it ended, and the rest. */
function run(input: Buffer, splits: number[]) {
  const t = new DataTerminator();
  const out: Buffer[] = [];
  let prev = 0;
  for (const at of [...splits, input.length]) {
    const r = t.feed(input.subarray(prev, at));
    out.push(...r.out);
    if (r.done) {
      const rest = Buffer.concat([r.rest ?? Buffer.alloc(0), input.subarray(at)]);
      return { relayed: Buffer.concat(out), done: true, rest, normalised: t.normalised };
    }
    prev = at;
  }
  return { relayed: Buffer.concat(out), done: false, rest: Buffer.alloc(0), normalised: t.normalised };
}

/** Where RFC 5321 says the message ends: the first CRLF.CRLF, the DATA line's CRLF counting as the first. */
function referenceEnd(input: Buffer): number {
  const i = Buffer.concat([Buffer.from('\r\n'), input]).indexOf('\r\n.\r\n');
  return i === -1 ? -1 : i + 3;
}

/** A small deterministic PRNG so failures are reproducible. */
function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

describe('DataTerminator', () => {
  it('relays a clean message unchanged and stops right after CRLF.CRLF', () => {
    const msg = Buffer.from('Subject: hi\r\n\r\n..leading dot stuffed\r\nbody\r\n.\r\nQUIT\r\n');
    const r = run(msg, []);
    expect(r.done).toBe(true);
    expect(r.relayed.toString()).toBe('Subject: hi\r\n\r\n..leading dot stuffed\r\nbody\r\n.\r\n');
    expect(r.rest.toString()).toBe('QUIT\r\n');
    expect(r.normalised).toBe(0);
  });

  it('finds the terminator split across every chunk boundary', () => {
    const msg = Buffer.from('a\r\n.b\r\n.\r\nNOOP\r\n');
    for (let i = 0; i <= msg.length; i++) {
      for (let j = i; j <= msg.length; j++) {
        const r = run(msg, [i, j]);
        expect(r.done).toBe(true);
        expect(r.relayed.toString()).toBe('a\r\n.b\r\n.\r\n');
        expect(r.rest.toString()).toBe('NOOP\r\n');
      }
    }
  });

  it('treats an empty message (terminator right after DATA) as the end', () => {
    expect(run(Buffer.from('.\r\n'), []).done).toBe(true);
  });

  it.each([
    ['bare LF dot bare LF', 'x\n.\nafter\r\n.\r\n', 'x\r\n..\r\nafter\r\n.\r\n'],
    ['CRLF dot bare LF', 'x\r\n.\nafter\r\n.\r\n', 'x\r\n..\r\nafter\r\n.\r\n'],
    ['bare LF dot CRLF', 'x\n.\r\nafter\r\n.\r\n', 'x\r\n..\r\nafter\r\n.\r\n'],
    ['CRLF dot bare CR', 'x\r\n.\rafter\r\n.\r\n', 'x\r\n..\r\nafter\r\n.\r\n'],
    ['bare CR dot CRLF', 'x\r.\r\nafter\r\n.\r\n', 'x\r\n..\r\nafter\r\n.\r\n'],
  ])('does not end on a smuggling sequence (%s) and cannot make the upstream end there', (_n, input, relayed) => {
    const r = run(Buffer.from(input), []);
    expect(r.done).toBe(true);
    expect(r.relayed.toString()).toBe(relayed);
    expect(r.normalised).toBeGreaterThan(0);
  });

  it('agrees with the RFC reference and leaves no bare CR/LF, for random bodies and random chunking', () => {
    const rand = rng(42);
    const alphabet = ['a', '.', '\r', '\n', '\r\n', '\r\n.', 'b'];
    for (let iter = 0; iter < 3000; iter++) {
      let s = '';
      const len = Math.floor(rand() * 20);
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
      const input = Buffer.from(s + '\r\n.\r\nTAIL');
      const splits = [Math.floor(rand() * input.length), Math.floor(rand() * input.length)].sort((a, b) => a - b);
      const r = run(input, splits);
      const end = referenceEnd(input);
      expect(r.done).toBe(true);
      expect(input.length - r.rest.length).toBe(end);
      // The upstream sees only CRLF line endings...
      const rel = r.relayed.toString('latin1');
      expect(rel.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
      // ...and its first terminator is exactly where the relayed bytes end.
      expect(referenceEnd(r.relayed)).toBe(r.relayed.length);
      // The same input in one piece gives the same bytes.
      expect(run(input, []).relayed.equals(r.relayed)).toBe(true);
    }
  });

  it('gives the same answers on large chunks as the reference, for random bodies', () => {
    const rand = rng(7);
    const alphabet = ['abcdefgh ', 'x', '.', '\r', '\n', '\r\n', '\r\n.', '\r\n..', 'Lorem ipsum dolor sit amet\r\n'];
    for (let iter = 0; iter < 200; iter++) {
      let s = '';
      const len = 500 + Math.floor(rand() * 3000);
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
      const input = Buffer.from(s + '\r\n.\r\nTAIL');
      const splits = [Math.floor(rand() * input.length), Math.floor(rand() * input.length)].sort((a, b) => a - b);
      const r = run(input, splits);
      expect(input.length - r.rest.length).toBe(referenceEnd(input));
      expect(r.relayed.toString('latin1').replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
      expect(referenceEnd(r.relayed)).toBe(r.relayed.length);
      expect(run(input, []).relayed.equals(r.relayed)).toBe(true);
    }
  });
});
