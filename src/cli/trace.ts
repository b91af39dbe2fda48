// mailshim trace: read the session captures in capture.dir.
//   list    one line per session (filters: --since, --client, --user, --failed)
//   show    one session in the field-notes style (C:/S: for the client leg, M:/U: for the upstream leg)
//   follow  sessions as they happen
//   pcap    the session's cleartext as a pcap of synthesized TCP packets (for Wireshark/tshark)
import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import {
  isTranscriptName,
  joinData,
  parseRecords,
  readRecords,
  sessionInfo,
  wireText,
  type CaptureRecord,
  type SessionInfo,
} from '../observe/transcript.js';
import { transcriptToPcap } from '../observe/pcap.js';
import type { TlsInfo } from '../observe/events.js';

const USAGE = `usage: mailshim trace <list|show|follow|pcap> [options] (--config FILE | --dir DIR)

  list [--since 1h] [--client IP] [--user NAME] [--failed]
                      one line per captured session, oldest first
  show ID             one session as a transcript (ID: session id, a unique prefix of it, or a file)
  follow              print sessions as they happen, until interrupted
  pcap ID > FILE      the session's cleartext as a pcap for Wireshark/tshark (secrets stay masked)

  -c, --config FILE   find the captures in the config's capture.dir
  -d, --dir DIR       or read them from DIR
      --color / --no-color   colour (default: when stdout is a terminal)

Transcript legs: C: client -> mailshim, S: mailshim -> client, M: mailshim -> upstream,
U: upstream -> mailshim; "--" lines are mailshim's notes, "!!" lines are failures.`;

interface Options {
  sub?: string;
  id?: string;
  config?: string;
  dir?: string;
  since?: string;
  client?: string;
  user?: string;
  failed: boolean;
  color?: boolean;
  help: boolean;
}

function parse(argv: string[]): Options | string {
  const o: Options = { failed: false, help: false };
  const value = (i: number): string | undefined => {
    const v = argv[i];
    return v === undefined || v.startsWith('--') ? undefined : v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const take = (): string | undefined => inline ?? value(++i);
    switch (flag) {
      case '-h':
      case '--help':
        o.help = true;
        break;
      case '-c':
      case '--config':
        if ((o.config = take()) === undefined) return `${flag} needs a file`;
        break;
      case '-d':
      case '--dir':
        if ((o.dir = take()) === undefined) return `${flag} needs a directory`;
        break;
      case '--since':
        if ((o.since = take()) === undefined) return '--since needs a duration (1h) or a date';
        break;
      case '--client':
        if ((o.client = take()) === undefined) return '--client needs an address';
        break;
      case '--user':
        if ((o.user = take()) === undefined) return '--user needs a name';
        break;
      case '--failed':
        o.failed = true;
        break;
      case '--color':
        o.color = true;
        break;
      case '--no-color':
        o.color = false;
        break;
      default:
        if (a.startsWith('-')) return `unknown option "${a}"`;
        if (!o.sub) o.sub = a;
        else if (!o.id) o.id = a;
        else return `unexpected argument "${a}"`;
    }
  }
  return o;
}

