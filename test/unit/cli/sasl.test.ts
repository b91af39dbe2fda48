import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { run } from '../../../src/cli/sasl.js';

async function sasl(argv: string[], stdinText = '') {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    stdin: Readable.from([Buffer.from(stdinText)]),
  });
  return { code, stdout, stderr, lines: stdout.split('\n').filter((l) => l !== '') };
}

const PLALA_CHALLENGE = 'PDk1NTA5Njk2LjM0NjA3MDhAc29tZWhvc3QucGxhbGEub3IuanA+';
const PLALA_LINE = 'c29tZW9uZUBzb21laG9zdC5wbGFsYS5vci5qcCA5MTY4ZmZmNWZlNGRiMmEwMDUzN2NlYmI4OGQ5ODg3MA==';
const RFC_CHALLENGE = Buffer.from('<1896.697170952@postoffice.reston.mci.net>').toString('base64');
const DIGEST_CHALLENGE = Buffer.from('realm="example.com",nonce="JQMKtdgbEhMra4GdAYmAjQ==",qop="auth",charset=utf-8,algorithm=md5-sess').toString('base64');

describe('mailshim sasl cram-md5', () => {
  it('prints the plala client line first', async () => {
    const r = await sasl(['cram-md5', 'someone@somehost.plala.or.jp', 'himitsunokotoba', PLALA_CHALLENGE]);
    expect(r.code).toBe(0);
    expect(r.lines[0]).toBe(PLALA_LINE);
    expect(r.stdout).toContain('<95509696.3460708@somehost.plala.or.jp>');
  });

  it('answers the RFC 2195 challenge, pasted with its "334 " prefix', async () => {
    const r = await sasl(['cram-md5', 'tim', 'tanstaaftanstaaf', `334 ${RFC_CHALLENGE}`]);
    expect(Buffer.from(r.lines[0]!, 'base64').toString()).toBe('tim b913a602c7eda7a495b4e6e7334d3890');
  });

  it('reads the password from stdin with "-"', async () => {
    const r = await sasl(['cram-md5', 'someone@somehost.plala.or.jp', '-', PLALA_CHALLENGE], 'himitsunokotoba\n');
    expect(r.lines[0]).toBe(PLALA_LINE);
  });

  it('refuses a challenge that is not base64 (exit 1, no output)', async () => {
    const r = await sasl(['cram-md5', 'tim', 'x', 'not base64!']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/not canonical base64/);
  });
});

