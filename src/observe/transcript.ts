// Session capture: one JSON Lines file per session in capture.dir, named `<UTC start>-<sid>.jsonl`.
// Every line is one record with `t`, milliseconds since the session started (monotonic clock), and a
// `type` from the event vocabulary (session.start, link.*, protocol, rewrite, auth, tx.*, data, timeout,
// session.end). Lines arrive already redacted by the session; the SaslScrubber masks again anything that
// answers a 334, so a mode that forgets still leaks nothing.
//
// Writing never blocks a session: records go into a bounded in-memory queue drained by one async worker.
// When the queue is full or the disk refuses a write, records are dropped, counted, and one log line says
// so (and one more when writing works again). Retention (capture.maxFiles / capture.maxBytes) deletes the
// oldest finished files first.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Leg, CapabilityChange } from '../types.js';
import type { EventBus } from './bus.js';
import type { Observer, SessionEvent, SessionSummary, TlsInfo } from './events.js';
import type { Logger } from './log.js';
import { SaslScrubber, shownUser, withoutUser } from './redact.js';
import { hintForReply, hintForTls } from './hints.js';

export type BodyCapture = 'none' | 'headers' | 'full';

export interface CaptureOptions {
  dir: string;
  body: BodyCapture;
  bodyMaxBytes: number;
  maxFiles: number;
  maxBytes: number;
  redactUsernames: boolean;
}

/** One line of a transcript file. */
export type CaptureRecord = { t: number } & (
  | { type: 'session.start'; at: string; sid: string; listener: string; client: string; clientPort: number; proxiedFrom?: string; local?: string; detail?: 'full' }
  | { type: 'link.connect'; side: 'upstream'; host: string; port: number; ms: number }
  | { type: 'link.tls'; side: 'client' | 'upstream'; tls: TlsInfo }
  | { type: 'link.tls-failed'; side: 'client' | 'upstream'; reason: string; hint?: string }
  | { type: 'protocol'; leg: Leg; line: string; note?: string; hint?: string }
  | { type: 'rewrite'; before: string[]; after: string[]; changes: CapabilityChange[] }
  | { type: 'auth'; side: 'client' | 'upstream'; mechanism: string; mode: string; user?: string; result: string; code?: number; reason?: string }
  | { type: 'tx.begin'; from: string }
  /**
   * One message body. A large captured body is written as several records as it arrives (`more` on all but
   * the last; `size` so far): readers join them (joinData). The last record has the whole size.
   */
  | { type: 'data'; size: number; captured: BodyCapture; text?: string; truncated?: boolean; more?: true }
  | { type: 'tx.commit' | 'tx.rollback'; size: number; from: string; recipients: string[]; code: number; reply: string; messageId?: string }
  | { type: 'timeout'; side: 'client' | 'upstream' }
  | { type: 'session.end'; summary: SessionSummary }
  | { type: 'capture.gap'; dropped: number }
);

/** Records the queue may hold before it drops (bytes of JSON text). */
const QUEUE_MAX_BYTES = 8 * 1024 * 1024;

/** Captured body bytes per `data` record: far below the queue, so no body is lost for being large. */
const DATA_RECORD_BYTES = 256 * 1024;

/** Who a file belongs to, shared by the live session and its queued jobs (they outlive the session). */
interface Owner {
  sid: string;
  listener: string;
  /** capture.dropped was emitted for this session: once is enough. */
  reported: boolean;
}

interface Live {
  sid: string;
  owner: Owner;
  file: string;
  t0: number;
  body: BodyCapture;
  scrub: SaslScrubber;
  /** Body bytes seen in the current message; captured bytes not yet in a record, and all captured so far. */
  dataSize: number;
  dataParts: Buffer[];
  dataPartBytes: number;
  dataKept: number;
  dataDone: boolean;
  dataTruncated: boolean;
  /** Headers mode: the last 3 captured bytes, so a blank line split across chunks is found. */
  dataTail: Buffer;
  /** The first record's text, where the Message-ID is looked for. */
  dataHead: string | undefined;
  messageId: string | undefined;
  dropped: number;
}

