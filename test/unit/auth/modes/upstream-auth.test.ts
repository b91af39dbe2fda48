import { describe, expect, it } from 'vitest';
import { chooseMechanism, rewriteAuthParam, xtext } from '../../../../src/upstream/upstream-auth.js';

describe('upstream mechanism choice', () => {
  it('PLAIN when offered, else LOGIN, unless forced', () => {
    expect(chooseMechanism(['LOGIN', 'PLAIN'])).toBe('PLAIN');
    expect(chooseMechanism(['LOGIN'])).toBe('LOGIN');
    expect(chooseMechanism(['CRAM-MD5'])).toBeUndefined();
    expect(chooseMechanism(['LOGIN', 'PLAIN'], 'LOGIN')).toBe('LOGIN');
  });
});

describe('MAIL FROM AUTH= (RFC 4954 section 5)', () => {
  it('xtext-encodes +, = and octets outside 33..126', () => {
    expect(xtext('door phone+1=x@example.org')).toBe('door+20phone+2B1+3Dx@example.org');
    expect(xtext('Träger')).toBe('Tr+C3+A4ger');
  });

  it('replaces the client claim with the authenticated identity, keeps other parameters', () => {
    expect(rewriteAuthParam('FROM:<a@b.example> SIZE=100 AUTH=evil@c.example BODY=8BITMIME', 'doorphone')).toBe(
      'FROM:<a@b.example> SIZE=100 AUTH=doorphone BODY=8BITMIME',
    );
  });

  it('strips it for an unauthenticated client and leaves a MAIL without AUTH= alone', () => {
    expect(rewriteAuthParam('FROM:<a@b.example> auth=<> SIZE=1', undefined)).toBe('FROM:<a@b.example> SIZE=1');
    expect(rewriteAuthParam('FROM:<a@b.example>  SIZE=1', 'x')).toBe('FROM:<a@b.example>  SIZE=1');
  });
});
