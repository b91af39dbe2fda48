// SMTP replies as values: formatting and classification (RFC 5321 4.2). Pure: no sockets, no logging.
import type { SmtpReply } from '../types.js';

export type ReplyClass = '2xx' | '3xx' | '4xx' | '5xx';

/** Build a reply value: `reply(250, 'first', 'second')`. */
export function reply(code: number, ...lines: string[]): SmtpReply {
  return { code, lines };
}

function checkCode(code: number): void {
  // RFC 5321 4.2: the first digit is 2..5; anything else is not an SMTP reply code.
  if (!Number.isInteger(code) || code < 200 || code > 599) {
    throw new RangeError(`not an SMTP reply code: ${code}`);
  }
}

/**
 * Serialise a reply: every line but the last as `ddd-text`, the last as `ddd text`, each ended by CRLF.
 * - zero lines -> `ddd\r\n` (RFC 5321's grammar allows the code alone);
 * - a last line with empty text keeps its space, `ddd \r\n`, because RFC 4954 requires `334 SP` even
 *   for an empty challenge.
 * Line text is taken as latin1 characters: write the result with `encodeReply` (or 'latin1') so relayed
 * upstream bytes survive unchanged. Throws on CR or LF inside a line: that would forge extra replies.
 */
export function formatReply(r: SmtpReply): string {
  checkCode(r.code);
  const code = String(r.code);
  const lines = r.lines;
  if (lines.length === 0) return `${code}\r\n`;
  let out = '';
  const last = lines.length - 1;
  for (let i = 0; i <= last; i++) {
    const text = lines[i];
    // indexOf, not a regex: every reply of every session passes here.
    if (text.indexOf('\n') !== -1 || text.indexOf('\r') !== -1) throw new TypeError(`reply line ${i} contains CR or LF`);
    out += code + (i === last ? ' ' : '-') + text + '\r\n';
  }
  return out;
}

/** `formatReply` as bytes, latin1 so that every octet received from an upstream is sent back unchanged. */
export function encodeReply(r: SmtpReply): Buffer {
  return Buffer.from(formatReply(r), 'latin1');
}

export function replyClass(code: number): ReplyClass {
  checkCode(code);
  return `${Math.floor(code / 100)}xx` as ReplyClass;
}

/** 2xx or 3xx: positive completion or positive intermediate (RFC 5321 4.2.1). */
export function isPositive(r: SmtpReply | number): boolean {
  const code = typeof r === 'number' ? r : r.code;
  return code >= 200 && code < 400;
}

/** 2xx only: the command completed. */
export function isCompletion(r: SmtpReply | number): boolean {
  const code = typeof r === 'number' ? r : r.code;
  return code >= 200 && code < 300;
}

/** 3xx only: more input is expected (354 after DATA, 334 during AUTH). */
export function isIntermediate(r: SmtpReply | number): boolean {
  const code = typeof r === 'number' ? r : r.code;
  return code >= 300 && code < 400;
}

/** 4xx: transient negative completion; the client may retry later. */
export function isTransient(r: SmtpReply | number): boolean {
  const code = typeof r === 'number' ? r : r.code;
  return code >= 400 && code < 500;
}

/** 5xx: permanent negative completion. */
export function isPermanent(r: SmtpReply | number): boolean {
  const code = typeof r === 'number' ? r : r.code;
  return code >= 500 && code < 600;
}

/** The RFC 3463 enhanced status code at the start of the first line (`5.7.8`), if there is one. */
export function enhancedCode(r: SmtpReply): string | undefined {
  const m = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/.exec(r.lines[0] ?? '');
  return m ? m[1] : undefined;
}
