// `mailshim demo` as a new user runs it: the built CLI as a child process, output piped (so plain text).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;

const DOORPHONE_PASSWORD = 'door-Secret-4711';
const PROVIDER_PASSWORD = 'prov-Secret-0815';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function demo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  try {
    const r = await exec(process.execPath, ['dist/main.js', 'demo', ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '', FORCE_COLOR: '', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Every form in which a password could leak into the output. */
function secretForms(user: string, password: string): string[] {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return [password, b64(password), b64(`\0${user}\0${password}`), b64(`${user}\0${user}\0${password}`)];
}

describe('mailshim demo', () => {
  let run: Run;
  beforeAll(async () => {
    run = await demo([], { DOORPHONE_PASSWORD, PROVIDER_PASSWORD });
  }, 90_000);

  it('exits 0 and says the message was delivered', () => {
    expect(run.stderr + run.stdout).not.toMatch(/demo failed|problem:/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ {2}device: TLSv1 \+ CRAM-MD5 -> mailshim -> provider: TLSv1\.[23] \+ AUTH PLAIN as notify@provider\.example: delivered$/m);
  });

  it('shows TLS 1.0 on the device side and TLS 1.2+ on the provider side', () => {
    expect(run.stdout).toMatch(/^device +== TLS TLSv1 \S+ \(device <-> mailshim\)/m);
    expect(run.stdout).toMatch(/^provider +== TLS TLSv1\.[23] \S+ \(mailshim <-> provider; provider certificate CN=smtp\.provider\.example verified\)/m);
    // Without mailshim, the provider refuses the device's TLS 1.0 handshake.
    expect(run.stdout).toMatch(/device stopped at tls: TLS alert protocol_version/);
  });

  it('shows the EHLO reply the device saw, marked against what the provider said', () => {
    // The provider's own post-TLS reply, exactly as in FIELD-NOTES section 1, on the provider leg ...
    expect(run.stdout).toMatch(/^provider +S: 250-AUTH LOGIN PLAIN$/m);
    // ... STARTTLS is mailshim's own offer to the device ...
    expect(run.stdout).toMatch(/^device +S: 250 STARTTLS +<- added by mailshim$/m);
    // ... and with auth.mode local the device is shown mailshim's mechanisms, marked as mailshim's doing.
    expect(run.stdout).toMatch(/^ {2}mailshim: TLS 1\.0 \+ CRAM-MD5 in, TLS 1\.2\+ \+ AUTH PLAIN out \(auth\.mode local\)\.$/m);
    expect(run.stdout).toMatch(/^device +S: 250-AUTH CRAM-MD5 .*<- rewritten; provider said "AUTH LOGIN PLAIN"$/m);
    expect(run.stdout).toMatch(/^device +S: 250-AUTH=CRAM-MD5 .*<- rewritten; provider said "AUTH=LOGIN PLAIN"$/m);
  });

  it('the provider received the message, logged in as the mapped account', () => {
    expect(run.stdout).toMatch(/What the provider received\n +over TLSv1\.[23] \S+, logged in with AUTH PLAIN as notify@provider\.example/);
    expect(run.stdout).toMatch(/^ +\| Subject: Visitor at the front door$/m);
    expect(run.stdout).toMatch(/^provider +S: 250 2\.0\.0 Ok: queued as [0-9A-F]+$/m);
    expect(run.stdout).toMatch(/^device +S: 250 2\.0\.0 Ok: queued as [0-9A-F]+$/m);
  });

  it('masks AUTH on both legs and prints no secret in any form', () => {
    expect(run.stdout).toMatch(/^provider +C: AUTH PLAIN \*{8}$/m);
    const all = run.stdout + run.stderr;
    for (const s of [...secretForms('doorphone', DOORPHONE_PASSWORD), ...secretForms('notify@provider.example', PROVIDER_PASSWORD)]) {
      expect(all).not.toContain(s);
    }
  });

  it('prints plain text when piped', () => {
    expect(run.stdout).not.toMatch(/\x1b\[/);
  });
});

describe('mailshim demo --story phone', () => {
  it('hides qmail CRAM-MD5 so the phone logs in with LOGIN', async () => {
    const r = await demo(['--story', 'phone']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/phone chose AUTH CRAM-MD5 and stopped at auth: server answered 535 authorization failed/);
    expect(r.stdout).toMatch(/^qmail +S: 250-AUTH LOGIN CRAM-MD5 PLAIN$/m);
    expect(r.stdout).toMatch(/^phone +S: 250-AUTH LOGIN PLAIN +<- rewritten; qmail said "AUTH LOGIN CRAM-MD5 PLAIN"$/m);
    expect(r.stdout).toMatch(/^qmail +C: AUTH LOGIN$/m);
    expect(r.stdout).toMatch(/phone: AUTH LOGIN \(CRAM-MD5 hidden by mailshim\) -> qmail: delivered/);
  }, 90_000);
});

describe('mailshim demo --help and bad options', () => {
  it('--help explains the demo and exits 0', async () => {
    const r = await demo(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: mailshim demo/);
    expect(r.stdout).toMatch(/doorphone/);
  });

  it('an unknown story exits non-zero with the reason', async () => {
    const r = await demo(['--story', 'fax']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown story "fax"/);
  });
});
