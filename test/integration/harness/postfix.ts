import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertSuccess, run } from './peers.js';
import { freePorts } from './ports.js';

/**
 * A private Postfix instance (real Debian postfix, started as root with `postfix -c DIR start`).
 *
 * Every accepted message, whatever the recipient domain, is delivered by a pipe(8) transport into
 * `DIR/mail/new/` with CRLF line ends (pipe `eol=\r\n`), so a test can compare it byte for byte with
 * what the client sent. The only thing Postfix adds is its own `Received:` header at the top
 * (`Delivery.content` is the message without it). Header rewriting for loopback clients is disabled
 * (`local_header_rewrite_clients` empty), so no Message-ID/Date/From is added and addresses are not
 * canonicalised.
 */

export interface PostfixTlsOptions {
  /** PEM certificate and key files (e.g. from createCerts().server). */
  cert: string;
  key: string;
  /** smtpd_tls_protocols and smtpd_tls_mandatory_protocols, e.g. ">=TLSv1.2". Default: Postfix's (TLS 1.0+ by Postfix, OpenSSL may still refuse < 1.2). */
  protocols?: string;
  /**
   * OpenSSL cipher string for tls_medium_cipherlist (the grade smtpd uses). "DEFAULT:@SECLEVEL=0" together
   * with protocols ">=TLSv1" lets this Postfix accept TLS 1.0 clients.
   */
  cipherList?: string;
  /** Also listen on instance.wrapperPort with implicit TLS (smtps, smtpd_tls_wrappermode=yes). */
  wrapperPort?: boolean;
}

export interface SaslUser {
  /** "name" (realm = the instance's domain; log in as "name") or "name@realm" (log in as "name@realm"). */
  user: string;
  password: string;
}

export interface PostfixSaslOptions {
  users: SaslUser[];
  /** Cyrus mech_list, e.g. "PLAIN LOGIN" or "PLAIN LOGIN CRAM-MD5 DIGEST-MD5". Default "PLAIN LOGIN". */
  mechanisms?: string;
  /** smtpd_tls_auth_only: AUTH is offered only after STARTTLS (or on the wrapper port). Default false. */
  requireTls?: boolean;
  /**
   * When true, unauthenticated clients cannot send to any address (also not to the local domain):
   * RCPT gets "554 5.7.1 <rcpt>: Recipient address rejected: Access denied". Default false:
   * only relaying to other domains needs AUTH ("554 5.7.1 <rcpt>: Relay access denied").
   */
  requireAuth?: boolean;
}

export interface PostfixOptions {
  /** myhostname (greeting, EHLO reply, Received header). Default "mx.example.test". */
  hostname?: string;
  /** The local domain (mydestination, default SASL realm). Default "example.test". */
  domain?: string;
  tls?: PostfixTlsOptions;
  sasl?: PostfixSaslOptions;
  /** Any other main.cf parameters; these win over the harness's own values. */
  extraMain?: Record<string, string>;
  /** Give up starting after this long. Default 15 s. */
  startTimeoutMs?: number;
}

/** One message as the pipe transport delivered it. */
export interface Delivery {
  /** Path of the delivered file. */
  file: string;
  /** Exact delivered bytes: Postfix's Received header followed by the message, CRLF line ends. */
  raw: Buffer;
  /** raw as UTF-8. */
  text: string;
  /** The Received header this Postfix prepended, including its final CRLF. */
  receivedHeader: string;
  /** The message as the client sent it in DATA (without dot-stuffing and without the final ".\r\n"). */
  content: string;
  /** content as bytes. */
  contentRaw: Buffer;
  /** Envelope sender ("" for the null sender). */
  sender: string;
  /** Envelope recipients of this delivery, in the order the queue manager chose (not necessarily RCPT order). */
  recipients: string[];
}

