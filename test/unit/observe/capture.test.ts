import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SaslScrubber, maskAuthCommand, USERNAME_NOTE } from '../../../src/observe/redact.js';
import { hintForReply, hintForTls } from '../../../src/observe/hints.js';
import { TranscriptWriter, messageIdOf, parseRecords, readRecords, sessionInfo, wireText } from '../../../src/observe/transcript.js';
import { transcriptToPcap } from '../../../src/observe/pcap.js';
import { EventBus } from '../../../src/observe/bus.js';
import { parseSince, renderTranscript } from '../../../src/cli/trace.js';

describe('redact', () => {
  it('masks an AUTH initial response and every line that answers a 334', () => {
    expect(maskAuthCommand('AUTH PLAIN AGFsaWNlAHNlY3JldA==')).toBe('AUTH PLAIN ********');
    expect(maskAuthCommand('AUTH LOGIN')).toBe('AUTH LOGIN');
    const s = new SaslScrubber(false);
    expect(s.scrub('upstream->proxy', '334 VXNlcm5hbWU6')).toBe('334 VXNlcm5hbWU6');
    expect(s.scrub('proxy->upstream', 'c2VjcmV0')).toBe('********');
    expect(s.scrub('proxy->client', '334 UGFzc3dvcmQ6')).toBe('334 UGFzc3dvcmQ6');
    expect(s.scrub('client->proxy', '*')).toBe('*');
    expect(s.scrub('client->proxy', 'MAIL FROM:<a@b>')).toBe('MAIL FROM:<a@b>');
  });

  it('keeps a line marked as a username unless capture.redactUsernames', () => {
    const shown = new SaslScrubber(false);
    shown.scrub('proxy->client', '334 VXNlcm5hbWU6');
    expect(shown.scrub('client->proxy', 'YWxpY2U=', USERNAME_NOTE)).toBe('YWxpY2U=');
    const hidden = new SaslScrubber(true);
    hidden.scrub('proxy->client', '334 VXNlcm5hbWU6');
    expect(hidden.scrub('client->proxy', 'YWxpY2U=', USERNAME_NOTE)).toBe('********');
  });
});

describe('hints', () => {
  it('knows the provider replies from the issue', () => {
    expect(hintForReply('535 5.7.139 Authentication unsuccessful')).toMatch(/SMTP AUTH is disabled/);
    expect(hintForReply('421 4.7.66 TLS 1.0 and 1.1 are not supported')).toMatch(/TLS below 1\.2/);
    expect(hintForReply('530 5.7.57 Client not authenticated to send mail')).toMatch(/did not authenticate/);
    expect(hintForReply('535 5.7.8 Username and Password not accepted')).toMatch(/not accepted/);
    expect(hintForReply('454 4.7.0 Too many login attempts')).toMatch(/temporary/);
    expect(hintForReply('550 5.7.1 Relaying denied')).toMatch(/relaying denied/);
    expect(hintForReply('535 authorization failed (#5.7.0)')).toMatch(/qmail/);
    expect(hintForReply('250 2.0.0 Ok')).toBeUndefined();
    expect(hintForTls('TLS alert protocol_version (ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION)')).toMatch(/alert 70/);
  });
});