interface Job {
  file: string;
  owner: Owner;
  text: string;
  /** Captured message body: counted against the body budget, not the queue's. */
  body?: boolean;
  /** This job closes the file (session.end): retention may consider it afterwards. */
  last?: boolean;
}

export interface CaptureStats {
  sessions: number;
  records: number;
  dropped: number;
  writeErrors: number;
  deletedFiles: number;
}

export class TranscriptWriter {
  readonly stats: CaptureStats = { sessions: 0, records: 0, dropped: 0, writeErrors: 0, deletedFiles: 0 };
  /** SIGUSR1: full body capture for sessions that start from now on. */
  fullDetail = false;
  private readonly live = new Map<string, Live>();
  private queue: Job[] = [];
  private queuedBytes = 0;
  /**
   * Body records have their own budget: one body of capture.bodyMaxBytes (plus the queue's size for JSON
   * escaping and a disk that lags), so a large body neither is dropped for its size nor crowds out the
   * protocol lines of other sessions. Bodies used to be held per session until the end of DATA anyway.
   */
  private queuedBodyBytes = 0;
  private running: Promise<void> | undefined;
  private failing = false;
  /** Finished files, oldest first, with their sizes and (when known) listeners (for retention). */
  private finished: { file: string; bytes: number; listener?: string }[] = [];
  private finishedBytes = 0;
  private readonly sizes = new Map<string, number>();
  private bus: EventBus | undefined;

  private constructor(
    readonly opts: CaptureOptions,
    private readonly log?: Logger,
  ) {}

  /** Create the directory (private: transcripts hold addresses, usernames and mail headers) and learn what is already there. */
  static async start(opts: CaptureOptions, log?: Logger): Promise<TranscriptWriter> {
    await fsp.mkdir(opts.dir, { recursive: true, mode: 0o700 });
    const w = new TranscriptWriter(opts, log);
    for (const name of (await fsp.readdir(opts.dir)).filter(isTranscriptName).sort()) {
      const file = path.join(opts.dir, name);
      const st = await fsp.stat(file).catch(() => undefined);
      if (!st) continue;
      w.finished.push({ file, bytes: st.size });
      w.finishedBytes += st.size;
    }
    // Limits lowered since the last run (or a directory filled by hand) hold from the start.
    await w.retain();
    return w;
  }

  /** Register on the bus; DATA chunks are asked for only when bodies are captured. */
  attach(bus: EventBus): () => void {
    this.bus = bus;
    return bus.add(this.observer, { data: this.opts.body !== 'none' });
  }

  /** Toggle full-detail capture (bodies up to capture.bodyMaxBytes) for new sessions; returns the new state. */
  toggleFullDetail(): boolean {
    this.fullDetail = !this.fullDetail;
    // The bus only emits DATA chunks once someone asked; it never needs to stop (observers ignore them).
    if (this.fullDetail && this.bus) this.bus.wantsData = true;
    return this.fullDetail;
  }

  readonly observer: Observer = (ev) => {
    // Our own drop reports (for metrics) must not re-enter the writer.
    if (ev.type === 'capture.dropped' || ev.type === 'auth.lockout') return;
    if (ev.type === 'session.start') {
      this.open(ev);
      return;
    }
    const sid = ev.type === 'session.end' ? ev.summary.sid : ev.sid;
    let s = this.live.get(sid);
    if (!s) {
      // A client TLS failure on an implicit-TLS listener happens before any session: give it its own file.
      if (ev.type !== 'link.tls-failed') return;
      s = this.open({ type: 'session.start', sid, listener: ev.listener ?? '?', client: ev.client ?? '?', clientPort: 0 });
      this.onEvent(s, ev);
      this.close(s);
      return;
    }
    this.onEvent(s, ev);
    if (ev.type === 'session.end') this.close(s);
  };

