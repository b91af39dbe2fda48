// Finds the end of DATA (<CRLF>.<CRLF>) in a byte stream and makes sure the upstream can only ever see the
// same end (no SMTP smuggling). go-smtp's byte state machine, but driven by native Buffer.indexOf scans
// between line ends, so a clean message is relayed as the client's own chunks, unchanged and uncopied.
//
// Policy (documented in README): only CRLF.CRLF ends a message. A bare LF or bare CR in the body is
// normalised to CRLF. Where that would create a new line that starts with '.', an extra '.' is inserted
// (dot-stuffing), so the upstream never sees a terminator that mailshim did not see, and never misses one.

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_B = Buffer.from('.');
const DOT_CRLF = Buffer.from('.\r\n');

const enum S {
  /** At the start of a line that followed a real CRLF (or the DATA command). */
  BeginLine,
  /** At the start of a line that followed a normalised bare CR/LF. */
  BeginNorm,
  /** A '.' at a real line start: maybe the terminator. */
  Dot,
  /** '.' CR at a real line start, CR withheld at a chunk end. */
  DotCr,
  /** A CR withheld at a chunk end, mid-line. */
  Cr,
  /** Inside a line. */
  Data,
}

export interface ScanResult {
  /** Pieces to relay upstream, in order; the last one ends with the terminator when `done`. */
  out: Buffer[];
  done: boolean;
  /** Bytes after the terminator (pipelined commands); only when done. */
  rest?: Buffer;
}

export class DataTerminator {
  private s: S = S.BeginLine;
  /** How many bare CR/LF were normalised; reported in the session summary. */
  normalised = 0;

  feed(buf: Buffer): ScanResult {
    const out: Buffer[] = [];
    const n = buf.length;
    let start = 0; // first byte of the slice not yet pushed to `out`
    let p = 0;
    let nextCr = -2; // cached scan results; -2 = not scanned yet, -1 = none left
    let nextLf = -2;
    const emit = (to: number, extra?: Buffer) => {
      if (to > start) out.push(buf.subarray(start, to));
      if (extra) out.push(extra);
    };
    while (p < n) {
      switch (this.s) {
        case S.BeginLine:
          if (buf[p] === DOT) {
            this.s = S.Dot;
            p++;
          } else this.s = S.Data;
          break;
        case S.BeginNorm:
          // This line start exists only because we normalised: a leading '.' must be stuffed.
          if (buf[p] === DOT) {
            emit(p, DOT_B);
            start = p;
          }
          this.s = S.Data;
          break;
        case S.Dot: {
          const c = buf[p];
          if (c === CR) {
            if (p + 1 < n) {
              if (buf[p + 1] === LF) {
                emit(p + 2);
                return { out, done: true, rest: buf.subarray(p + 2) };
              }
              // ". CR x": a bare CR after a lone dot; stuff it so it cannot become ".CRLF" upstream.
              emit(p, DOT_CRLF);
              this.normalised++;
              start = p + 1;
              p++;
              this.s = S.BeginNorm;
            } else {
              emit(p);
              start = n;
              p = n;
              this.s = S.DotCr;
            }
          } else if (c === LF) {
            emit(p, DOT_CRLF);
            this.normalised++;
            start = p + 1;
            p++;
            this.s = S.BeginNorm;
          } else this.s = S.Data;
          break;
        }
        case S.DotCr:
          if (buf[p] === LF) {
            out.push(CRLF);
            return { out, done: true, rest: buf.subarray(p + 1) };
          }
          out.push(DOT_CRLF);
          this.normalised++;
          this.s = S.BeginNorm;
          break;
        case S.Cr:
          out.push(CRLF);
          if (buf[p] === LF) {
            p++;
            start = p;
            this.s = S.BeginLine;
          } else {
            this.normalised++;
            this.s = S.BeginNorm;
          }
          break;
        case S.Data: {
          if (nextCr !== -1 && nextCr < p) nextCr = buf.indexOf(CR, p);
          if (nextLf !== -1 && nextLf < p) nextLf = buf.indexOf(LF, p);
          // Hot path: skip whole CRLF-terminated lines whose successor does not start with '.', with
          // nothing but the two native scans per line (the message body is almost always like this).
          while (nextLf === nextCr + 1 && nextCr !== -1 && nextLf + 1 < n && buf[nextLf + 1] !== DOT) {
            p = nextLf + 1;
            nextCr = buf.indexOf(CR, p);
            nextLf = buf.indexOf(LF, p);
          }
          if (nextCr === -1 && nextLf === -1) {
            p = n;
            break;
          }
          if (nextCr === -1 || (nextLf !== -1 && nextLf < nextCr)) {
            // A LF with no CR before it.
            const q = nextLf;
            emit(q, CRLF);
            this.normalised++;
            start = q + 1;
            p = q + 1;
            this.s = S.BeginNorm;
            break;
          }
          const q = nextCr;
          if (q + 1 < n) {
            if (buf[q + 1] === LF) {
              p = q + 2; // a real CRLF: stays inside the current slice, no copy
              this.s = S.BeginLine;
            } else {
              emit(q, CRLF);
              this.normalised++;
              start = q + 1;
              p = q + 1;
              this.s = S.BeginNorm;
            }
          } else {
            emit(q);
            start = n;
            p = n;
            this.s = S.Cr;
          }
          break;
        }
      }
    }
    emit(n);
    return { out, done: false };
  }
}