describe('TranscriptWriter', () => {
  const start = (sid: string) => ({ type: 'session.start' as const, sid, listener: 'l', client: '127.0.0.1', clientPort: 1 });
  const end = (sid: string) => ({
    type: 'session.end' as const,
    summary: { sid, listener: 'l', client: '127.0.0.1:1', upstream: 'u:25', bytesIn: 0, bytesOut: 0, messages: 0, rejected: 0, result: 'ok' as const, durationMs: 1, normalisedLineEndings: 0 },
  });

  it('keeps at most capture.maxFiles, deleting the oldest first', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-'));
    const w = await TranscriptWriter.start({ dir, body: 'headers', bodyMaxBytes: 100, maxFiles: 2, maxBytes: 1e9, redactUsernames: false });
    const bus = new EventBus();
    const dropped: unknown[] = [];
    bus.add((ev) => void (ev.type === 'capture.dropped' && dropped.push(ev)));
    w.attach(bus);
    for (const sid of ['a1', 'b2', 'c3']) {
      w.observer(start(sid));
      w.observer({ type: 'protocol', sid, leg: 'client->proxy', line: 'EHLO x' });
      w.observer(end(sid));
      await w.flush();
      await new Promise((r) => setTimeout(r, 5)); // distinct file-name timestamps
    }
    const files = fs.readdirSync(dir).sort();
    expect(files.map((f) => f.replace(/^.*Z-/, ''))).toEqual(['b2.jsonl', 'c3.jsonl']);
    // Labelled with the session's listener: metrics no longer knows the sid by now.
    expect(dropped).toEqual([{ type: 'capture.dropped', sid: 'a1', listener: 'l', reason: 'max-files' }]);
    fs.rmSync(dir, { recursive: true });
  });

  it('applies retention when it starts, not only when a session ends', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-'));
    const names = ['20260101T000001.000Z-old1.jsonl', '20260101T000002.000Z-old2.jsonl', '20260101T000003.000Z-old3.jsonl', '20260101T000004.000Z-old4.jsonl'];
    for (const n of names) fs.writeFileSync(path.join(dir, n), '{"t":0,"type":"session.start","at":"2026-01-01T00:00:00.000Z","sid":"x","listener":"l","client":"c","clientPort":1}\n');
    const w = await TranscriptWriter.start({ dir, body: 'none', bodyMaxBytes: 0, maxFiles: 2, maxBytes: 1e9, redactUsernames: false });
    expect(fs.readdirSync(dir).sort()).toEqual(names.slice(2));
    expect(w.stats.deletedFiles).toBe(2);
    fs.rmSync(dir, { recursive: true });
  });

  it('a write error drops records, counts them, logs once, and never throws into the session', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-'));
    const logged: string[] = [];
    const log = { error: (_o: unknown, m: string) => logged.push(m), info: () => {} } as never;
    const w = await TranscriptWriter.start({ dir, body: 'none', bodyMaxBytes: 0, maxFiles: 10, maxBytes: 1e9, redactUsernames: false }, log);
    const bus = new EventBus();
    const dropped: string[] = [];
    bus.add((ev) => ev.type === 'capture.dropped' && dropped.push(ev.reason));
    w.attach(bus);
    fs.rmSync(dir, { recursive: true }); // the disk "goes away"
    for (const sid of ['x1', 'x2']) {
      bus.emit(start(sid));
      bus.emit({ type: 'protocol', sid, leg: 'client->proxy', line: 'NOOP' });
      bus.emit(end(sid));
    }
    await w.flush();
    expect(w.stats.dropped).toBeGreaterThanOrEqual(6);
    expect(logged).toEqual(['capture: transcripts are being dropped (sessions go on)']);
    expect(dropped.length).toBeGreaterThan(0);
  });

  it('headers mode: a huge header section costs linear time (only new bytes are scanned for the blank line)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-'));
    const w = await TranscriptWriter.start({ dir, body: 'headers', bodyMaxBytes: 64 * 1024 * 1024, maxFiles: 10, maxBytes: 1e10, redactUsernames: false });
    w.observer(start('h1'));
    w.observer({ type: 'tx.begin', sid: 'h1', from: 'a@b' });
    const line = 'X-Filler: ' + 'x'.repeat(100) + '\r\n';
    const chunk = Buffer.from(line.repeat(Math.floor(16384 / line.length)));
    const n = Math.ceil((16 * 1024 * 1024) / chunk.length);
    let ms = 0;
    const feed = (c: Buffer) => {
      const t0 = performance.now();
      w.observer({ type: 'tx.data', sid: 'h1', chunk: c });
      ms += performance.now() - t0;
    };
    for (let i = 0; i < n; i++) {
      feed(chunk);
      // A disk that keeps up (a session's chunks arrive over many event-loop turns).
      if (i % 64 === 63) await w.flush();
    }
    feed(Buffer.from('Subject: end\r\n\r\nbody\r\n.\r\n'));
    w.observer({ type: 'tx.commit', sid: 'h1', size: n * chunk.length, from: 'a@b', recipients: ['c@d'], code: 250, reply: 'ok' });
    w.observer(end('h1'));
    await w.flush();
    // Re-joining every chunk per chunk took seconds here (quadratic); linear work is a few tens of ms.
    expect(ms).toBeLessThan(1000);
    const data = readRecords(path.join(dir, fs.readdirSync(dir)[0]!)).filter((r) => r.type === 'data') as { text: string }[];
    const text = data.map((d) => d.text).join('');
    expect(text.length).toBe(n * chunk.length + 'Subject: end\r\n\r\n'.length);
    expect(text.endsWith('Subject: end\r\n\r\n')).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });

  it('finds the blank line that ends the headers when it is split across chunks', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-'));
    const w = await TranscriptWriter.start({ dir, body: 'headers', bodyMaxBytes: 1000, maxFiles: 10, maxBytes: 1e9, redactUsernames: false });
    w.observer(start('s1'));
    w.observer({ type: 'tx.begin', sid: 's1', from: 'a@b' });
    for (const c of ['Subject: x\r', '\n\r', '\nhidden body\r\n.\r\n']) w.observer({ type: 'tx.data', sid: 's1', chunk: Buffer.from(c) });
    w.observer(end('s1'));
    await w.flush();
    const data = readRecords(path.join(dir, fs.readdirSync(dir)[0]!)).find((r) => r.type === 'data') as { text: string };
    expect(data.text).toBe('Subject: x\r\n\r\n');
    fs.rmSync(dir, { recursive: true });
  });

  it('headers mode keeps the header section and finds the Message-ID', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cap-'));
    const w = await TranscriptWriter.start({ dir, body: 'headers', bodyMaxBytes: 1000, maxFiles: 10, maxBytes: 1e9, redactUsernames: false });
    w.observer(start('m1'));
    w.observer({ type: 'tx.begin', sid: 'm1', from: 'a@b' });
    w.observer({ type: 'tx.data', sid: 'm1', chunk: Buffer.from('Subject: x\r\nMessage-ID:\r\n <id@h>\r\n\r\nsecret body\r\n.\r\n') });
    w.observer({ type: 'tx.commit', sid: 'm1', size: 49, from: 'a@b', recipients: ['c@d'], code: 250, reply: '2.0.0 Ok' });
    w.observer(end('m1'));
    await w.flush();
    const recs = readRecords(path.join(dir, fs.readdirSync(dir)[0]!));
    const data = recs.find((r) => r.type === 'data') as { text: string };
    expect(data.text).toBe('Subject: x\r\nMessage-ID:\r\n <id@h>\r\n\r\n');
    expect(recs.find((r) => r.type === 'tx.commit')).toMatchObject({ messageId: '<id@h>' });
    expect(messageIdOf('X: y\r\n\r\nMessage-ID: <not-a-header>')).toBeUndefined();
    fs.rmSync(dir, { recursive: true });
  });
});

