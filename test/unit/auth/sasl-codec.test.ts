import { describe, expect, it } from 'vitest';
import { decodeSaslBase64, decodeUtf8Strict, encodeSaslBase64, encodeSaslInitialResponse, isCancel } from '../../../src/auth/sasl-codec.js';

describe('decodeSaslBase64', () => {
  it('decodes canonical base64', () => {
    expect(decodeSaslBase64('dGlt')?.toString()).toBe('tim');
    expect(decodeSaslBase64('dGk=')?.toString()).toBe('ti');
    expect(decodeSaslBase64('dA==')?.toString()).toBe('t');
    expect(decodeSaslBase64('AHRpbQB0YW5zdGFhZg==')).toEqual(Buffer.from('\0tim\0tanstaaf'));
  });

  it('treats "=" and an empty line as an empty response (RFC 4954)', () => {
    expect(decodeSaslBase64('=')).toEqual(Buffer.alloc(0));
    expect(decodeSaslBase64('')).toEqual(Buffer.alloc(0));
  });

  it.each([
    ['missing padding', 'dGk'],
    ['padding missing one =', 'dA='],
    ['too much padding', 'dGlt===='],
    ['padding in the middle', 'dA==dGlt'],
    ['character outside the alphabet', 'dG!t'],
    ['url-safe alphabet', 'dGl-'],
    ['embedded space', 'dGlt dGlt'],
    ['trailing space', 'dGlt '],
    ['embedded CR', 'dG\rlt'],
    ['length not a multiple of 4', 'dGltd'],
    ['non-zero unused bits', 'dGk='.replace('k', 'l')],
    ['non-zero unused bits with ==', 'dB=='],
    ['a lone *', '*'],
  ])('rejects %s', (_what, line) => {
    expect(decodeSaslBase64(line)).toBeNull();
  });

  it('shows why strictness matters: Buffer.from would accept junk', () => {
    expect(Buffer.from('dG!lt', 'base64').toString()).toBe('tim');
    expect(decodeSaslBase64('dG!lt')).toBeNull();
  });
});

describe('encode', () => {
  it('encodes challenges, with an empty challenge as an empty string', () => {
    expect(encodeSaslBase64(Buffer.from('Username:'))).toBe('VXNlcm5hbWU6');
    expect(encodeSaslBase64(Buffer.alloc(0))).toBe('');
  });
  it('encodes an empty initial response as "="', () => {
    expect(encodeSaslInitialResponse(Buffer.alloc(0))).toBe('=');
    expect(encodeSaslInitialResponse(Buffer.from('tim'))).toBe('dGlt');
  });
});

describe('isCancel', () => {
  it('is true only for a lone *', () => {
    expect(isCancel('*')).toBe(true);
    expect(isCancel('* ')).toBe(false);
    expect(isCancel('Kg==')).toBe(false);
    expect(isCancel('')).toBe(false);
  });
});

describe('decodeUtf8Strict', () => {
  it('accepts UTF-8 and refuses invalid sequences', () => {
    expect(decodeUtf8Strict(Buffer.from('jörg', 'utf8'))).toBe('jörg');
    expect(decodeUtf8Strict(Buffer.from([0x6a, 0xf6, 0x72, 0x67]))).toBeNull();
    expect(decodeUtf8Strict(Buffer.from([0xc0, 0x80]))).toBeNull();
  });
});
