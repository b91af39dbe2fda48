// Accumulates upstream bytes into complete SMTP replies (RFC 5321 4.2). Pure: no sockets, no logging.
//
// Text is decoded as latin1: one character per octet, so `Buffer.from(text, 'latin1')` gives back the
// exact bytes the upstream sent (UTF-8 would replace invalid sequences and lose them).
import type { SmtpReply } from '../types.js';

export class ReplyParseError extends Error {
  override readonly name = 'ReplyParseError';
  constructor(readonly reason: string) {
    super(`malformed upstream reply: ${reason}`);
  }
}

export interface ReplyParserOptions {
  /** Longest line accepted, line ending excluded. Default 4096 (RFC 5321 asks for 512; servers exceed it). */
  maxLineLength?: number;
  /** Most lines in one reply. Default 100. */
  maxLines?: number;
}

const LF = 10;
const CR = 13;

/** The shared answer for a chunk that completes no reply (never written to). */
const NONE: readonly SmtpReply[] = Object.freeze([]);

export class ReplyParser {
  private readonly maxLineLength: number;
  private readonly maxLines: number;
  /** Bytes of a line whose LF has not arrived yet. */
  private partial: Buffer | null = null;
  /** Lines of a multi-line reply whose last line has not arrived yet. */
  private code = 0;
  private lines: string[] = [];
  /** Once broken, always broken: the byte stream has no resynchronisation point. */
  private failure: ReplyParseError | null = null;

  constructor(opts: ReplyParserOptions = {}) {
    this.maxLineLength = opts.maxLineLength ?? 4096;
    this.maxLines = opts.maxLines ?? 100;
  }

  /**
   * Feed bytes; returns every reply completed by them (zero or more), in order. Lines end with CRLF or a
   * bare LF. Throws ReplyParseError on a malformed line, a code change inside a reply or a limit; after
   * that every push throws the same error (the caller should drop the upstream connection).
   */
  push(chunk: Buffer): readonly SmtpReply[] {
    if (this.failure) throw this.failure;
    try {
      return this.consume(chunk);
    } catch (err) {
      if (err instanceof ReplyParseError) {
        this.failure = err;
        this.partial = null;
        this.lines = [];
      }
      throw err;
    }
  }

  /**
   * True when bytes were received that are not part of a returned reply yet: a partial line or the first
   * lines of a multi-line reply. After the 220 answer to STARTTLS this must be false (and that push must
   * have returned exactly one reply); otherwise plaintext was injected before the TLS handshake.
   */
  hasPartial(): boolean {
    return this.partial !== null || this.lines.length > 0;
  }

  /** Forget buffered bytes and any error, e.g. after a TLS upgrade (RFC 3207 4.2: discard prior knowledge). */
  reset(): void {
    this.partial = null;
    this.lines = [];
    this.code = 0;
    this.failure = null;
  }

  private consume(chunk: Buffer): readonly SmtpReply[] {
    let buf = chunk;
    if (this.partial) {
      buf = Buffer.concat([this.partial, chunk]);
      this.partial = null;
    }
    // Arrays are made at their size: a first push() would reserve room for 17 elements, and a chunk
    // normally holds one reply of one line.
    let out: SmtpReply[] | undefined;
    let start = 0;
    for (;;) {
      const lf = buf.indexOf(LF, start);
      if (lf === -1) break;
      let end = lf;
      if (end > start && buf[end - 1] === CR) end--;
      const done = this.line(buf, start, end);
      if (done) {
        if (out) out.push(done);
        else out = [done];
      }
      start = lf + 1;
    }
    if (start < buf.length) {
      // A trailing CR may be half of the CRLF, hence the + 1 allowance.
      if (buf.length - start > this.maxLineLength + 1) {
        throw new ReplyParseError(`line longer than ${this.maxLineLength} octets`);
      }
      // Copy so a large chunk is not kept alive by a small tail.
      this.partial = Buffer.from(buf.subarray(start));
    }
    return out ?? NONE;
  }

  private line(buf: Buffer, start: number, end: number): SmtpReply | null {
    const length = end - start;
    if (length > this.maxLineLength) throw new ReplyParseError(`line longer than ${this.maxLineLength} octets`);
    // RFC 5321 4.2: Code [ SP / "-" textstring ]; the first digit is 2..5. Checked on the bytes: this runs
    // for every reply line of every session.
    const d0 = buf[start] - 0x30;
    const d1 = buf[start + 1] - 0x30;
    const d2 = buf[start + 2] - 0x30;
    if (length < 3 || !(d0 >= 2 && d0 <= 5) || !(d1 >= 0 && d1 <= 9) || !(d2 >= 0 && d2 <= 9)) {
      throw new ReplyParseError(`line does not start with a reply code: ${JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 40)))}`);
    }
    const sep = length > 3 ? buf[start + 3] : 0x20;
    if (sep !== 0x20 && sep !== 0x2d) {
      throw new ReplyParseError(`bad separator after the code: ${JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 40)))}`);
    }
    // The first CR after the code is normally the one ending the line (at `end`); one before it is bare.
    const cr = length > 4 ? buf.indexOf(CR, start + 4) : -1;
    if (cr !== -1 && cr < end) throw new ReplyParseError('bare CR inside a reply line');
    const code = d0 * 100 + d1 * 10 + d2;
    if (this.lines.length > 0 && code !== this.code) {
      throw new ReplyParseError(`reply code changed from ${this.code} to ${code} inside a multi-line reply`);
    }
    if (this.lines.length >= this.maxLines) throw new ReplyParseError(`reply longer than ${this.maxLines} lines`);
    this.code = code;
    const text = length > 4 ? buf.toString('latin1', start + 4, end) : '';
    if (sep === 0x2d) {
      this.lines.push(text);
      return null;
    }
    if (this.lines.length === 0) return { code, lines: [text] };
    this.lines.push(text);
    const done: SmtpReply = { code, lines: this.lines };
    this.lines = [];
    return done;
  }
}
