// Capture through the built CLI as an operator uses it (child processes of `node dist/main.js`, built by
// vitest's global setup): `mailshim trace follow` prints sessions as they happen and stops on Ctrl-C;
// SIGUSR1 to `mailshim run` switches full-detail capture on for the sessions that start after it.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Dialogue, startFakeUpstream, type FakeUpstream } from './capture-helpers.js';
import { settle, startProxy } from './capture-run.js';
import type { CaptureRecord } from '../../src/observe/transcript.js';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');

/** A child process with its stdout and stderr collected line by line. */
class Child {
  out: string[] = [];
  err: string[] = [];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  constructor(readonly proc: ChildProcess) {
    const collect = (into: string[]) => {
      let buf = '';
      return (d: Buffer) => {
        const parts = (buf + d.toString()).split('\n');
        buf = parts.pop()!;
        into.push(...parts);
      };
    };
    proc.stdout!.on('data', collect(this.out));
    proc.stderr!.on('data', collect(this.err));
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal, at: Date.now() })));
  }

  static start(args: string[]): Child {
    return new Child(spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** The first line of `stream` at or after index `from` that matches `re`, within `ms`. */
  async waitFor(stream: 'out' | 'err', re: RegExp, from = 0, ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this[stream].slice(from).find((l) => re.test(l));
      if (hit !== undefined) return hit;
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`no ${stream} line matching ${re}; stdout:\n${this.out.join('\n')}\nstderr:\n${this.err.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Signal the child; resolves with its exit code and how long it took to exit. */
  async stop(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const sent = Date.now();
    this.proc.kill(signal);
    const e = await this.exited;
    return { code: e.code, signal: e.signal, ms: e.at - sent };
  }
}

/** One short session: EHLO, one message, QUIT. */
async function sendMessage(port: number, helo: string, body: string): Promise<void> {
  const d = await Dialogue.connect(port);
  await d.reply();
  await d.cmd(`EHLO ${helo}`, /^250/);
  await d.cmd('MAIL FROM:<camera@example.net>', /^250/);
  await d.cmd('RCPT TO:<owner@example.net>', /^250/);
  await d.cmd('DATA', /^354/);
  await d.cmd(`${body}\r\n.`, /^250/);
  await d.cmd('QUIT', /^221/);
  await d.close();
}

function records(file: string): CaptureRecord[] {
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as CaptureRecord);
}

/** The finished transcripts in `dir` (oldest first) once there are `n` of them, within 5 s. */
async function finishedSessions(dir: string, n: number): Promise<string[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort().map((f) => path.join(dir, f)) : [];
    const done = files.filter((f) => fs.readFileSync(f, 'utf8').includes('"type":"session.end"'));
    if (done.length >= n) return done;
    if (Date.now() > deadline) throw new Error(`expected ${n} finished sessions in ${dir}, have ${done.length} of ${files.length}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('capture through the CLI', () => {
  let dir: string;
  let up: FakeUpstream;
  const children: Child[] = [];

  beforeAll(async () => {
    if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (vitest's global setup does)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailshim-capcli-'));
    up = await startFakeUpstream();
  });

  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) {
        c.proc.kill('SIGKILL');
        await c.exited;
      }
    }
  });

  afterAll(async () => {
    await up?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('trace follow: prints a session that starts while it runs (not older ones), and exits 0 promptly on SIGINT', async () => {
    const sessions = path.join(dir, 'follow');
    const { app, port } = await startProxy({
      listeners: [{ name: 'cam', listen: '127.0.0.1:0', hostname: 'mailshim.test', upstream: 'up' }],
      upstreams: { up: { host: '127.0.0.1', port: up.port, ehloName: 'mailshim.test' } },
      capture: { dir: sessions },
    });
    try {
      // A session finished before follow starts: that is what `trace list` is for, follow skips it.
      await sendMessage(port, 'earlier', 'Subject: before');
      await settle(app);
      const [old] = await finishedSessions(sessions, 1);
      const oldSid = path.basename(old!).replace(/^.*Z-|\.jsonl$/g, '');

      const follow = Child.start(['trace', 'follow', '--dir', sessions]);
      children.push(follow);
      await follow.waitFor('err', /^following new sessions in /);
      await sendMessage(port, 'follower', 'Subject: live');
      await settle(app);
      const files = await finishedSessions(sessions, 2);
      const sid = path.basename(files.find((f) => f !== old)!).replace(/^.*Z-|\.jsonl$/g, '');
      const tag = sid.slice(0, 8);
      await follow.waitFor('out', new RegExp(`^${tag} session ${sid}  listener cam `));
      await follow.waitFor('out', new RegExp(`^${tag} +\\+\\d+\\.\\d{3} C: EHLO follower$`));
      await follow.waitFor('out', new RegExp(`^${tag} +\\+\\d+\\.\\d{3} -- end: ok after `));

      const exit = await follow.stop('SIGINT');
      expect(exit).toMatchObject({ code: 0, signal: null });
      // It polls every 300 ms; a Ctrl-C must not wait for much more than one round.
      expect(exit.ms).toBeLessThan(2000);
      expect(follow.out.join('\n')).not.toContain(oldSid.slice(0, 8));
      expect(follow.out.join('\n')).not.toContain('EHLO earlier');
    } finally {
      await app.stop(100);
    }
  });

  it('SIGUSR1 to mailshim run: the next session is captured in full detail (body), the one before only headers', async () => {
    const sessions = path.join(dir, 'usr1');
    const cfg = path.join(dir, 'usr1.yaml');
    fs.writeFileSync(
      cfg,
      [
        'listeners:',
        '  - name: cam',
        '    listen: 127.0.0.1:0',
        '    hostname: mailshim.test',
        '    upstream: up',
        'upstreams:',
        `  up: { host: 127.0.0.1, port: ${up.port}, ehloName: mailshim.test }`,
        `capture: { dir: ${JSON.stringify(sessions)}, body: headers }`,
        'log: { level: info }',
        '',
      ].join('\n'),
    );
    const run = Child.start(['run', '--config', cfg]);
    children.push(run);
    const listening = JSON.parse(await run.waitFor('out', /"msg":"listening"/)) as { address: string };
    const port = Number(listening.address.split(':').at(-1));

    await sendMessage(port, 'before', 'Subject: first\r\n\r\nFIRST-BODY-TEXT');
    await finishedSessions(sessions, 1);
    run.proc.kill('SIGUSR1');
    await run.waitFor('out', /SIGUSR1: full-detail capture on for new sessions/);
    await sendMessage(port, 'after', 'Subject: second\r\n\r\nSECOND-BODY-TEXT');
    const [first, second] = await finishedSessions(sessions, 2);

    const data = (recs: CaptureRecord[]) => recs.find((r) => r.type === 'data') as Extract<CaptureRecord, { type: 'data' }> | undefined;
    const r1 = records(first!);
    expect(r1[0]).toMatchObject({ type: 'session.start' });
    expect(r1[0]).not.toHaveProperty('detail');
    expect(data(r1)).toMatchObject({ captured: 'headers' });
    expect(data(r1)!.text).toContain('Subject: first');
    expect(fs.readFileSync(first!, 'utf8')).not.toContain('FIRST-BODY-TEXT');

    const r2 = records(second!);
    expect(r2[0]).toMatchObject({ type: 'session.start', detail: 'full' });
    expect(data(r2)).toMatchObject({ captured: 'full' });
    expect(data(r2)!.text).toContain('Subject: second');
    expect(data(r2)!.text).toContain('SECOND-BODY-TEXT');

    const exit = await run.stop('SIGTERM');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.ms).toBeLessThan(5000);
  });
});