describe('mailshim sasl digest-md5', () => {
  it('prints the response line and the rspauth to expect (FIELD-NOTES vector)', async () => {
    const r = await sasl([
      'digest-md5',
      'info.example.com',
      'userpassword',
      DIGEST_CHALLENGE,
      '--digest-uri',
      'smtp/mx.example.com',
      '--cnonce',
      'lWF{[QuiRj}_L[PW',
    ]);
    expect(r.code).toBe(0);
    const response = Buffer.from(r.lines[0]!, 'base64').toString();
    expect(response).toContain('response=9aac0f215f229cf82083b86472a2788d');
    expect(response).toContain('digest-uri="smtp/mx.example.com"');
    expect(r.stdout).toContain('rspauth=8252052849c337d2b318ef3b11d8db83');
    expect(r.stdout).toContain(`334 ${Buffer.from('rspauth=8252052849c337d2b318ef3b11d8db83').toString('base64')}`);
  });

  it('explains a challenge it cannot answer (exit 1)', async () => {
    const bad = Buffer.from('realm="r",qop="auth-conf",nonce="n",algorithm=md5-sess').toString('base64');
    const r = await sasl(['digest-md5', 'u', 'p', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/qop=auth/);
  });
});

describe('mailshim sasl plain / login', () => {
  it('prints AUTH PLAIN <b64>', async () => {
    expect((await sasl(['plain', 'tim', 'tanstaaftanstaaf'])).stdout).toBe('AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\n');
    const z = await sasl(['plain', 'tim', 'secret', '--authzid', 'admin']);
    expect(z.stdout).toBe(`AUTH PLAIN ${Buffer.from('admin\0tim\0secret').toString('base64')}\n`);
  });

  it('prints the two LOGIN lines', async () => {
    expect((await sasl(['login', 'doorphone', 'ring-ring'])).stdout).toBe('ZG9vcnBob25l\ncmluZy1yaW5n\n');
  });
});

describe('mailshim sasl --decode', () => {
  it('PLAIN: shows the identities and masks the password', async () => {
    const r = await sasl(['--decode', 'plain', 'AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm']);
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(['authzid: (empty)', 'authcid: tim', 'password: ********']);
    expect(r.stdout).not.toContain('tanstaaf');
  });

  it('PLAIN: --show-secrets shows the password', async () => {
    const r = await sasl(['--decode', 'plain', 'AHRpbQB0YW5zdGFhZnRhbnN0YWFm', '--show-secrets']);
    expect(r.lines).toContain('password: tanstaaftanstaaf');
  });

  it('PLAIN: says what is wrong with a malformed message', async () => {
    const r = await sasl(['--decode', 'plain', Buffer.from('tim\0secret').toString('base64')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/1 NUL/);
    expect(r.stderr).not.toContain('secret');
  });

  it('LOGIN: labels the prompts and masks the password', async () => {
    const r = await sasl(['--decode', 'login', '334 VXNlcm5hbWU6', 'ZG9vcnBob25l', '334 UGFzc3dvcmQ6', 'cmluZy1yaW5n']);
    expect(r.lines).toEqual(['server: Username:', 'server: Password:', 'username: doorphone', 'password: ********']);
  });

  it('CRAM-MD5: shows challenge, user and digest, and checks a password', async () => {
    const r = await sasl(['--decode', 'cram-md5', PLALA_CHALLENGE, PLALA_LINE, '--password', 'himitsunokotoba']);
    expect(r.lines).toEqual([
      'challenge: <95509696.3460708@somehost.plala.or.jp>',
      'user: someone@somehost.plala.or.jp',
      'digest: 9168fff5fe4db2a00537cebb88d98870',
      'password: matches',
    ]);
    const wrong = await sasl(['--decode', 'cram-md5', PLALA_CHALLENGE, PLALA_LINE, '--password', 'nope']);
    expect(wrong.lines).toContain('password: does NOT match');
  });

  it('DIGEST-MD5: lists the directives of each line and checks the password and rspauth', async () => {
    const computed = await sasl([
      'digest-md5',
      'info.example.com',
      'userpassword',
      DIGEST_CHALLENGE,
      '--digest-uri',
      'smtp/mx.example.com',
      '--cnonce',
      'lWF{[QuiRj}_L[PW',
    ]);
    const rspauth = Buffer.from('rspauth=8252052849c337d2b318ef3b11d8db83').toString('base64');
    const r = await sasl(['--decode', 'digest-md5', DIGEST_CHALLENGE, computed.lines[0]!, rspauth, '', '--password', 'userpassword']);
    expect(r.code).toBe(0);
    expect(r.lines).toContain('  nonce="JQMKtdgbEhMra4GdAYmAjQ=="');
    expect(r.lines).toContain('  response="9aac0f215f229cf82083b86472a2788d"');
    expect(r.lines).toContain('  rspauth="8252052849c337d2b318ef3b11d8db83"');
    expect(r.lines).toContain('password: matches');
    expect(r.lines).toContain('rspauth: as expected');
    const wrong = await sasl(['--decode', 'digest-md5', DIGEST_CHALLENGE, computed.lines[0]!, '--password', 'nope']);
    expect(wrong.stdout).toMatch(/password: does NOT match/);
  });

  it('refuses a line that is not base64 (exit 1)', async () => {
    const r = await sasl(['--decode', 'plain', 'AHRpbQB0YW5zdGFhZnRhbnN0YWF']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line 1 is not canonical base64/);
  });
});

describe('mailshim sasl usage', () => {
  it.each([
    [[]],
    [['cram-md5', 'tim', 'pw']],
    [['plain', 'tim']],
    [['login', 'a', 'b', 'c']],
    [['scram-sha-1', 'u', 'p']],
    [['plain', 'u', 'p', '--bogus']],
    [['plain', 'u', 'p', '--digest-uri', 'smtp/x']],
    [['digest-md5', 'u', 'p', 'YQ==', '--digest-uri']],
    [['--decode', 'plain']],
    [['--decode', 'cram-md5', 'YQ==']],
  ])('%j -> usage on stderr, exit 2', async (argv) => {
    const r = await sasl(argv);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('usage:');
  });

  it('--help prints the usage on stdout, exit 0', async () => {
    const r = await sasl(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('mailshim sasl cram-md5 USER PASSWORD CHALLENGE_B64');
  });
});

describe('mailshim sasl --decode --password -', () => {
  it('reads the password to check from stdin', async () => {
    const r = await sasl(['--decode', 'cram-md5', PLALA_CHALLENGE, PLALA_LINE, '--password', '-'], 'himitsunokotoba\r\n');
    expect(r.lines).toContain('password: matches');
  });
});

describe('mailshim sasl digest-hash', () => {
  it('prints hex MD5(user:realm:password), which a local user can store as digestHash', async () => {
    const r = await sasl(['digest-hash', 'info.example.com', 'example.com', 'userpassword']);
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(['0e50b2e5e12c4b08c865045a4bb780d1']);
  });

  it('reads the password from stdin with "-" and needs all three arguments', async () => {
    expect((await sasl(['digest-hash', 'info.example.com', 'example.com', '-'], 'userpassword\n')).lines).toEqual(['0e50b2e5e12c4b08c865045a4bb780d1']);
    expect((await sasl(['digest-hash', 'info.example.com', 'example.com'])).code).toBe(2);
  });
});
