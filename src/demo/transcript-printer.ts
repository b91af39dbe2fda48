// Prints mailshim's session events as a readable C:/S: transcript of both legs, in the order they happened:
// "device" lines are the client <-> mailshim leg, "provider" lines the mailshim <-> upstream leg. The EHLO
// reply the client sees is marked against what the upstream really said. Lines arrive already redacted
// (the session masks AUTH data where it produces the line); this printer adds no secrets and removes none.
import type { Observer, SessionEvent, TlsInfo } from '../observe/events.js';
import type { Leg } from '../types.js';

export interface Style {
  device(s: string): string;
  provider(s: string): string;
  note(s: string): string;
  good(s: string): string;
  bad(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const ansi = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;

export const colours: Style = {
  device: ansi(36, 39),
  provider: ansi(35, 39),
  note: ansi(33, 39),
  good: ansi(32, 39),
  bad: ansi(31, 39),
  dim: ansi(2, 22),
  bold: ansi(1, 22),
};

const same = (s: string) => s;
export const plain: Style = { device: same, provider: same, note: same, good: same, bad: same, dim: same, bold: same };

/** Colour only in a terminal, and never when NO_COLOR is set (no-color.org). */
export function styleFor(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): Style {
  return stream.isTTY && !env.NO_COLOR && env.TERM !== 'dumb' ? colours : plain;
}

export interface PrinterOptions {
  write: (text: string) => void;
  style: Style;
  /** Names for the two peers in the transcript (the story's words: "device", "provider"). */
  clientName?: string;
  upstreamName?: string;
}

interface PendingRewrite {
  before: string[];
  after: string[];
}

const TAG_WIDTH = 9;
/** Column where annotations start, so they line up after the protocol text. */
const NOTE_COLUMN = 62;

export class TranscriptPrinter {
  /** TLS of each side of each session, for the summary. */
  readonly tls = new Map<string, { client?: TlsInfo; upstream?: TlsInfo }>();
  readonly ended = new Set<string>();
  private rewrite: PendingRewrite | undefined;
  private readonly clientName: string;
  private readonly upstreamName: string;

  constructor(private readonly o: PrinterOptions) {
    this.clientName = o.clientName ?? 'device';
    this.upstreamName = o.upstreamName ?? 'provider';
  }

  readonly observer: Observer = (ev) => this.on(ev);

  private on(ev: SessionEvent): void {
    const s = this.o.style;
    switch (ev.type) {
      case 'session.start':
        this.meta(`${this.clientName} connected to mailshim from ${ev.client}:${ev.clientPort} (listener ${ev.listener})`);
        break;
      case 'link.connect':
        // Emitted when the upstream's TCP connection is up, before its greeting and TLS.
        this.meta(`mailshim connected to ${this.upstreamName} ${ev.host}:${ev.port} (${ev.ms} ms)`);
        break;
      case 'link.tls': {
        const entry = this.tls.get(ev.sid) ?? {};
        entry[ev.side] = ev.tls;
        this.tls.set(ev.sid, entry);
        const who = ev.side === 'client' ? `${this.clientName} <-> mailshim` : `mailshim <-> ${this.upstreamName}`;
        const cert =
          ev.side === 'upstream' && ev.tls.peerSubject
            ? `; ${this.upstreamName} certificate ${ev.tls.peerSubject}${ev.tls.authorized ? ' verified' : ' NOT verified'}`
            : '';
        this.line(ev.side === 'client' ? 'device' : 'provider', s.good(`== TLS ${ev.tls.version ?? '?'} ${ev.tls.cipher ?? ''} (${who}${cert})`));
        break;
      }
      case 'link.tls-failed':
        this.line(ev.side === 'client' ? 'device' : 'provider', s.bad(`!! TLS failed: ${ev.reason}`));
        break;
      case 'protocol':
        this.protocol(ev.leg, ev.line, ev.note);
        break;
      case 'rewrite':
        this.rewrite = { before: ev.before, after: ev.after };
        break;
      case 'auth': {
        const where = ev.side === 'client' ? 'verified by mailshim' : `answered by ${this.upstreamName}`;
        const who = ev.user ? ` as ${ev.user}` : '';
        const text = `AUTH ${ev.mechanism}${who} ${where} (auth.mode ${ev.mode}): ${ev.result}`;
        this.meta(ev.result === 'ok' ? s.good(text) : s.bad(text));
        break;
      }
      case 'tx.commit':
        this.meta(s.good(`message of ${ev.size} bytes from <${ev.from}> accepted by ${this.upstreamName}: ${ev.code} ${ev.reply}`));
        break;
      case 'tx.rollback':
        this.meta(s.bad(`message from <${ev.from}> NOT accepted: ${ev.code} ${ev.reply}`));
        break;
      case 'timeout':
        this.meta(s.bad(`${ev.side === 'client' ? this.clientName : this.upstreamName} timed out`));
        break;
      case 'session.end': {
        const sum = ev.summary;
        this.ended.add(sum.sid);
        const text = `session end: ${sum.result}${sum.reason ? ` (${sum.reason})` : ''}, ${sum.messages} message(s), ${sum.bytesIn} bytes in / ${sum.bytesOut} out, ${sum.durationMs} ms`;
        this.meta(sum.result === 'ok' || sum.result === 'client-closed' ? text : s.bad(text));
        break;
      }
      default:
        break;
    }
  }

  private protocol(leg: Leg, text: string, note?: string): void {
    const side = leg === 'client->proxy' || leg === 'proxy->client' ? 'device' : 'provider';
    const who = leg === 'client->proxy' || leg === 'proxy->upstream' ? 'C:' : 'S:';
    let mark = note ? this.o.style.note(note) : '';
    if (leg === 'proxy->client' && this.rewrite && /^250[ -]/.test(text)) {
      const r = this.rewrite;
      const cap = text.slice(4);
      // The first line of an EHLO reply is the server's name; capabilities follow.
      if (this.rewriteStarted) mark = this.markCapability(cap, r);
      this.rewriteStarted = true;
      if (text[3] === ' ') {
        this.print(side, `${who} ${text}`, mark);
        const hidden = r.before.filter((b) => !r.after.includes(b) && !r.after.some((a) => keyword(a) === keyword(b)));
        for (const h of hidden) this.line(side, this.o.style.note(`   (hidden by mailshim: ${this.upstreamName} offered "${h}")`));
        this.rewrite = undefined;
        this.rewriteStarted = false;
        return;
      }
    } else if (/^334 ./.test(text)) {
      // Server challenges and prompts are not secret; decoded they show what the exchange is.
      const decoded = Buffer.from(text.slice(4), 'base64').toString('latin1');
      if (/^[\x20-\x7e]+$/.test(decoded)) mark = this.o.style.dim(`(${decoded})`);
    }
    this.print(side, `${who} ${text}`, mark);
  }

  private rewriteStarted = false;

  private markCapability(cap: string, r: PendingRewrite): string {
    const s = this.o.style;
    if (r.before.includes(cap)) return '';
    const was = r.before.filter((b) => keyword(b) === keyword(cap));
    if (was.length > 0) return s.note(`<- rewritten; ${this.upstreamName} said "${was.join('", "')}"`);
    return s.note(`<- added by mailshim`);
  }

  private print(side: 'device' | 'provider', text: string, mark: string): void {
    const indent = side === 'provider' ? '    ' : '';
    const body = indent + text;
    const padded = mark ? body.padEnd(NOTE_COLUMN - TAG_WIDTH) + ' ' + mark : body;
    this.line(side, padded);
  }

  private line(side: 'device' | 'provider', text: string): void {
    const s = this.o.style;
    const name = side === 'device' ? this.clientName : this.upstreamName;
    const tag = name.padEnd(TAG_WIDTH);
    this.o.write(`${side === 'device' ? s.device(tag) : s.provider(tag)}${text}\n`);
  }

  private meta(text: string): void {
    this.o.write(`${this.o.style.dim('--'.padEnd(TAG_WIDTH))}${text}\n`);
  }
}

/** The capability keyword: `AUTH=LOGIN PLAIN` -> `AUTH=`, `SIZE 20971520` -> `SIZE`. */
function keyword(cap: string): string {
  const m = /^([A-Za-z0-9-]+=?)/.exec(cap);
  return (m ? m[1]! : cap).toUpperCase();
}
