import { describe, expect, it } from 'vitest';
import { LineReader } from '../../../src/protocol/line-reader.js';

const lines = (r: LineReader, max = 512) => {
  const got: string[] = [];
  for (let x = r.next(max); x; x = r.next(max)) got.push('line' in x ? x.line.toString() : '<too long>');
  return got;
};

describe('LineReader', () => {
  it('splits a pipelined group, keeping partial lines across chunks', () => {
    const r = new LineReader();
    r.push(Buffer.from('EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT T'));
    expect(lines(r)).toEqual(['EHLO a', 'MAIL FROM:<x@y>']);
    r.push(Buffer.from('O:<z@w>\r\n'));
    expect(lines(r)).toEqual(['RCPT TO:<z@w>']);
  });

  it('accepts a bare LF from a lenient device', () => {
    const r = new LineReader();
    r.push(Buffer.from('HELO dev\nQUIT\r\n'));
    expect(lines(r)).toEqual(['HELO dev', 'QUIT']);
  });

  it('reports an over-long line once and resumes at the next line', () => {
    const r = new LineReader();
    r.push(Buffer.from('NOOP ' + 'x'.repeat(600) + '\r\nQUIT\r\n'));
    expect(lines(r)).toEqual(['<too long>', 'QUIT']);
  });

  it('keeps memory bounded for an endless line and reports it when it ends', () => {
    const r = new LineReader();
    for (let i = 0; i < 1000; i++) {
      r.push(Buffer.alloc(1024, 0x61));
      expect(r.next(512)).toBeNull();
      expect(r.buffered).toBeLessThanOrEqual(1024 + 512);
    }
    r.push(Buffer.from('\r\nNOOP\r\n'));
    expect(lines(r)).toEqual(['<too long>', 'NOOP']);
  });

  it('counts the limit with the CRLF: 510 octets + CRLF pass, 511 do not', () => {
    const r = new LineReader();
    r.push(Buffer.from('a'.repeat(510) + '\r\n' + 'b'.repeat(511) + '\r\n'));
    expect(lines(r).map((l) => l.length)).toEqual([510, '<too long>'.length]);
  });

  it('hands over the raw remainder for DATA', () => {
    const r = new LineReader();
    r.push(Buffer.from('DATA\r\nSubject: x\r\n'));
    const first = r.next(512);
    expect(first && "line" in first && first.line.toString()).toBe("DATA");
    expect(r.take().toString()).toBe("Subject: x\r\n");
    expect(r.buffered).toBe(0);
  });
});