export interface PostfixInstance {
  /** Temporary root of the instance (config in DIR/conf, queue in DIR/queue, mail in DIR/mail). */
  dir: string;
  configDir: string;
  /** Port of the plain/STARTTLS smtpd on 127.0.0.1. */
  port: number;
  /** Port of the implicit-TLS smtpd when tls.wrapperPort was set. */
  wrapperPort?: number;
  hostname: string;
  domain: string;
  /** syslog_name of this instance (prefix of its log lines, e.g. "mailshim-pf-abc123/smtpd[42]"). */
  syslogName: string;
  /** The instance's log (maillog_file), "" before the first line. */
  log(): Promise<string>;
  /** Waits until the log matches; returns the whole log. Log lines arrive asynchronously via postlogd. */
  waitForLog(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Delivered messages (raw text, with Postfix's Received header), oldest first. */
  messages(): Promise<string[]>;
  deliveries(): Promise<Delivery[]>;
  /** Waits until at least n messages were delivered; returns them all. Rejects after timeoutMs (default 10 s). */
  waitForMessages(n: number, timeoutMs?: number): Promise<string[]>;
  waitForDeliveries(n: number, timeoutMs?: number): Promise<Delivery[]>;
  /** PIDs of the master and its children that are running now (empty after stop). */
  processes(): Promise<number[]>;
  /** postfix stop, wait until all its processes are gone, remove DIR. Safe to call twice. */
  stop(): Promise<void>;
}

const POSTFIX = '/usr/sbin/postfix';
const SASLPASSWD2 = '/usr/sbin/saslpasswd2';
const CAPTURE_SERVICE = 'mailshim-capture';

// Instances still running in this process, stopped on exit if a test forgot to (or crashed).
const running = new Map<string, number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [dir, masterPid] of running) {
      try {
        process.kill(masterPid, 'SIGTERM');
      } catch {
        // already gone
      }
      running.delete(dir);
    }
  });
}

function lookupUser(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`user ${name} does not exist (is postfix installed? run scripts/install-peers.sh)`);
}

/** Debian's master.cf with chroot off everywhere, and without any listener or pipe service of its own. */
function adaptMasterCf(source: string): string[] {
  const out: string[] = [];
  let keepContinuation = false;
  for (const line of source.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (/^\s/.test(line)) {
      if (keepContinuation) out.push(line);
      continue;
    }
    const f = line.trim().split(/\s+/);
    const [service, type, , , , , , command] = f;
    // Listeners are ours to define; pipe services of the stock file name users that may not exist.
    const drop = type === 'inet' || type === 'pass' || command === 'pipe' || command === 'postscreen';
    keepContinuation = !drop;
    if (drop || f.length < 8 || service === undefined) continue;
    // Chroot would need copies of /etc files, the sasldb and the certificates inside the queue directory.
    f[4] = 'n';
    out.push(f.join('  '));
  }
  return out;
}

const DELIVER_SCRIPT = `#!/bin/sh
# Postfix pipe(8) delivery for the test harness: $1 queue id, $2 envelope sender, then the recipients.
# The envelope goes to NAME.env first, then the message is moved to NAME.eml in one rename,
# so a reader never sees a half-written message.
set -eu
box="$(dirname "$0")/mail"
qid=$1
sender=$2
shift 2
name="$(date +%s%N)-$qid-$$"
cat > "$box/tmp/$name.eml"
{
  printf 'sender %s\\n' "$sender"
  for r in "$@"; do printf 'rcpt %s\\n' "$r"; done
} > "$box/new/$name.env"
mv "$box/tmp/$name.eml" "$box/new/$name.eml"
`;