  private open(ev: Extract<SessionEvent, { type: 'session.start' }>): Live {
    const at = new Date();
    const stamp = at.toISOString().replace(/[-:]/g, '');
    const body: BodyCapture = this.fullDetail ? 'full' : this.opts.body;
    const s: Live = {
      sid: ev.sid,
      owner: { sid: ev.sid, listener: ev.listener, reported: false },
      file: path.join(this.opts.dir, `${stamp}-${ev.sid}.jsonl`),
      t0: performance.now(),
      body,
      scrub: new SaslScrubber(this.opts.redactUsernames),
      dataSize: 0,
      dataParts: [],
      dataPartBytes: 0,
      dataKept: 0,
      dataDone: false,
      dataTruncated: false,
      dataTail: Buffer.alloc(0),
      dataHead: undefined,
      messageId: undefined,
      dropped: 0,
    };
    this.live.set(ev.sid, s);
    this.stats.sessions++;
    this.put(s, {
      t: 0,
      type: 'session.start',
      at: at.toISOString(),
      sid: ev.sid,
      listener: ev.listener,
      client: ev.client,
      clientPort: ev.clientPort,
      ...(ev.proxiedFrom ? { proxiedFrom: ev.proxiedFrom } : {}),
      ...(ev.local ? { local: ev.local } : {}),
      ...(this.fullDetail ? { detail: 'full' as const } : {}),
    });
    return s;
  }

  private close(s: Live): void {
    this.live.delete(s.sid);
    this.enqueue({ file: s.file, owner: s.owner, text: '', last: true });
  }

  private onEvent(s: Live, ev: SessionEvent): void {
    if (ev.type === 'tx.data') {
      this.onData(s, ev.chunk);
      return;
    }
    // The body ends before anything else happens in the session (the upstream answers only after the dot).
    if (s.dataSize > 0 || s.dataParts.length > 0 || s.dataHead !== undefined) this.flushData(s);
    const t = this.now(s);
    switch (ev.type) {
      case 'protocol': {
        const line = s.scrub.scrub(ev.leg, ev.line, ev.note);
        const final = /^\d{3}( |$)/.test(line);
        const hint = final && (ev.leg === 'upstream->proxy' || ev.leg === 'proxy->client') ? hintForReply(line) : undefined;
        this.put(s, { t, type: 'protocol', leg: ev.leg, line, ...(ev.note && line === ev.line ? { note: ev.note } : {}), ...(hint ? { hint } : {}) });
        break;
      }
      case 'link.connect':
        this.put(s, { t, type: ev.type, side: ev.side, host: ev.host, port: ev.port, ms: ev.ms });
        break;
      case 'link.tls':
        this.put(s, { t, type: ev.type, side: ev.side, tls: ev.tls });
        break;
      case 'link.tls-failed': {
        const hint = hintForTls(ev.reason);
        this.put(s, { t, type: ev.type, side: ev.side, reason: ev.reason, ...(hint ? { hint } : {}) });
        break;
      }
      case 'rewrite':
        this.put(s, { t, type: ev.type, before: ev.before, after: ev.after, changes: ev.changes });
        break;
      case 'auth': {
        const user = shownUser(ev.user, this.opts.redactUsernames);
        // Modes keep the username out of `reason`; masking it there too costs nothing.
        const reason = this.opts.redactUsernames ? withoutUser(ev.reason, ev.user) : ev.reason;
        this.put(s, { t, type: ev.type, side: ev.side, mechanism: ev.mechanism, mode: ev.mode, ...(user !== undefined ? { user } : {}), result: ev.result, ...(ev.code !== undefined ? { code: ev.code } : {}), ...(reason ? { reason } : {}) });
        break;
      }
      case 'tx.begin':
        s.messageId = undefined;
        this.put(s, { t, type: ev.type, from: ev.from });
        break;
      case 'tx.commit':
      case 'tx.rollback':
        this.put(s, {
          t,
          type: ev.type,
          size: ev.size,
          from: ev.from,
          recipients: ev.recipients,
          code: ev.code,
          reply: ev.reply,
          ...(s.messageId ? { messageId: s.messageId } : {}),
        });
        s.messageId = undefined;
        break;
      case 'timeout':
        this.put(s, { t, type: ev.type, side: ev.side });
        break;
      case 'session.end':
        this.put(s, { t, type: ev.type, summary: { ...ev.summary, authUser: shownUser(ev.summary.authUser, this.opts.redactUsernames) } });
        break;
      default:
        break;
    }
  }