export async function run(argv: string[]): Promise<number> {
  const o = parse(argv);
  if (typeof o === 'string') {
    process.stderr.write(`mailshim trace: ${o}\n\n${USAGE}\n`);
    return 2;
  }
  if (o.help || !o.sub) {
    (o.help ? process.stdout : process.stderr).write(USAGE + '\n');
    return o.help ? 0 : 2;
  }
  let dir = o.dir;
  if (!dir && o.config) {
    const found = captureDirOf(o.config);
    if ('error' in found) return fail(found.error);
    dir = found.dir;
    if (!dir) {
      process.stderr.write(`mailshim trace: ${o.config} has no capture.dir: sessions are not being captured\n`);
      return 1;
    }
  }
  if (!dir) {
    process.stderr.write(`mailshim trace: --config FILE or --dir DIR is required\n\n${USAGE}\n`);
    return 2;
  }
  exitQuietlyOnEpipe();
  const color = o.color ?? (Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);
  const out = (s: string) => process.stdout.write(s + '\n');
  switch (o.sub) {
    case 'list':
      return list(dir, o, out);
    case 'show': {
      const found = resolveId(dir, o.id);
      if ('error' in found) return fail(found.error);
      for (const line of renderTranscript(readRecords(found.file), { color })) out(line);
      return 0;
    }
    case 'pcap': {
      const found = resolveId(dir, o.id);
      if ('error' in found) return fail(found.error);
      if (process.stdout.isTTY) return fail('pcap output is binary: redirect it to a file (mailshim trace pcap ID > session.pcap)');
      process.stdout.write(transcriptToPcap(readRecords(found.file)));
      return 0;
    }
    case 'follow':
      return follow(dir, color, out);
    default:
      process.stderr.write(`mailshim trace: unknown subcommand "${o.sub}"\n\n${USAGE}\n`);
      return 2;
  }
}

/**
 * capture.dir from a config file, and nothing else: reading the captures must not need the secrets the full
 * loader insists on (${VAR}s, passwordFiles). Relative to the config file's directory, ${VAR} and
 * ${VAR:-default} expanded as the loader does.
 */
