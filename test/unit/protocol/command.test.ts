import { describe, expect, it } from 'vitest';
import { parseCommand, parsePath } from '../../../src/protocol/command.js';

describe('parseCommand', () => {
  it('upper-cases the verb and keeps the arguments as received, without the separating spaces', () => {
    expect(parseCommand('mail FROM:<a@b.test>')).toEqual({ verb: 'MAIL', args: 'FROM:<a@b.test>', raw: 'mail FROM:<a@b.test>' });
    expect(parseCommand('RCPT   TO:<c@d.test>').args).toBe('TO:<c@d.test>');
    expect(parseCommand('quit')).toEqual({ verb: 'QUIT', args: '', raw: 'quit' });
  });
});

describe('parsePath', () => {
  it('returns the path without brackets and the ESMTP parameters', () => {
    expect(parsePath('FROM:<a@b.test> SIZE=10  BODY=8BITMIME', 'FROM')).toEqual({ path: 'a@b.test', params: ['SIZE=10', 'BODY=8BITMIME'] });
    expect(parsePath('from: <>', 'FROM')).toEqual({ path: '', params: [] });
    expect(parsePath('TO:c@d.test', 'TO')).toEqual({ path: 'c@d.test', params: [] });
  });

  it('rejects what is not a path', () => {
    expect(parsePath('FROM:<a@b.test', 'FROM')).toBeNull();
    expect(parsePath('FROM:', 'FROM')).toBeNull();
    expect(parsePath('TO:<c@d.test>', 'FROM')).toBeNull();
  });

  // The last answer is kept for the handlers' check-then-run: it must never answer for other arguments.
  it('answers each call for its own arguments and keyword, also right after another call', () => {
    expect(parsePath('TO:<c@d.test>', 'TO')?.path).toBe('c@d.test');
    expect(parsePath('TO:<c@d.test>', 'TO')?.path).toBe('c@d.test');
    expect(parsePath('TO:<c@d.test>', 'FROM')).toBeNull();
    expect(parsePath('TO:<e@f.test>', 'TO')?.path).toBe('e@f.test');
    expect(parsePath('TO:<e@f.test', 'TO')).toBeNull();
    expect(parsePath('TO:<e@f.test>', 'TO')?.path).toBe('e@f.test');
  });
});
