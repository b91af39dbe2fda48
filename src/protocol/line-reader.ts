// Bytes -> command lines. The session pulls one line at a time (smtp-server's oncommand habit), so a
// pipelined group waits in here until the session is ready for the next command. Pure: no sockets.

const LF = 0x0a;
const EMPTY = Buffer.alloc(0);
const CR = 0x0d;

/** A command line is text from here on (latin1: one character per octet, so lengths are octet counts). */
export type LineResult = { line: string } | { tooLong: true };

export class LineReader {
  private buf: Buffer = EMPTY;
  private off = 0;
  /** After an over-long line we drop bytes until its LF, so memory stays bounded. */
  private discarding = false;

  push(chunk: Buffer): void {
    if (this.off >= this.buf.length) {
      this.buf = chunk;
      this.off = 0;
    } else {
      // Only the unread remainder (normally a partial line) is copied.
      this.buf = Buffer.concat([this.buf.subarray(this.off), chunk]);
      this.off = 0;
    }
  }

  /** Bytes held and not yet handed out. */
  get buffered(): number {
    return this.buf.length - this.off;
  }

  /**
   * The next line without its line ending (CRLF, or a bare LF from a lenient device), `tooLong` once per
   * over-long line (counted with a CRLF ending), or null when no complete line is buffered yet.
   */
  next(maxLen: number): LineResult | null {
    const idx = this.buf.indexOf(LF, this.off);
    if (idx === -1) {
      if (this.buf.length - this.off > maxLen) {
        this.discarding = true;
        this.buf = EMPTY;
        this.off = 0;
      }
      return null;
    }
    const start = this.off;
    this.off = idx + 1;
    if (this.discarding) {
      this.discarding = false;
      return { tooLong: true };
    }
    const end = idx > start && this.buf[idx - 1] === CR ? idx - 1 : idx;
    if (end - start + 2 > maxLen) return { tooLong: true };
    return { line: this.buf.toString('latin1', start, end) };
  }

  /** Hand over everything buffered (entering DATA, or discarded after STARTTLS). */
  take(): Buffer {
    const rest = this.buf.subarray(this.off);
    this.buf = EMPTY;
    this.off = 0;
    this.discarding = false;
    return rest;
  }
}