function greeting(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no 220 greeting on port ${port} within ${timeoutMs} ms (got ${JSON.stringify(buf)})`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (/^220 .*\r\n/m.test(buf)) {
        clearTimeout(timer);
        socket.end('QUIT\r\n');
        resolve(buf);
      } else if (/^[45]\d\d /m.test(buf)) {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`port ${port} greeted with ${buf.trim()}`));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function waitForGreeting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      await greeting(port, Math.max(500, deadline - Date.now()));
      return;
    } catch (err) {
      lastError = err;
      await sleep(50);
    }
  }
  throw new Error(`Postfix on port ${port} did not greet: ${String(lastError)}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function isAlive(pid: number): boolean {
  try {
    // A zombie still answers kill(0); it is no longer running, only waiting for init to reap it.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function childPids(pid: number): Promise<number[]> {
  const r = await run('pgrep', ['-P', String(pid)], { timeoutMs: 5000 });
  return r.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

function splitReceived(raw: Buffer): { header: Buffer; content: Buffer } {
  // The first header is the one this Postfix added: "Received: ..." plus continuation lines.
  let end = raw.indexOf('\r\n');
  while (end >= 0 && (raw[end + 2] === 0x20 || raw[end + 2] === 0x09)) end = raw.indexOf('\r\n', end + 2);
  if (end < 0 || !raw.subarray(0, 9).equals(Buffer.from('Received:'))) {
    return { header: Buffer.alloc(0), content: raw };
  }
  return { header: raw.subarray(0, end + 2), content: raw.subarray(end + 2) };
}

/** Starts a private Postfix instance; see PostfixOptions. Needs root. */
export async function startPostfix(opts: PostfixOptions = {}): Promise<PostfixInstance> {
  if (process.getuid?.() !== 0) throw new Error('startPostfix needs root (postfix -c DIR start only runs as root)');
  if (!existsSync(POSTFIX)) throw new Error(`${POSTFIX} is missing: run scripts/install-peers.sh`);

  const hostname = opts.hostname ?? 'mx.example.test';
  const domain = opts.domain ?? 'example.test';
  const postfixUser = lookupUser('postfix');
  const nobody = lookupUser('nobody');

  const dir = await mkdtemp(join(tmpdir(), 'mailshim-pf-'));
  if (/\s/.test(dir)) throw new Error(`temporary directory ${dir} contains white space; master.cf cannot name it`);
  const id = dir.slice(dir.lastIndexOf('-') + 1).toLowerCase();
  const syslogName = `mailshim-pf-${id}`;
  const configDir = join(dir, 'conf');
  const queueDir = join(dir, 'queue');
  const dataDir = join(dir, 'data');
  const mailDir = join(dir, 'mail');
  const maillog = join(dir, 'maillog');

  // mkdtemp makes 0700; Postfix daemons and the delivery script run as other users and must traverse it.
  await chmod(dir, 0o755);
  await mkdir(configDir);
  await mkdir(queueDir);
  await mkdir(dataDir);
  await chown(dataDir, postfixUser.uid, postfixUser.gid);
  for (const d of [mailDir, join(mailDir, 'tmp'), join(mailDir, 'new')]) {
    await mkdir(d);
    await chown(d, nobody.uid, nobody.gid);
  }
  await writeFile(join(dir, 'deliver.sh'), DELIVER_SCRIPT, { mode: 0o755 });

  const main: Record<string, string> = {
    compatibility_level: '3.6',
    config_directory: configDir,
    queue_directory: queueDir,
    data_directory: dataDir,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    syslog_name: syslogName,
    maillog_file: maillog,
    // maillog_file must start with one of these prefixes (default "/var, /dev/stdout").
    maillog_file_prefixes: dir,
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    myhostname: hostname,
    mydomain: domain,
    myorigin: '$mydomain',
    mydestination: `$myhostname, localhost, ${domain}`,
    mynetworks: '127.0.0.0/8',
    // Accept any local part; deliver everything (every domain) to the capture pipe.
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    transport_maps: `static:${CAPTURE_SERVICE}:capture`,
    // Loopback clients count as local by default, which would make cleanup add headers and rewrite addresses.
    local_header_rewrite_clients: '',
    // Reverse DNS of 127.0.0.1 can stall on machines without a resolver; logs say "unknown[127.0.0.1]".
    smtpd_peername_lookup: 'no',
    smtpd_relay_restrictions: 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
    biff: 'no',
    append_dot_mydomain: 'no',
    readme_directory: 'no',
    [`${CAPTURE_SERVICE}_destination_recipient_limit`]: '1000',
  };

  if (opts.tls) {
    Object.assign(main, {
      smtpd_tls_cert_file: opts.tls.cert,
      smtpd_tls_key_file: opts.tls.key,
      smtpd_tls_security_level: 'may',
      // Level 1 logs "... TLS connection established from ...: TLSv1.3 with cipher ...".
      smtpd_tls_loglevel: '1',
      // The delivered Received header then says which TLS version and cipher the client used.
      smtpd_tls_received_header: 'yes',
    });
    if (opts.tls.protocols !== undefined) {
      main.smtpd_tls_protocols = opts.tls.protocols;
      main.smtpd_tls_mandatory_protocols = opts.tls.protocols;
    }
    if (opts.tls.cipherList !== undefined) main.tls_medium_cipherlist = opts.tls.cipherList;
  }

  if (opts.sasl) {
    const sasl = opts.sasl;
    const saslDir = join(configDir, 'sasl');
    const sasldb = join(dir, 'sasldb2');
    await mkdir(saslDir);
    await writeFile(
      join(saslDir, 'smtpd.conf'),
      [
        'pwcheck_method: auxprop',
        'auxprop_plugin: sasldb',
        `sasldb_path: ${sasldb}`,
        `mech_list: ${sasl.mechanisms ?? 'PLAIN LOGIN'}`,
        '',
      ].join('\n'),
    );
    for (const u of sasl.users) {
      const at = u.user.lastIndexOf('@');
      const [name, realm] = at > 0 ? [u.user.slice(0, at), u.user.slice(at + 1)] : [u.user, domain];
      assertSuccess(
        await run(SASLPASSWD2, ['-p', '-f', sasldb, '-c', '-u', realm, name], { input: u.password, timeoutMs: 10_000 }),
        `saslpasswd2 for ${u.user}`,
      );
    }
    // smtpd reads the sasldb after dropping privileges.
    await chown(sasldb, postfixUser.uid, postfixUser.gid);
    Object.assign(main, {
      smtpd_sasl_auth_enable: 'yes',
      smtpd_sasl_type: 'cyrus',
      smtpd_sasl_path: 'smtpd',
      // Users given without "@realm" log in with their bare name and are looked up in this realm.
      smtpd_sasl_local_domain: domain,
      smtpd_sasl_authenticated_header: 'yes',
      smtpd_relay_restrictions: 'permit_sasl_authenticated, reject_unauth_destination',
      smtpd_tls_auth_only: sasl.requireTls ? 'yes' : 'no',
    });
    if (sasl.requireAuth) main.smtpd_recipient_restrictions = 'permit_sasl_authenticated, reject';
  }

  Object.assign(main, opts.extraMain ?? {});
  await writeFile(
    join(configDir, 'main.cf'),
    Object.entries(main)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n') + '\n',
  );

  const stockMasterCf = ['/etc/postfix/master.cf', '/etc/postfix/master.cf.proto'].find((p) => existsSync(p));
  if (stockMasterCf === undefined) throw new Error('no /etc/postfix/master.cf to start from: run scripts/install-peers.sh');
  const baseServices = adaptMasterCf(await readFile(stockMasterCf, 'utf8'));

  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  const deadline = Date.now() + startTimeoutMs;
  let lastError = '';
  // A port found free may be taken by another test before master binds it; then retry with new ports.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const [port, wrapperPort] = await freePorts(opts.tls?.wrapperPort ? 2 : 1);
    if (port === undefined) throw new Error('no free port');
    const services = [
      ...baseServices,
      `127.0.0.1:${port}  inet  n  -  n  -  -  smtpd`,
      ...(wrapperPort !== undefined
        ? [
            `127.0.0.1:${wrapperPort}  inet  n  -  n  -  -  smtpd`,
            `  -o syslog_name=${syslogName}/smtps`,
            '  -o smtpd_tls_wrappermode=yes',
          ]
        : []),
      `${CAPTURE_SERVICE}  unix  -  n  n  -  -  pipe`,
      // No flags: pipe adds no Delivered-To/Return-Path/X-Original-To headers and does not quote "From ".
      `  flags= eol=\\r\\n null_sender= user=nobody argv=${join(dir, 'deliver.sh')} \${queue_id} \${sender} \${recipient}`,
    ];
    await writeFile(join(configDir, 'master.cf'), services.join('\n') + '\n');
    // Postfix re-reads a config file in 300 ms steps until its mtime is in the past (about 2 s for a fresh file).
    const past = new Date(Date.now() - 60_000);
    for (const f of ['main.cf', 'master.cf']) await utimes(join(configDir, f), past, past);

    const started = await run(POSTFIX, ['-c', configDir, 'start'], {
      timeoutMs: Math.max(1000, deadline - Date.now()),
      // The daemonised master inherits our pipes and holds them open for about two seconds.
      resolveOnExit: true,
    });
    if (started.code === 0) {
      const masterPid = Number((await readFile(join(queueDir, 'pid', 'master.pid'), 'utf8')).trim());
      running.set(dir, masterPid);
      installExitHook();
      const instance = makeInstance({ dir, configDir, port, wrapperPort, hostname, domain, syslogName, mailDir, maillog, masterPid });
      try {
        await waitForGreeting(port, Math.max(1000, deadline - Date.now()));
        return instance;
      } catch (err) {
        const log = await instance.log();
        await instance.stop();
        throw new Error(`Postfix started but does not greet: ${String(err)}\n${log}`);
      }
    }
    const log = existsSync(maillog) ? await readFile(maillog, 'utf8') : '';
    lastError = `postfix start failed (code ${String(started.code)}):\n${started.stdout}${started.stderr}\n${log}`;
    if (!/Address already in use/.test(log) || Date.now() > deadline) break;
    await writeFile(maillog, '');
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(lastError);
}

interface InstanceParts {
  dir: string;
  configDir: string;
  port: number;
  wrapperPort: number | undefined;
  hostname: string;
  domain: string;
  syslogName: string;
  mailDir: string;
  maillog: string;
  masterPid: number;
}

function makeInstance(p: InstanceParts): PostfixInstance {
  let stopping: Promise<void> | undefined;

  const log = async (): Promise<string> => {
    try {
      return await readFile(p.maillog, 'utf8');
    } catch {
      return '';
    }
  };

  const deliveries = async (): Promise<Delivery[]> => {
    const newDir = join(p.mailDir, 'new');
    const names = (await readdir(newDir)).filter((n) => n.endsWith('.eml')).sort();
    const out: Delivery[] = [];
    for (const name of names) {
      const file = join(newDir, name);
      const raw = await readFile(file);
      const envelope = await readFile(file.replace(/\.eml$/, '.env'), 'utf8');
      const { header, content } = splitReceived(raw);
      const lines = envelope.split('\n');
      out.push({
        file,
        raw,
        text: raw.toString('utf8'),
        receivedHeader: header.toString('utf8'),
        content: content.toString('utf8'),
        contentRaw: content,
        sender: (lines.find((l) => l.startsWith('sender ')) ?? 'sender ').slice('sender '.length),
        recipients: lines.filter((l) => l.startsWith('rcpt ')).map((l) => l.slice('rcpt '.length)),
      });
    }
    return out;
  };

  const waitForDeliveries = async (n: number, timeoutMs = 10_000): Promise<Delivery[]> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = await deliveries();
      if (got.length >= n) return got;
      if (Date.now() > deadline) {
        throw new Error(
          `expected ${n} delivered message(s) within ${timeoutMs} ms, got ${got.length}; Postfix log:\n${await log()}`,
        );
      }
      await sleep(50);
    }
  };

  return {
    dir: p.dir,
    configDir: p.configDir,
    port: p.port,
    ...(p.wrapperPort !== undefined ? { wrapperPort: p.wrapperPort } : {}),
    hostname: p.hostname,
    domain: p.domain,
    syslogName: p.syslogName,
    log,
    async waitForLog(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = await log();
        if (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text)) return text;
        if (Date.now() > deadline) throw new Error(`Postfix log did not match ${String(pattern)} within ${timeoutMs} ms:\n${text}`);
        await sleep(50);
      }
    },
    async messages() {
      return (await deliveries()).map((d) => d.text);
    },
    deliveries,
    async waitForMessages(n, timeoutMs) {
      return (await waitForDeliveries(n, timeoutMs)).map((d) => d.text);
    },
    waitForDeliveries,
    async processes() {
      if (!isAlive(p.masterPid)) return [];
      return [p.masterPid, ...(await childPids(p.masterPid)).filter(isAlive)];
    },
    stop() {
      stopping ??= (async () => {
        const children = isAlive(p.masterPid) ? await childPids(p.masterPid) : [];
        const stopped = await run(POSTFIX, ['-c', p.configDir, 'stop'], { timeoutMs: 10_000, resolveOnExit: true });
        if (stopped.code !== 0 && isAlive(p.masterPid)) {
          // What "postfix stop" does, in case the command itself failed.
          try {
            process.kill(p.masterPid, 'SIGTERM');
          } catch {
            // exited meanwhile
          }
        }
        const pids = [p.masterPid, ...children];
        const deadline = Date.now() + 5000;
        while (pids.some(isAlive) && Date.now() < deadline) await sleep(20);
        for (const pid of pids.filter(isAlive)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // exited meanwhile
          }
        }
        running.delete(p.dir);
        await rm(p.dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
