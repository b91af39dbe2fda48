// SASL framing helpers for the session: strict base64 (RFC 4954 section 4) and the `*` cancel.
// Buffer.from(x, 'base64') never throws and silently skips junk, so a client's line is checked
// against the canonical form before it is decoded.

/** Groups of four alphabet characters, then at most one padded group; nothing else. */
const CANONICAL_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decode one SASL line (without CRLF). Returns null unless the text is canonical base64: the
 * standard alphabet, length a multiple of 4, correct padding and zero unused bits (so exactly one
 * text maps to each byte string). `=` alone (an empty initial response, RFC 4954) and an empty line
 * (an empty continuation response) both decode to an empty buffer.
 */
export function decodeSaslBase64(line: string): Buffer | null {
  if (line === '=' || line === '') return Buffer.alloc(0);
  if (!CANONICAL_B64.test(line)) return null;
  const bytes = Buffer.from(line, 'base64');
  // Non-zero bits in the last character before the padding would decode to the same bytes as a
  // different text; re-encoding shows them.
  if (bytes.toString('base64') !== line) return null;
  return bytes;
}

/** Encode a server challenge or continuation response; an empty buffer gives an empty string. */
export function encodeSaslBase64(bytes: Buffer): string {
  return bytes.toString('base64');
}

/** Encode a client's initial response for `AUTH <mech> <ir>`: empty becomes `=` (RFC 4954 section 4). */
export function encodeSaslInitialResponse(bytes: Buffer): string {
  return bytes.length === 0 ? '=' : bytes.toString('base64');
}

/** A client line that cancels the exchange (RFC 4954 section 4); the session answers 501. */
export function isCancel(line: string): boolean {
  return line === '*';
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decode bytes that must be UTF-8; null if they are not. */
export function decodeUtf8Strict(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}
