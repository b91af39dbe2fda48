// `mailshim probe` arguments: defaults a user relies on and the mistakes it must refuse.
import { describe, expect, it } from 'vitest';
import { parseArgs, run, UsageError } from '../../../src/cli/probe.js';

describe('mailshim probe arguments', () => {
  it('defaults to STARTTLS on 587 and to implicit TLS on 465', () => {
    expect(parseArgs(['smtp.example.net'])).toMatchObject({ host: 'smtp.example.net', port: 587, mode: 'starttls', timeoutMs: 10_000, json: false });
    expect(parseArgs(['smtp.example.net:465'])).toMatchObject({ port: 465, mode: 'implicit' });
    expect(parseArgs(['smtp.example.net', '--implicit'])).toMatchObject({ port: 465, mode: 'implicit' });
    expect(parseArgs(['smtp.example.net:25', '--plain'])).toMatchObject({ port: 25, mode: 'plain' });
    expect(parseArgs(['[::1]:2525', '--starttls'])).toMatchObject({ host: '::1', port: 2525, mode: 'starttls' });
  });

  it('takes the options with values', () => {
    expect(parseArgs(['h', '--servername', 'mx.example.net', '--ca', 'ca.pem', '--auth', 'me@example.net', '--timeout', '2500', '--json'])).toMatchObject({
      servername: 'mx.example.net',
      ca: 'ca.pem',
      authUser: 'me@example.net',
      timeoutMs: 2500,
      json: true,
    });
    expect(parseArgs(['h', '--auth', 'me']).insecureAuth).toBe(false);
    expect(parseArgs(['h', '--auth', 'me', '--insecure-auth']).insecureAuth).toBe(true);
  });

  it.each([
    [[], /HOST is missing/],
    [['h', '--plain', '--implicit'], /only one of/],
    [['h:99999'], /out of range/],
    [['h', 'i'], /one HOST only/],
    [['h', '--timeout', 'soon'], /--timeout is milliseconds/],
    [['h', '--auth'], /--auth needs a value/],
    [['h', '--tls1'], /unknown option --tls1/],
    [['h', '--insecure-auth'], /--insecure-auth only applies to --auth USER/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(message);
  });

  it('exits 2 with the usage on a wrong argument, 0 with --help', async () => {
    let out = '';
    let err = '';
    const io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {}, stdin: process.stdin };
    expect(await run(['--plain'], io)).toBe(2);
    expect(err).toMatch(/HOST is missing[\s\S]*usage: mailshim probe/);
    expect(await run(['--help'], io)).toBe(0);
    expect(out).toMatch(/^usage: mailshim probe HOST\[:PORT\]/);
    expect(out).toMatch(/--insecure-auth {5}with --auth: send the password even when the certificate did not verify/);
  });
});