  private onData(s: Live, chunk: Buffer): void {
    s.dataSize += chunk.length;
    if (s.body === 'none' || s.dataDone) return;
    const room = this.opts.bodyMaxBytes - s.dataKept;
    if (room <= 0) {
      s.dataTruncated = true;
      s.dataDone = true;
      return;
    }
    let part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (chunk.length > room) s.dataTruncated = true;
    if (s.body === 'headers') {
      // Keep only the header section: up to and including the first empty line. Only the new bytes (and
      // the 3 before them) are scanned, so a long header section costs linear time.
      const seen = s.dataTail.length > 0 ? Buffer.concat([s.dataTail, part]) : part;
      const end = seen.indexOf('\r\n\r\n');
      if (end >= 0) {
        part = part.subarray(0, end + 4 - s.dataTail.length);
        s.dataDone = true;
      }
      s.dataTail = Buffer.from(seen.subarray(Math.max(0, seen.length - 3)));
    }
    // Copy: the session reuses nothing, but a chunk may be a view into a larger buffer.
    s.dataParts.push(Buffer.from(part));
    s.dataPartBytes += part.length;
    s.dataKept += part.length;
    if (s.dataPartBytes >= DATA_RECORD_BYTES) this.putDataRecords(s);
  }

  /** Write the captured bytes so far as `more` records of DATA_RECORD_BYTES; keep the rest for later. */
  private putDataRecords(s: Live): void {
    const all = Buffer.concat(s.dataParts);
    let off = 0;
    for (; all.length - off >= DATA_RECORD_BYTES; off += DATA_RECORD_BYTES) {
      const text = all.subarray(off, off + DATA_RECORD_BYTES).toString('latin1');
      s.dataHead ??= text;
      this.put(s, { t: this.now(s), type: 'data', size: s.dataSize, captured: s.body, text, more: true });
    }
    s.dataParts = off < all.length ? [all.subarray(off)] : [];
    s.dataPartBytes = all.length - off;
  }

  private flushData(s: Live): void {
    const text = Buffer.concat(s.dataParts).toString('latin1');
    s.messageId = messageIdOf(s.dataHead ?? text);
    this.put(s, {
      t: this.now(s),
      type: 'data',
      size: s.dataSize,
      captured: s.body,
      ...(s.body !== 'none' ? { text } : {}),
      ...(s.dataTruncated ? { truncated: true } : {}),
    });
    s.dataSize = 0;
    s.dataParts = [];
    s.dataPartBytes = 0;
    s.dataKept = 0;
    s.dataDone = false;
    s.dataTruncated = false;
    s.dataTail = Buffer.alloc(0);
    s.dataHead = undefined;
  }

  private now(s: Live): number {
    return Math.round((performance.now() - s.t0) * 10) / 10;
  }

  private put(s: Live, rec: CaptureRecord): void {
    if (s.dropped > 0 && this.queuedBytes < QUEUE_MAX_BYTES / 2) {
      const gap: CaptureRecord = { t: rec.t, type: 'capture.gap', dropped: s.dropped };
      s.dropped = 0;
      this.enqueue({ file: s.file, owner: s.owner, text: JSON.stringify(gap) + '\n' });
    }
    const text = JSON.stringify(rec) + '\n';
    const body = rec.type === 'data' && rec.text !== undefined;
    const full = body ? this.queuedBodyBytes + text.length > QUEUE_MAX_BYTES + this.opts.bodyMaxBytes : this.queuedBytes + text.length > QUEUE_MAX_BYTES;
    if (full) {
      s.dropped++;
      this.drop(1, 'the capture queue is full', s.owner);
      return;
    }
    this.stats.records++;
    this.enqueue({ file: s.file, owner: s.owner, text, ...(body ? { body } : {}) });
  }