export function captureDirOf(file: string, env: NodeJS.ProcessEnv = process.env): { dir: string | undefined } | { error: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { error: `${file}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) return { error: `${file}: YAML syntax error: ${doc.errors[0]!.message} (mailshim check-config shows where)` };
  const raw: unknown = doc.getIn(['capture', 'dir']);
  if (raw === undefined || raw === null) return { dir: undefined };
  if (typeof raw !== 'string') return { error: `${file}: capture.dir must be a directory name` };
  let unset: string | undefined;
  const dir = raw.replace(/\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (match: string, name?: string, dflt?: string) => {
    if (match === '$${') return '${';
    const value = env[name!];
    if (value !== undefined && (value !== '' || dflt === undefined)) return value;
    if (dflt !== undefined) return dflt;
    unset ??= name;
    return '';
  });
  if (unset) return { error: `${file}: capture.dir: environment variable ${unset} is not set` };
  return { dir: path.resolve(path.dirname(path.resolve(file)), dir) };
}

let epipeHandled = false;

/** `mailshim trace list | head -1`: the reader has all it wanted; stop there, as Unix tools do. */
function exitQuietlyOnEpipe(): void {
  if (epipeHandled) return;
  epipeHandled = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

function fail(msg: string): number {
  process.stderr.write(`mailshim trace: ${msg}\n`);
  return 1;
}

function transcriptFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    throw new Error(`cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return names.filter(isTranscriptName).sort().map((n) => path.join(dir, n));
}

/** The file for an ID (session id, unique prefix, or a path), or why there is none. */
export function resolveId(dir: string, id: string | undefined): { file: string } | { error: string } {
  if (!id) return { error: 'which session? give its ID (see mailshim trace list)' };
  if (id.includes('/') && fs.existsSync(id)) return { file: path.resolve(id) };
  let all: string[];
  try {
    all = transcriptFiles(dir);
  } catch (err) {
    return { error: (err as Error).message };
  }
  const files = all.filter((f) => {
    const sid = path.basename(f).replace(/^.*?Z-|\.jsonl$/g, '');
    return sid.startsWith(id);
  });
  if (files.length === 0) return { error: `no session "${id}" in the capture directory` };
  if (files.length > 1) return { error: `"${id}" matches ${files.length} sessions; give more of the ID` };
  return { file: files[0]! };
}

// --- list ------------------------------------------------------------------------------------------

/** "1h", "30m", "2d", "90s" or a date -> the earliest start time to show. */
export function parseSince(s: string, now = Date.now()): Date | undefined {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(s);
  if (m) return new Date(now - Number(m[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[m[2] as 's' | 'm' | 'h' | 'd']);
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function list(dir: string, o: Options, out: (s: string) => void): number {
  const since = o.since ? parseSince(o.since) : undefined;
  if (o.since && !since) return fail(`--since ${o.since}: expected a duration like 1h, 30m, 2d or a date`);
  let files: string[];
  try {
    files = transcriptFiles(dir);
  } catch (err) {
    return fail((err as Error).message);
  }
  const rows: SessionInfo[] = [];
  for (const f of files) {
    let info: SessionInfo;
    try {
      info = sessionInfo(f, readRecords(f));
    } catch {
      continue; // deleted by retention while we read
    }
    if (since && info.at < since) continue;
    if (o.client && info.client !== o.client && info.proxiedFrom?.split(':')[0] !== o.client) continue;
    if (o.user && info.user !== o.user) continue;
    if (o.failed && !info.failed) continue;
    rows.push(info);
  }
  for (const r of rows) out(listLine(r));
  if (rows.length === 0) process.stderr.write('no sessions match\n');
  return 0;
}

export function listLine(r: SessionInfo): string {
  const when = r.at.toISOString().replace('T', ' ').slice(0, 19);
  const dur = r.durationMs !== undefined ? `${(r.durationMs / 1000).toFixed(1)}s` : '-';
  const user = r.user ? `${r.user}${r.authResult && r.authResult !== 'ok' ? `(${r.authResult})` : ''}` : '-';
  const msgs = `${r.messages} sent${r.rejected ? `, ${r.rejected} rejected` : ''}`;
  const problem = r.failed && r.problem ? `  ${r.problem}` : r.failed && r.reason ? `  ${r.reason}` : '';
  return `${r.sid}  ${when}Z  ${r.listener}  ${r.client}  ${user}  ${r.result}  ${dur}  ${msgs}${problem}`;
}

// --- show ------------------------------------------------------------------------------------------

const LEG_TAG = { 'client->proxy': 'C:', 'proxy->client': 'S:', 'proxy->upstream': 'M:', 'upstream->proxy': 'U:' } as const;
const LEG_COLOR = { 'client->proxy': 32, 'proxy->client': 36, 'proxy->upstream': 33, 'upstream->proxy': 35 } as const;

function paint(color: boolean, code: number | string, s: string): string {
  return color ? `\x1b[${code}m${s}\x1b[0m` : s;
}

function stamp(t: number): string {
  return `+${(t / 1000).toFixed(3)}`.padStart(8);
}

function tlsLine(side: string, tls: TlsInfo): string {
  const parts = [`TLS ${side}: ${tls.version ?? '?'} ${tls.cipher ?? '?'}`];
  if (tls.servername) parts.push(`SNI ${tls.servername}`);
  if (tls.peerSubject) {
    const verified = tls.authorized ? 'verified' : `not verified${tls.authorizationError ? ` (${tls.authorizationError})` : ''}`;
    parts.push(`cert ${tls.peerSubject}; issuer ${tls.peerIssuer ?? '?'}; expires ${tls.peerValidTo ?? '?'}; ${verified}`);
  }
  parts.push(`handshake ${tls.handshakeMs} ms`);
  return parts.join(', ');
}

interface RewriteMark {
  before: Set<string>;
  changed: Map<string, string>;
  removed: string[];
  greetingSeen: boolean;
}

/** The session as readable lines (no trailing newlines). */
export function renderTranscript(records: CaptureRecord[], opts: { color: boolean }): string[] {
  const c = opts.color;
  const lines: string[] = [];
  const pad = ' '.repeat(9);
  const note = (t: number, s: string) => lines.push(`${stamp(t)} ${paint(c, 2, '--')} ${s}`);
  const bad = (t: number, s: string) => lines.push(`${stamp(t)} ${paint(c, '1;31', '!!')} ${paint(c, 31, s)}`);
  const hint = (h: string) => lines.push(`${pad}${paint(c, '1;33', 'hint:')} ${h}`);
  let rewrite: RewriteMark | undefined;
  let lastHint: { hint: string; line: string } | undefined;

  for (const r of joinData(records)) {
    switch (r.type) {
      case 'session.start': {
        lines.push(paint(c, 1, `session ${r.sid}  listener ${r.listener}  started ${r.at}${r.detail === 'full' ? '  (full detail)' : ''}`));
        const via = r.proxiedFrom ? ` (PROXY protocol from ${r.proxiedFrom})` : '';
        lines.push(`client ${r.client}${r.clientPort ? `:${r.clientPort}` : ''}${via}${r.local ? ` -> mailshim ${r.local}` : ''}`);
        break;
      }
      case 'link.connect':
        note(r.t, `upstream ${r.host}:${r.port} connected in ${r.ms} ms`);
        break;
      case 'link.tls':
        note(r.t, paint(c, 34, tlsLine(r.side, r.tls)));
        break;
      case 'link.tls-failed':
        bad(r.t, `TLS ${r.side} handshake failed: ${r.reason}`);
        if (r.hint) hint(r.hint);
        break;
      case 'rewrite': {
        const after = new Set(r.after);
        const changed = new Map<string, string>();
        for (const ch of r.changes) if (ch.before && ch.after) changed.set(ch.after, ch.before);
        const changedBefore = new Set(changed.values());
        rewrite = { before: new Set(r.before), changed, removed: r.before.filter((b) => !after.has(b) && !changedBefore.has(b)), greetingSeen: false };
        break;
      }
      case 'protocol': {
        const tag = paint(c, LEG_COLOR[r.leg], LEG_TAG[r.leg]);
        let mark = '';
        if (rewrite && r.leg === 'proxy->client' && /^250[- ]/.test(r.line)) {
          // The first line of the EHLO reply is the greeting; the rest are capabilities.
          const cap = r.line.slice(4);
          const was = rewrite.changed.get(cap);
          if (!rewrite.greetingSeen) rewrite.greetingSeen = true;
          else if (was !== undefined) mark = `   [rewritten; upstream said: ${was}]`;
          else if (!rewrite.before.has(cap)) mark = '   [added by mailshim]';
        }
        lines.push(`${stamp(r.t)} ${tag} ${wireText(r.line)}${mark ? paint(c, 33, wireText(mark)) : ''}`);
        if (rewrite && r.leg === 'proxy->client' && /^250 /.test(r.line)) {
          for (const cap of rewrite.removed) lines.push(`${pad}${paint(c, 33, `[removed by mailshim; upstream said: ${wireText(cap)}]`)}`);
          rewrite = undefined;
        }
        // The relayed copy of an upstream reply carries the same hint: show it once.
        if (r.hint && !(lastHint?.hint === r.hint && lastHint.line === r.line)) hint(r.hint);
        lastHint = r.hint ? { hint: r.hint, line: r.line } : undefined;
        break;
      }
      case 'auth': {
        const who = r.user !== undefined ? `, user ${r.user}` : '';
        const code = r.code !== undefined ? ` ${r.code}` : '';
        const text = `AUTH ${r.mechanism} (${r.mode}, ${r.side} side): ${r.result}${code}${who}${r.reason ? ` (${r.reason})` : ''}`;
        if (r.result === 'ok') note(r.t, text);
        else bad(r.t, text);
        break;
      }
      case 'data': {
        const what = r.captured === 'none' ? 'not captured' : `${r.captured} captured${r.truncated ? `, cut at ${Buffer.byteLength(r.text ?? '', 'latin1')} bytes` : ''}`;
        note(r.t, `message body: ${r.size} bytes (${what})`);
        if (r.text) {
          const body = wireText(r.text).replace(/\r\n\.\r\n$/, '\r\n').replace(/\r\n$/, '');
          for (const l of body.split('\r\n')) lines.push(`${pad}${paint(c, 2, '|')} ${l}`);
        }
        break;
      }
      case 'tx.commit':
      case 'tx.rollback': {
        const id = r.messageId ? `, Message-ID ${r.messageId}` : '';
        const text = wireText(`message ${r.type === 'tx.commit' ? 'accepted' : 'rejected'}: ${r.size} bytes from <${r.from}> to ${r.recipients.map((x) => `<${x}>`).join(', ') || '(none)'}${id}; upstream said ${r.code} ${r.reply}`);
        if (r.type === 'tx.commit') note(r.t, text);
        else bad(r.t, text);
        break;
      }
      case 'timeout':
        bad(r.t, `timeout: the ${r.side} stayed silent too long`);
        break;
      case 'capture.gap':
        bad(r.t, `${r.dropped} records of this session were not captured (queue full or write error)`);
        break;
      case 'session.end': {
        const s = r.summary;
        const text = `end: ${s.result}${s.reason ? ` (${s.reason})` : ''} after ${(s.durationMs / 1000).toFixed(3)} s; ${s.messages} message(s) sent, ${s.rejected} rejected; ${s.bytesIn} bytes in, ${s.bytesOut} bytes out`;
        if (s.result === 'ok' || s.result === 'client-closed') note(r.t, text);
        else bad(r.t, text);
        break;
      }
      default:
        break;
    }
  }
  return lines;
}

// --- follow ----------------------------------------------------------------------------------------

async function follow(dir: string, color: boolean, out: (s: string) => void): Promise<number> {
  let files: string[];
  try {
    files = transcriptFiles(dir);
  } catch (err) {
    return fail((err as Error).message);
  }
  // Only sessions that start from now on; finished ones are what `list` is for.
  // `rest` holds the bytes after the last newline: a record (and a UTF-8 sequence) may be cut mid-way.
  // `held`: the records of a message body still being written (data records marked `more`), shown whole.
  const known = new Map<string, { offset: number; rest: Buffer; held: CaptureRecord[]; done: boolean; sid: string }>();
  for (const f of files) known.set(f, { offset: 0, rest: Buffer.alloc(0), held: [], done: true, sid: '' });
  process.stderr.write(`following new sessions in ${dir} (Ctrl-C to stop)\n`);
  let stop = false;
  const onSig = () => {
    stop = true;
  };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  while (!stop) {
    let current: string[] = [];
    try {
      current = transcriptFiles(dir);
    } catch {
      // The directory may be recreated; try again.
    }
    for (const f of current) {
      let st = known.get(f);
      if (!st) {
        st = { offset: 0, rest: Buffer.alloc(0), held: [], done: false, sid: path.basename(f).replace(/^.*?Z-|\.jsonl$/g, '') };
        known.set(f, st);
      }
      if (st.done) continue;
      let chunk = Buffer.alloc(0);
      try {
        const fd = fs.openSync(f, 'r');
        try {
          const size = fs.fstatSync(fd).size;
          if (size > st.offset) {
            const buf = Buffer.alloc(Math.min(size - st.offset, 4 * 1024 * 1024));
            const n = fs.readSync(fd, buf, 0, buf.length, st.offset);
            st.offset += n;
            chunk = buf.subarray(0, n);
          }
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        st.done = true; // removed by retention
        continue;
      }
      if (chunk.length === 0) continue;
      const bytes = Buffer.concat([st.rest, chunk]);
      const cut = bytes.lastIndexOf(0x0a) + 1;
      st.rest = bytes.subarray(cut);
      const recs = [...st.held, ...parseRecords(bytes.subarray(0, cut).toString('utf8'))];
      let keep = recs.length;
      while (keep > 0 && recs[keep - 1]!.type === 'data' && (recs[keep - 1] as Extract<CaptureRecord, { type: 'data' }>).more) keep--;
      st.held = recs.splice(keep);
      for (const line of renderTranscript(recs, { color })) out(`${paint(color, 2, st.sid.slice(0, 8))} ${line}`);
      if (recs.some((r) => r.type === 'session.end')) st.done = true;
    }
    for (const f of [...known.keys()]) if (!current.includes(f) && current.length > 0) known.delete(f);
    await new Promise((r) => setTimeout(r, 300));
  }
  process.off('SIGINT', onSig);
  process.off('SIGTERM', onSig);
  return 0;
}