describe('reading damaged transcripts', () => {
  it('skips structurally invalid records: trace show, list and pcap do not crash and show the rest', () => {
    const good = [
      '{"t":0,"type":"session.start","at":"2026-01-02T03:04:05.000Z","sid":"d1","listener":"l","client":"192.0.2.1","clientPort":1}',
      '{"t":1,"type":"protocol","leg":"client->proxy","line":"EHLO ok"}',
    ];
    const bad = ['null', '42', '"text"', '[]', '{"type":"session.end"}', '{"t":2,"type":"session.end","summary":null}', '{"t":3,"type":"protocol","leg":"client->proxy"}', '{"t":4,"type":"tx.commit","size":1}', '{"t":5,"type":"data","size":"x","captured":"full"}', '{"t":6,"type":"auth"}', '{"t":7,"type":"rewrite","before":[]}'];
    const recs = parseRecords([...good.slice(0, 1), ...bad, good[1]!].join('\n') + '\n');
    expect(recs.map((r) => r.type)).toEqual(['session.start', 'protocol']);
    const shown = renderTranscript(recs, { color: false });
    expect(shown.join('\n')).toMatch(/C: EHLO ok$/m);
    expect(sessionInfo('f', recs)).toMatchObject({ sid: 'd1', result: 'open' });
    expect(transcriptToPcap(recs).length).toBeGreaterThan(24);
  });
});

describe('wireText', () => {
  it('shows wire bytes as UTF-8, and as ISO 8859-1 where they are not UTF-8', () => {
    expect(wireText(Buffer.from('Subject: Grüße', 'utf8').toString('latin1'))).toBe('Subject: Grüße');
    expect(wireText(Buffer.from('Subject: café', 'latin1').toString('latin1'))).toBe('Subject: café');
    expect(wireText('EHLO x')).toBe('EHLO x');
    // Already text (a username decoded by an auth mode): left alone.
    expect(wireText('Jürgen 日本')).toBe('Jürgen 日本');
  });
});

describe('trace --since', () => {
  it('takes durations and dates', () => {
    expect(parseSince('1h', 10_000_000)!.getTime()).toBe(10_000_000 - 3_600_000);
    expect(parseSince('2026-01-02T00:00:00Z')!.toISOString()).toBe('2026-01-02T00:00:00.000Z');
    expect(parseSince('yesterday-ish')).toBeUndefined();
  });
});
