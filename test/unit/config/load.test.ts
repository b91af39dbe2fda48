import { copyFileSync, cpSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { run } from '../../../src/cli/check-config.js';
import { ConfigError, loadConfig, maskSecrets, parseConfig, warnings } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const fixtures = path.join(root, 'test/fixtures/config');
const fixture = (name: string) => path.join(fixtures, name);
const exampleEnv = { DOORPHONE_PASSWORD: 'door-env-secret-1234', PROVIDER_PASSWORD: 'provider-env-secret-5678' };

/** Load a config that must fail and return its issues. */
async function issuesOf(file: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigError['issues']> {
  const err = await loadConfig(file, env).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).issues;
}

function failing(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfig(text, '/etc/mailshim/test.yaml', env, () => {
      throw new Error('no files in this test');
    });
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('valid configs', () => {
  it('loads config/minimal.yaml: one passthrough listener relaying to 127.0.0.1:25 without CRAM-MD5', async () => {
    const cfg = await loadConfig(path.join(root, 'config/minimal.yaml'), {});
    expect(cfg.listeners).toHaveLength(1);
    const l = cfg.listeners[0]!;
    expect(l.listen).toEqual({ host: '127.0.0.1', port: 2525 });
    expect(l.auth.mode).toBe('passthrough');
    expect(l.ehlo).toEqual([{ 'remove-auth': 'CRAM-MD5' }]);
    expect(cfg.upstreams[l.upstream]).toMatchObject({ host: '127.0.0.1', port: 25 });
    expect(warnings(cfg)).toEqual([]);
  });

  it('fills in every default', async () => {
    const cfg = await loadConfig(path.join(root, 'config/minimal.yaml'), {});
    const l = cfg.listeners[0]!;
    expect(l.tls).toEqual({ mode: 'none', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', sni: {}, requestClientCert: false });
    expect(l.auth).toMatchObject({ mechanisms: ['PLAIN', 'LOGIN'], users: [], maxFailures: 10, failureDelay: 1000 });
    expect(l.timeouts).toEqual({ command: 300_000, data: 300_000, connect: 30_000 });
    expect(l.maxLineLength).toBe(512);
    expect(cfg.upstreams[l.upstream]!.tls).toEqual({ mode: 'none', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', verify: true });
    expect(cfg.capture).toMatchObject({ body: 'headers', keylog: false });
    expect(cfg.log.level).toBe('info');
    expect(cfg.shutdownTimeout).toBe(30_000);
  });

  it('loads config/mailshim.example.yaml with its env vars set, secrets from the environment', async () => {
    const cfg = await loadConfig(path.join(root, 'config/mailshim.example.yaml'), exampleEnv);
    const door = cfg.listeners.find((l) => l.name === 'doorphone')!;
    expect(door.auth.mode).toBe('local');
    expect(door.auth.users[0]!.password).toBe(exampleEnv.DOORPHONE_PASSWORD);
    expect(cfg.upstreams.provider!.accounts.notify!.password).toBe(exampleEnv.PROVIDER_PASSWORD);
    expect(door.hostname).toBe('mailshim.example.net'); // ${MAILSHIM_HOSTNAME:-...} fallback
    // Relative TLS paths resolve against the config's directory, not the working directory.
    expect(door.tls.cert).toBe(path.join(root, 'config/tls/cert.pem'));
    expect(warnings(cfg)).toEqual([expect.stringMatching(/doorphone.*TLSv1\b/)]);
  });

  it('the example config names every key of the schema (it is the manual)', () => {
    const text = readFileSync(path.join(root, 'config/mailshim.example.yaml'), 'utf8');
    const keys = schemaKeys(configSchema);
    expect(keys.length).toBeGreaterThan(70);
    const absent = keys.filter((k) => !new RegExp(`(^|[\\s{,#-])${escapeRe(k)}:`, 'm').test(text));
    expect(absent).toEqual([]);
  });

  it('does not load the example without its env vars, and names them', async () => {
    const issues = await issuesOf(path.join(root, 'config/mailshim.example.yaml'));
    expect(issues.map((i) => i.message)).toEqual([
      expect.stringContaining('DOORPHONE_PASSWORD is not set'),
      expect.stringContaining('PROVIDER_PASSWORD is not set'),
    ]);
  });
});

describe('positioned errors', () => {
  it('a wrong type', async () => {
    expect(await issuesOf(fixture('wrong-type.yaml'))).toEqual([
      {
        file: fixture('wrong-type.yaml'),
        line: 9,
        col: 11,
        path: 'upstreams.relay.port',
        message: 'expected a number (got "twenty-five")',
      },
    ]);
  });

  it('an unknown key points at the key and suggests the right one', async () => {
    const [i, ...rest] = await issuesOf(fixture('unknown-key.yaml'));
    expect(rest).toEqual([]);
    expect(i).toMatchObject({ line: 8, col: 7, path: 'listeners[0].tls.minVersoin' });
    expect(i!.message).toMatch(/^unknown key \(expected one of: mode, cert, key, minVersion, .*did you mean "minVersion"\?\)$/);
  });

  it('a bad enum value lists the allowed ones', async () => {
    expect(await issuesOf(fixture('bad-enum.yaml'))).toEqual([
      expect.objectContaining({
        line: 5,
        col: 19,
        path: 'listeners[0].auth.mode',
        message: 'expected one of: passthrough, forward, local (got "proxy")',
      }),
    ]);
  });

  it('a missing required key points at the mapping that lacks it', async () => {
    expect(await issuesOf(fixture('missing-key.yaml'))).toEqual([
      expect.objectContaining({
        line: 8,
        col: 5,
        path: 'upstreams.relay.host',
        message: 'expected a string (got nothing: this required key is missing)',
      }),
    ]);
  });

  it('a listener naming an upstream that does not exist', async () => {
    expect(await issuesOf(fixture('unknown-upstream.yaml'))).toEqual([
      expect.objectContaining({ line: 4, col: 15, path: 'listeners[0].upstream', message: 'unknown upstream "provider"; defined: relay' }),
    ]);
  });

  it('a user mapped to an account its upstream does not have', async () => {
    expect(await issuesOf(fixture('unknown-account.yaml'))).toEqual([
      expect.objectContaining({
        line: 10,
        col: 28,
        path: 'listeners[0].auth.users[0].upstreamAccount',
        message: 'expected an account of upstream "provider": notify (got "notfy")',
      }),
    ]);
  });

  it('a YAML syntax error points at the unclosed quote', async () => {
    const issues = await issuesOf(fixture('syntax-error.yaml'));
    expect(issues).toEqual([expect.objectContaining({ line: 4, col: 15, message: 'YAML syntax error: Missing closing "quote' })]);
  });

  it('an unset ${VAR} points at the reference and names the variable', async () => {
    const err = await loadConfig(fixture('unset-var.yaml'), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(
      `${fixture('unset-var.yaml')}:11:20: upstreams.provider.accounts.notify.password: ` +
        'environment variable MAILSHIM_TEST_UNSET is not set (write ${MAILSHIM_TEST_UNSET:-default} for a fallback)',
    );
  });

  it('lists every issue, one FILE:LINE:COL line each, in file order', () => {
    const err = failing(
      [
        'listeners:',
        '  - name: a',
        '    listen: 127.0.0.1:2525',
        '    upstream: u',
        '    earlyTalker: shout',
        '    timeouts: { command: 5 minutes }',
        'upstreams:',
        '  u: { host: h, port: 70000 }',
        'logs: {}',
      ].join('\n'),
    );
    expect(err.message.split('\n')).toEqual([
      '/etc/mailshim/test.yaml:5:18: listeners[0].earlyTalker: expected one of: wait, reject (got "shout")',
      '/etc/mailshim/test.yaml:6:26: listeners[0].timeouts.command: expected a duration like 30s, 5m or 1h (got "5 minutes")',
      '/etc/mailshim/test.yaml:8:23: upstreams.u.port: expected a number at most 65535 (got number 70000)',
      expect.stringMatching(/^\/etc\/mailshim\/test\.yaml:9:1: logs: unknown key \(expected one of: .*did you mean "log"\?\)$/),
    ]);
  });

  it('an EHLO rule that is none of the known kinds names the kinds', () => {
    const err = failing('listeners:\n  - { name: a, listen: 25, upstream: u, ehlo: [ { remove-auht: CRAM-MD5 } ] }\nupstreams: { u: { host: h } }\n');
    expect(err.issues).toEqual([
      expect.objectContaining({
        line: 2,
        col: 49,
        path: 'listeners[0].ehlo[0]',
        message:
          'expected a mapping with exactly one of the keys remove, remove-auth, add-auth-equals, add, replace (got a mapping with keys remove-auht)',
      }),
    ]);
  });

  it('auth.mode local without users or a default account for relayWithoutAuth', () => {
    const err = failing('listeners:\n  - name: a\n    listen: 25\n    upstream: u\n    auth:\n      mode: local\nupstreams: { u: { host: h } }\n');
    expect(err.issues).toEqual([expect.objectContaining({ line: 6, col: 13, path: 'listeners[0].auth.mode' })]);
    expect(err.issues[0]!.message).toMatch(/at least one entry in auth.users/);
  });

  it('a local user with no way to check it', () => {
    const err = failing(
      'listeners:\n  - name: a\n    listen: 25\n    upstream: u\n    auth:\n      mode: local\n      users:\n        - name: bob\nupstreams: { u: { host: h } }\n',
    );
    expect(err.issues).toEqual([expect.objectContaining({ line: 8, col: 11, path: 'listeners[0].auth.users[0]' })]);
    expect(err.issues[0]!.message).toMatch(/needs password, passwordFile, digestHash/);
  });

  it('never echoes a secret that has the wrong type', () => {
    const err = failing('listeners: [{ name: a, listen: 25, upstream: u }]\nupstreams:\n  u: { host: h, accounts: { x: { user: u, password: [hunter2] } } }\n');
    expect(err.message).toContain('upstreams.u.accounts.x.password: expected a string (got a list)');
    expect(err.message).not.toContain('hunter2');
  });

  it('an unreadable passwordFile is a positioned error', async () => {
    const [i, ...rest] = await issuesOf(fixture('missing-password-file.yaml'));
    expect(rest).toEqual([]);
    expect(i).toMatchObject({ line: 9, col: 58, path: 'upstreams.provider.accounts.notify.passwordFile' });
    expect(i!.message).toMatch(/^expected a readable file \(got ENOENT/);
  });

  it('a config file that cannot be read', async () => {
    const [i] = await issuesOf(fixture('does-not-exist.yaml'));
    expect(i!.message).toMatch(/^cannot read the config file \(ENOENT/);
  });
});

describe('${VAR} expansion', () => {
  const base = (value: string) =>
    `listeners: [{ name: a, listen: 25, upstream: u }]\nupstreams:\n  u:\n    host: ${value}\n    port: \${SMTP_PORT:-25}\n`;

  it('expands variables, uses :- fallbacks, keeps $${ literal and reads numbers where numbers are wanted', () => {
    const cfg = parseConfig(base('"${HOST}.$${NOT_A_VAR}"'), '/x.yaml', { HOST: 'mx', SMTP_PORT: '2525' });
    expect(cfg.upstreams.u!.host).toBe('mx.${NOT_A_VAR}');
    expect(cfg.upstreams.u!.port).toBe(2525);
    expect(parseConfig(base('mx'), '/x.yaml', {}).upstreams.u!.port).toBe(25);
  });

  it('a malformed reference is an error at its position', () => {
    const err = failing(base('"mx.${BAD-NAME}"'));
    expect(err.issues).toEqual([expect.objectContaining({ line: 4, col: 15, path: 'upstreams.u.host' })]);
  });
});

describe('passwordFile and secrets', () => {
  it('reads passwordFile relative to the config, dropping the trailing newline', async () => {
    const cfg = await loadConfig(fixture('password-file.yaml'), {});
    expect(cfg.listeners[0]!.auth.users[0]!.password).toBe('door-file-secret-7781');
    expect(cfg.upstreams.provider!.accounts.notify!.password).toBe('provider-file-secret-4242');
    expect(cfg.listeners[0]!.tls.key).toBe(fixture('tls/key.pem'));
  });

  it('maskSecrets leaves no password or digest hash', async () => {
    const cfg = await loadConfig(fixture('password-file.yaml'), {});
    cfg.listeners[0]!.auth.users.push({ name: 'dg', digestHash: 'aabbccddeeff00112233445566778899' });
    const text = JSON.stringify(maskSecrets(cfg));
    for (const secret of ['door-file-secret-7781', 'provider-file-secret-4242', 'aabbccddeeff00112233445566778899']) {
      expect(text).not.toContain(secret);
    }
    expect(text.match(/"\*{8}"/g)).toHaveLength(3);
    // The config itself is untouched: the proxy still needs the secrets.
    expect(cfg.upstreams.provider!.accounts.notify!.password).toBe('provider-file-secret-4242');
  });
});

describe('warnings', () => {
  it('names each insecure-but-allowed choice', () => {
    const cfg = parseConfig(
      [
        'listeners:',
        '  - name: open',
        '    listen: 0.0.0.0:465',
        '    upstream: u',
        '    tls: { mode: starttls, cert: c.pem, key: k.pem, minVersion: TLSv1.1 }',
        '    clients: { relayWithoutAuth: [0.0.0.0/0] }',
        '    auth: { mode: local, defaultUpstreamAccount: a, allowPlaintext: true }',
        'upstreams:',
        '  u:',
        '    host: h',
        '    port: 587',
        '    tls: { mode: implicit, verify: false }',
        '    allowAuthWithoutVerifiedTls: true',
        '    accounts: { a: { user: x, password: y } }',
        'capture: { keylog: keys.log }',
      ].join('\n'),
      '/etc/mailshim/w.yaml',
      {},
    );
    const w = warnings(cfg).join('\n');
    expect(w).toMatch(/open.*TLSv1\.1/);
    expect(w).toMatch(/allowPlaintext/);
    expect(w).toMatch(/STARTTLS on port 465/);
    expect(w).toMatch(/implicit TLS on port 587/);
    expect(w).toMatch(/anyone who can reach it/);
    expect(w).toMatch(/open relay/);
    expect(w).toMatch(/tls\.verify is false/);
    expect(w).toMatch(/allowAuthWithoutVerifiedTls/);
    expect(w).toMatch(/keylog.*\/etc\/mailshim\/keys\.log/);
    expect(warnings(cfg)).toHaveLength(9);
  });
});

describe('mailshim check-config', () => {
  let out = '';
  let err = '';
  const capture = () => {
    out = '';
    err = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  };
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  it('prints the effective config as YAML with secrets masked, warnings on stderr, exit 0', async () => {
    for (const [k, v] of Object.entries(exampleEnv)) vi.stubEnv(k, v);
    // check-config also builds the TLS contexts, so the certificate files the example names must exist.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mailshim-example-'));
    copyFileSync(path.join(root, 'config/mailshim.example.yaml'), path.join(dir, 'mailshim.yaml'));
    cpSync(fixture('tls'), path.join(dir, 'tls'), { recursive: true });
    capture();
    const code = await run(['--config', path.join(dir, 'mailshim.yaml')]);
    vi.restoreAllMocks();
    expect(code).toBe(0);
    const printed = parseYaml(out) as { listeners: { name: string; auth: { users: { password: string }[]; failureDelay: number } }[] };
    expect(printed.listeners[0]!.auth.users[0]!.password).toBe('********');
    expect(printed.listeners[0]!.auth.failureDelay).toBe(1000);
    expect(err).toMatch(/^warning: listeners\[0\] \(doorphone\): accepts TLSv1/m);
    for (const secret of Object.values(exampleEnv)) expect(out + err).not.toContain(secret);
  });

  it('--json prints JSON, and secrets read from files stay hidden', async () => {
    capture();
    const code = await run(['--config', fixture('password-file.yaml'), '--json']);
    vi.restoreAllMocks();
    expect(code).toBe(0);
    const printed = JSON.parse(out) as { upstreams: { provider: { accounts: { notify: { password: string } } } } };
    expect(printed.upstreams.provider.accounts.notify.password).toBe('********');
    expect(out + err).not.toMatch(/door-file-secret|provider-file-secret/);
  });

  it('an invalid config prints FILE:LINE:COL errors on stderr and exits 1', async () => {
    capture();
    const code = await run([`--config=${fixture('wrong-type.yaml')}`]);
    vi.restoreAllMocks();
    expect(code).toBe(1);
    expect(out).toBe('');
    expect(err).toContain(`${fixture('wrong-type.yaml')}:9:11: upstreams.relay.port: expected a number (got "twenty-five")`);
  });

  it('--help prints usage and exits 0; no --config is a usage error', async () => {
    capture();
    expect(await run(['--help'])).toBe(0);
    expect(out).toMatch(/^usage: mailshim check-config --config FILE \[--json\]/);
    expect(await run([])).toBe(2);
    vi.restoreAllMocks();
    expect(err).toMatch(/--config FILE is required/);
  });
});

// Every object key declared in the schema, found by walking zod 4's schema definitions.
function schemaKeys(schema: unknown): string[] {
  const keys = new Set<string>();
  const seen = new Set<unknown>();
  const walk = (s: unknown): void => {
    if (!s || typeof s !== 'object' || seen.has(s)) return;
    seen.add(s);
    const def = (s as { _zod: { def: Record<string, unknown> } })._zod.def;
    if (def.type === 'object') {
      for (const [k, v] of Object.entries(def.shape as Record<string, unknown>)) {
        keys.add(k);
        walk(v);
      }
    }
    for (const field of ['innerType', 'in', 'out', 'element', 'valueType']) walk(def[field]);
    for (const o of (def.options as unknown[] | undefined) ?? []) walk(o);
  };
  walk(schema);
  return [...keys];
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