  private enqueue(job: Job): void {
    this.queue.push(job);
    if (job.body) this.queuedBodyBytes += job.text.length;
    else this.queuedBytes += job.text.length;
    this.kick();
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      // Jobs queued between the worker's last look and here.
      if (this.queue.length > 0) this.kick();
    });
  }

  private drop(n: number, why: string, owner: Owner): void {
    this.stats.dropped += n;
    // One report per session (metrics count sessions whose capture is incomplete, not records).
    if (!owner.reported) {
      owner.reported = true;
      this.bus?.emit({ type: 'capture.dropped', sid: owner.sid, listener: owner.listener, reason: 'write-error' });
    }
    if (!this.failing) {
      this.failing = true;
      this.log?.error({ dir: this.opts.dir, reason: why }, 'capture: transcripts are being dropped (sessions go on)');
    }
  }

  /** One worker: batches jobs per file so a busy session costs one append per batch. */
  private async drain(): Promise<void> {
    for (let rounds = 0; this.queue.length > 0 && rounds < 1_000_000; rounds++) {
      const jobs = this.queue;
      this.queue = [];
      const byFile = new Map<string, { text: string; records: number; last: boolean; owner: Owner }>();
      for (const j of jobs) {
        if (j.body) this.queuedBodyBytes -= j.text.length;
        else this.queuedBytes -= j.text.length;
        if (!j.file) continue;
        const b = byFile.get(j.file) ?? { text: '', records: 0, last: false, owner: j.owner };
        b.text += j.text;
        if (j.text) b.records++;
        b.last ||= Boolean(j.last);
        byFile.set(j.file, b);
      }
      for (const [file, b] of byFile) {
        if (b.text) {
          try {
            await fsp.appendFile(file, b.text, { mode: 0o600 });
            this.sizes.set(file, (this.sizes.get(file) ?? 0) + Buffer.byteLength(b.text));
            if (this.failing) {
              this.failing = false;
              this.log?.info({ dir: this.opts.dir }, 'capture: writing transcripts again');
            }
          } catch (err) {
            this.stats.writeErrors++;
            this.drop(b.records, (err as NodeJS.ErrnoException).code ?? String(err), b.owner);
          }
        }
        if (b.last) {
          const bytes = this.sizes.get(file) ?? 0;
          this.sizes.delete(file);
          if (bytes > 0) {
            this.finished.push({ file, bytes, listener: b.owner.listener });
            this.finishedBytes += bytes;
          } else {
            // Every write failed (disk full): an empty file is no transcript, and retention would never see it.
            await fsp.unlink(file).catch(() => undefined);
          }
          await this.retain();
        }
      }
    }
  }

  /** Delete the oldest finished transcripts until both limits hold. */
  private async retain(): Promise<void> {
    const { maxFiles, maxBytes } = this.opts;
    for (let guard = 0; guard < 100_000 && this.finished.length > 0; guard++) {
      const liveCount = this.live.size;
      const overFiles = this.finished.length + liveCount > maxFiles;
      if (!overFiles && this.finishedBytes <= maxBytes) break;
      const oldest = this.finished.shift()!;
      const listener = oldest.listener ?? (await listenerOfFile(oldest.file));
      this.bus?.emit({ type: 'capture.dropped', sid: sidOfFile(oldest.file), ...(listener ? { listener } : {}), reason: overFiles ? 'max-files' : 'max-bytes' });
      this.finishedBytes -= oldest.bytes;
      try {
        await fsp.unlink(oldest.file);
        this.stats.deletedFiles++;
      } catch {
        // Already gone (an operator cleaned up): nothing to do.
      }
    }
  }

  /** Wait until everything queued so far is on disk (shutdown, tests). */
  async flush(): Promise<void> {
    for (let i = 0; i < 1000 && (this.running || this.queue.length > 0); i++) await (this.running ?? Promise.resolve());
  }
}

