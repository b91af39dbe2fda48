// Mistakes that `run` would only find when binding or building TLS contexts are caught by the loader, with
// their position; what only compiling can find (unreadable files, cipher strings) by check-config.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.js';
import { run as checkConfig } from '../../../src/cli/check-config.js';

function issues(text: string): ConfigError['issues'] {
  try {
    parseConfig(text, '/etc/mailshim/test.yaml', {}, () => {
      throw new Error('no files in this test');
    });
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const config = (listener: string, upstream = '') => `listeners:
  - name: a
    upstream: u
${listener}
upstreams:
  u:
    host: 127.0.0.1
${upstream}`;

describe('config validation beyond types', () => {
  it('refuses a port above 65535, with its position', () => {
    const [i] = issues(config('    listen: 127.0.0.1:70000'));
    expect(i).toMatchObject({ line: 4, col: 13, path: 'listeners[0].listen' });
    expect(i.message).toMatch(/port from 0 to 65535/);
  });

  it.each([
    ['a prefix longer than 32 bits', '10.0.0.0/33'],
    ['an address that is not one', '300.1.1.1'],
    ['an IPv6 prefix longer than 128 bits', '2001:db8::/129'],
  ])('refuses %s in clients.allow', (_what, cidr) => {
    const [i] = issues(config(`    listen: 2525\n    clients: { allow: ["${cidr}"] }`));
    expect(i).toMatchObject({ line: 5, path: 'listeners[0].clients.allow[0]' });
    expect(i.message).toMatch(/valid IPv4\/IPv6 address/);
  });

  it('refuses minVersion above maxVersion on either side', () => {
    const listener = issues(config('    listen: 2525\n    tls: { mode: starttls, minVersion: TLSv1.3, maxVersion: TLSv1.2 }'));
    expect(listener[0]).toMatchObject({ path: 'listeners[0].tls.minVersion', line: 5 });
    expect(listener[0].message).toMatch(/minVersion must not be above maxVersion/);
    const upstream = issues(config('    listen: 2525', '    tls: { mode: starttls, minVersion: TLSv1.3, maxVersion: TLSv1.2 }'));
    expect(upstream[0]).toMatchObject({ path: 'upstreams.u.tls.minVersion' });
  });

  it('caps capture.bodyMaxBytes (a whole body is held in memory while it is written)', () => {
    const [i] = issues(config('    listen: 2525') + 'capture: { bodyMaxBytes: 1000000000 }\n');
    expect(i.path).toBe('capture.bodyMaxBytes');
  });
});

describe('check-config compiles what run would build', () => {
  it('exits 1 naming the listener when a certificate file is missing or a cipher string is rejected', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailshim-check-'));
    const out: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    const capture = (s: string | Uint8Array) => (out.push(String(s)), true);
    for (const tls of ['{ mode: starttls, cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }', '{ mode: starttls, ciphers: "NOPE" }']) {
      const file = join(dir, 'bad.yaml');
      await writeFile(file, config('    listen: 2525\n    tls: ' + tls));
      out.length = 0;
      process.stderr.write = capture as typeof process.stderr.write;
      let code: number;
      try {
        code = await checkConfig(['--config', file]);
      } finally {
        process.stderr.write = write;
      }
      expect(code).toBe(1);
      expect(out.join('')).toMatch(/listeners\[0\] \(a\): .*(ENOENT|cipher)/);
    }
  });
});
