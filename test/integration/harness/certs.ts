import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertSuccess, run } from './peers.js';

/** Paths of one PEM certificate and its unencrypted PEM private key (RSA 2048). */
export interface CertPair {
  cert: string;
  key: string;
}

/**
 * Throwaway PKI made with the openssl CLI. Every leaf is RSA 2048 and, unless named otherwise,
 * signed with SHA-256 by `ca`. Server certificates carry CN=localhost and
 * SAN DNS:localhost, IP:127.0.0.1, IP:::1.
 */
export interface TestCerts {
  dir: string;
  /** Self-signed root "mailshim-test-ca" (trust anchor for everything below). */
  ca: CertPair;
  /** Valid server certificate signed by ca. */
  server: CertPair;
  /** Self-signed server certificate for localhost that ca did not sign (verification must fail). */
  selfSigned: CertPair;
  /** Server certificate signed by ca, valid only 2020-01-01 .. 2020-02-01 (verification: "certificate has expired"). */
  expired: CertPair;
  /** Server certificate signed by ca with sha1WithRSAEncryption, for TLS 1.0 legacy set-ups. */
  sha1Server: CertPair;
  /** Client certificate (CN=doorphone, extendedKeyUsage clientAuth) signed by ca. */
  client: CertPair;
  /** Client certificate (CN=revoked-device) signed by ca and listed in crl. */
  revokedClient: CertPair;
  /** PEM CRL issued by ca that lists revokedClient. */
  crl: string;
  /** ca cert and crl concatenated, for tools that want both in one file. */
  caWithCrl: string;
  /** Removes dir. */
  cleanup(): Promise<void>;
}

const CA_CONFIG = `# openssl ca configuration for throwaway test certificates
[ ca ]
default_ca = testca

[ testca ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
crlnumber = ./crlnumber
certificate = ./ca.pem
private_key = ./ca.key
default_md = sha256
default_days = 3650
default_crl_days = 3650
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no

[ anything ]
commonName = supplied

[ server_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1

[ client_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
`;

async function openssl(dir: string, args: string[], what: string): Promise<void> {
  assertSuccess(await run('openssl', args, { cwd: dir, timeoutMs: 30_000 }), `openssl ${what}`);
}

/** Creates a fresh CA and certificates in a new directory under os.tmpdir() (or under `parentDir`). */
export async function createCerts(parentDir: string = tmpdir()): Promise<TestCerts> {
  const dir = await mkdtemp(join(parentDir, 'mailshim-certs-'));
  // Readable by other users: peers such as Postfix or HAProxy may read these files after dropping root.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'newcerts'));
  await writeFile(join(dir, 'ca.cnf'), CA_CONFIG);
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  await writeFile(join(dir, 'crlnumber'), '1000\n');

  const p = (name: string): string => join(dir, name);
  const pair = (name: string): CertPair => ({ cert: p(`${name}.pem`), key: p(`${name}.key`) });

  // Key generation dominates the cost; run it in parallel.
  const leaves = ['server', 'expired', 'sha1', 'client', 'revoked'] as const;
  await Promise.all([
    openssl(
      dir,
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3650',
        '-sha256', '-subj', '/CN=mailshim-test-ca',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      'create CA',
    ),
    openssl(
      dir,
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'self.key', '-out', 'self.pem', '-days', '3650',
        '-sha256', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'],
      'create self-signed certificate',
    ),
    ...leaves.map((name) =>
      openssl(
        dir,
        ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`,
          '-subj', `/CN=${name}`],
        `create ${name} request`,
      ),
    ),
  ]);

  // `openssl ca` updates one database, so signing is sequential.
  const sign = (name: string, ext: string, subject: string, extra: string[] = []): Promise<void> =>
    openssl(
      dir,
      ['ca', '-batch', '-config', 'ca.cnf', '-extensions', ext, '-notext', '-subj', subject, ...extra,
        '-in', `${name}.csr`, '-out', `${name}.pem`],
      `sign ${name}`,
    );
  await sign('server', 'server_ext', '/CN=localhost');
  // OpenSSL 3.0's x509 has no -not_after; `openssl ca` takes explicit dates, so no clock tricks are needed.
  await sign('expired', 'server_ext', '/CN=localhost', ['-startdate', '20200101000000Z', '-enddate', '20200201000000Z']);
  await sign('sha1', 'server_ext', '/CN=localhost', ['-md', 'sha1']);
  await sign('client', 'client_ext', '/CN=doorphone');
  await sign('revoked', 'client_ext', '/CN=revoked-device');
  await openssl(dir, ['ca', '-config', 'ca.cnf', '-revoke', 'revoked.pem'], 'revoke');
  await openssl(dir, ['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem'], 'gencrl');
  await openssl(dir, ['crl', '-in', 'crl.pem', '-out', 'crl.pem'], 'normalise crl');

  await writeFile(p('ca-with-crl.pem'), (await readFile(p('ca.pem'), 'utf8')) + (await readFile(p('crl.pem'), 'utf8')));
  for (const f of await readdir(dir)) {
    if (f.endsWith('.pem') || f.endsWith('.key')) await chmod(p(f), 0o644);
  }

  return {
    dir,
    ca: pair('ca'),
    server: pair('server'),
    selfSigned: pair('self'),
    expired: pair('expired'),
    sha1Server: pair('sha1'),
    client: pair('client'),
    revokedClient: pair('revoked'),
    crl: p('crl.pem'),
    caWithCrl: p('ca-with-crl.pem'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