/** `Message-ID:` from a header section (folded headers unfolded). */
export function messageIdOf(text: string): string | undefined {
  const end = text.indexOf('\r\n\r\n');
  const head = (end >= 0 ? text.slice(0, end) : text).replace(/\r\n[ \t]+/g, ' ');
  const m = /^message-id:[ \t]*(.+)$/im.exec(head);
  return m ? m[1].trim() : undefined;
}

// --- reading -------------------------------------------------------------------------------------

/** The listener named by a transcript's first record (files of an earlier run), if it can be read. */
async function listenerOfFile(file: string): Promise<string | undefined> {
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const buf = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const first = buf.subarray(0, bytesRead).toString('utf8').split('\n')[0]!;
      const rec = parseRecords(first + '\n')[0];
      return rec?.type === 'session.start' ? rec.listener : undefined;
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

function sidOfFile(file: string): string {
  return path.basename(file).replace(/^.*?Z-|\.jsonl$/g, '');
}

export function isTranscriptName(name: string): boolean {
  return /^\d{8}T\d{6}\.\d{3}Z-[^/]+\.jsonl$/.test(name);
}

/**
 * Parse a transcript file; a torn last line (a session still being written) is skipped, and so is any
 * record without the fields its type promises (a damaged or hand-edited file), so readers can trust them.
 */
export function parseRecords(text: string): CaptureRecord[] {
  const out: CaptureRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue; // Partial line at the end of a live file.
    }
    if (isRecord(value)) out.push(value);
  }
  return out;
}

const LEGS = new Set(['client->proxy', 'proxy->client', 'proxy->upstream', 'upstream->proxy']);
type Fields = Record<string, unknown>;
const str = (v: unknown): v is string => typeof v === 'string';
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const obj = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);
const strs = (v: unknown): boolean => Array.isArray(v) && v.every(str);

/** The fields each record type must have for trace show / list / pcap to read it. */
const SHAPES: Record<CaptureRecord['type'], (r: Fields) => boolean> = {
  'session.start': (r) => str(r.sid) && str(r.at) && str(r.listener) && str(r.client),
  'link.connect': (r) => str(r.host) && num(r.port),
  'link.tls': (r) => obj(r.tls),
  'link.tls-failed': (r) => str(r.side) && str(r.reason),
  protocol: (r) => str(r.leg) && LEGS.has(r.leg) && str(r.line),
  rewrite: (r) => strs(r.before) && strs(r.after) && Array.isArray(r.changes) && r.changes.every(obj),
  auth: (r) => str(r.side) && str(r.mechanism) && str(r.mode) && str(r.result),
  'tx.begin': (r) => str(r.from),
  data: (r) => num(r.size) && str(r.captured) && (r.text === undefined || str(r.text)) && (r.more === undefined || r.more === true),
  'tx.commit': (r) => num(r.size) && str(r.from) && strs(r.recipients) && num(r.code) && str(r.reply),
  'tx.rollback': (r) => num(r.size) && str(r.from) && strs(r.recipients) && num(r.code) && str(r.reply),
  timeout: (r) => str(r.side),
  'session.end': (r) =>
    obj(r.summary) && str(r.summary.result) && [r.summary.durationMs, r.summary.messages, r.summary.rejected, r.summary.bytesIn, r.summary.bytesOut].every(num),
  'capture.gap': (r) => num(r.dropped),
};

/**
 * Records with each message body in one `data` record: a run of `more` records and the record that ends
 * it become one (the last record's size and flags, all the text). A run cut short (a gap, a file still
 * being written) ends where it stops.
 */
