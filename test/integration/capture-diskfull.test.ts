// Disk full under the capture directory (a 64 KB tmpfs filled up; this machine's tests run as root):
// no empty transcript files are left behind, and capture.dropped is reported once per session, with the
// session's listener, so the metric is labelled right even after the session has ended.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { TranscriptWriter } from '../../src/observe/transcript.js';
import { EventBus } from '../../src/observe/bus.js';
import type { SessionEvent } from '../../src/observe/events.js';
import { traceCli } from './capture-run.js';

describe('capture on a full disk', () => {
  let mnt = '';
  let mounted = false;

  beforeAll(() => {
    mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
    mounted = true;
  });

  afterAll(() => {
    if (mounted) execFileSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('leaves no zero-byte transcripts and reports one capture.dropped per session, with its listener', async () => {
    const dir = path.join(mnt, 'sessions');
    const w = await TranscriptWriter.start({ dir, body: 'full', bodyMaxBytes: 1 << 20, maxFiles: 100, maxBytes: 1e9, redactUsernames: false });
    const bus = new EventBus();
    const dropped: Extract<SessionEvent, { type: 'capture.dropped' }>[] = [];
    bus.add((ev) => void (ev.type === 'capture.dropped' && dropped.push(ev)));
    w.attach(bus);
    // Fill the file system.
    const filler = path.join(mnt, 'filler');
    try {
      fs.writeFileSync(filler, Buffer.alloc(1 << 20));
    } catch {
      // ENOSPC: the file holds what fitted.
    }
    const sids = Array.from({ length: 12 }, (_, i) => `full${i}`);
    for (const [i, sid] of sids.entries()) {
      const listener = i % 2 ? 'odd' : 'even';
      bus.emit({ type: 'session.start', sid, listener, client: '192.0.2.1', clientPort: 1000 + i });
      for (let k = 0; k < 10; k++) {
        bus.emit({ type: 'protocol', sid, leg: 'client->proxy', line: `NOOP ${k}` });
        await new Promise((r) => setImmediate(r)); // records land in several batches, as in a real session
      }
      bus.emit({ type: 'tx.data', sid, chunk: Buffer.alloc(20_000, 0x61) });
      bus.emit({ type: 'session.end', summary: { sid, listener, client: '192.0.2.1', upstream: 'u', bytesIn: 1, bytesOut: 1, messages: 0, rejected: 0, result: 'ok', durationMs: 1, normalisedLineEndings: 0 } });
    }
    await w.flush();

    expect(w.stats.writeErrors).toBeGreaterThan(12);
    const left = fs.readdirSync(dir).map((f) => ({ f, size: fs.statSync(path.join(dir, f)).size }));
    expect(left.filter((x) => x.size === 0)).toEqual([]);
    // One report per session, each labelled with that session's listener.
    expect(dropped.map((d) => d.sid).sort()).toEqual([...sids].sort());
    for (const d of dropped) {
      expect(d.reason).toBe('write-error');
      expect(d.listener).toBe(Number(d.sid.slice(4)) % 2 ? 'odd' : 'even');
    }
    const list = await traceCli(['list', '--dir', dir]);
    expect(list.out.toString()).not.toContain('1970-01-01');
  });
});