export function joinData(records: CaptureRecord[]): CaptureRecord[] {
  const out: CaptureRecord[] = [];
  let run: Extract<CaptureRecord, { type: 'data' }>[] = [];
  const close = () => {
    if (run.length === 0) return;
    const last = run[run.length - 1]!;
    const { more: _more, ...rest } = last;
    out.push(run.length === 1 ? rest : { ...rest, text: run.map((r) => r.text ?? '').join('') });
    run = [];
  };
  for (const r of records) {
    if (r.type === 'data') {
      run.push(r);
      if (!r.more) close();
      continue;
    }
    close();
    out.push(r);
  }
  close();
  return out;
}

function isRecord(v: unknown): v is CaptureRecord {
  if (!obj(v) || !num(v.t) || !str(v.type) || !Object.hasOwn(SHAPES, v.type)) return false;
  return SHAPES[v.type as CaptureRecord['type']](v);
}

/** Files are UTF-8 JSON (what JSON.stringify of the records gives), whatever the strings inside hold. */
export function readRecords(file: string): CaptureRecord[] {
  return parseRecords(fs.readFileSync(file, 'utf8'));
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Protocol lines and body text are byte strings (one char per wire byte, as the session reads them):
 * for display, the bytes decoded as UTF-8, or left as ISO 8859-1 where they are not valid UTF-8.
 */
export function wireText(s: string): string {
  // Plain ASCII (most lines) and strings that are already text (chars above 0xFF) need no work.
  if (!/[\x80-\xff]/.test(s) || /[^\x00-\xff]/.test(s)) return s;
  try {
    return utf8Strict.decode(Buffer.from(s, 'latin1'));
  } catch {
    return s;
  }
}

export interface SessionInfo {
  sid: string;
  file: string;
  at: Date;
  listener: string;
  client: string;
  proxiedFrom?: string;
  user?: string;
  authResult?: string;
  messages: number;
  rejected: number;
  result: string;
  reason?: string;
  durationMs?: number;
  failed: boolean;
  /** The last failing reply or TLS failure, for one-line summaries. */
  problem?: string;
}

/** What `trace list` shows about one transcript. */
export function sessionInfo(file: string, records: CaptureRecord[]): SessionInfo {
  const start = records.find((r) => r.type === 'session.start') as Extract<CaptureRecord, { type: 'session.start' }> | undefined;
  const end = records.find((r) => r.type === 'session.end') as Extract<CaptureRecord, { type: 'session.end' }> | undefined;
  const info: SessionInfo = {
    sid: start?.sid ?? sidOfFile(file),
    file,
    at: new Date(start?.at ?? 0),
    listener: start?.listener ?? '?',
    client: start?.client ?? '?',
    proxiedFrom: start?.proxiedFrom,
    messages: 0,
    rejected: 0,
    result: end ? end.summary.result : 'open',
    reason: end?.summary.reason,
    durationMs: end?.summary.durationMs,
    failed: false,
  };
  for (const r of records) {
    if (r.type === 'auth') {
      if (r.user) info.user = r.user;
      info.authResult = r.result;
      if (r.result !== 'ok') info.failed = true;
    } else if (r.type === 'tx.commit') info.messages++;
    else if (r.type === 'tx.rollback') {
      info.rejected++;
      info.failed = true;
      info.problem = wireText(`${r.code} ${r.reply}`);
    } else if (r.type === 'link.tls-failed') {
      info.failed = true;
      info.problem = `TLS (${r.side}): ${r.reason}`;
      if (!end) info.result = 'tls-failed';
    } else if (r.type === 'protocol' && r.leg === 'upstream->proxy' && /^[45]\d\d /.test(r.line)) {
      info.problem = wireText(r.line);
    }
  }
  if (end?.summary.authUser && end.summary.authUser !== '(passthrough)') info.user ??= end.summary.authUser;
  if (end && !['ok', 'client-closed'].includes(end.summary.result)) info.failed = true;
  return info;
}
