// `npm run bench`: messages per second with Postfix's smtp-source -> X -> smtp-sink for X = nothing
// (direct), the bare Node pipe (bench/pipe-proxy.mjs), mailshim and, when installed, HAProxy in tcp mode;
// then the TLS handshake rate (bench/tls-handshakes.mjs) and the idle memory per session
// (bench/idle-memory.mjs). See bench/README.md for what each number means.
//
// Exits non-zero only when a run fails (a peer does not start, smtp-source reports an error or a run
// exceeds its time bound), never because of a ratio.
import path from 'node:path';
import os from 'node:os';
import { mkdirSync, readdirSync } from 'node:fs';
import {
  BENCH_DIR,
  MAILSHIM_MAIN,
  existsSync,
  freePort,
  loadAverage,
  median,
  cpuMicros,
  parseFlags,
  ratio,
  rss,
  runBounded,
  startHaproxy,
  startMailshim,
  startPipe,
  startSmtpSink,
  startChild,
  table,
  tmpDir,
  which,
  sleep,
} from './lib.mjs';
import { topSelf } from './cpuprofile-top.mjs';

const USAGE = `usage: node bench/run.mjs [--only throughput,tls,memory] [--runs N] [--scale F] [--profile]
  --only     which parts to run (default: all three)
  --runs     runs per measurement; the median is reported (default 3)
  --scale    multiply the message counts (default 1; 0.2 for a quick look)
  --profile  run mailshim under --cpu-prof in the throughput part and print its top self-time functions`;

/** Time bound of one smtp-source run; a run that takes longer counts as failed. */
const RUN_TIMEOUT_MS = 60_000;

const SCENARIOS = [
  { id: '1k', label: '1 KB, 20 sessions, many msgs each', size: 1024, keep: true, messages: 30_000 },
  { id: '100k', label: '100 KB, 20 sessions, many msgs each', size: 100 * 1024, keep: true, messages: 6_000 },
  { id: 'one', label: '1 KB, one msg per session, 20 parallel', size: 1024, keep: false, messages: 8_000 },
];

function sourceArgs(port, { size, keep, messages }) {
  // smtp-source speaks HELO (not EHLO; -L would make it LMTP), so mailshim's EHLO rules are configured but
  // the rewrite itself is not on this path: the figures are the relay cost of framing, dispatch and DATA.
  const args = ['-M', 'bench.test', '-f', 'sender@bench.test', '-t', 'rcpt@bench.test', '-s', '20', '-m', String(messages), '-l', String(size)];
  if (keep) args.push('-d');
  args.push(`127.0.0.1:${port}`);
  return args;
}

async function throughput(flags) {
  const smtpSource = which('smtp-source');
  if (!smtpSource || !which('smtp-sink')) {
    console.error('throughput: smtp-source/smtp-sink (Debian package postfix) not found: run bash scripts/install-peers.sh');
    return false;
  }
  const dir = tmpDir();
  const sinkPort = await freePort();
  const sink = await startSmtpSink(sinkPort);
  const targets = [{ name: 'direct', port: sinkPort }];

  const pipePort = await freePort();
  targets.push({ name: 'pipe', port: pipePort, child: await startPipe(pipePort, sinkPort) });

  const msPort = await freePort();
  let profDir;
  const nodeArgs = [];
  if (flags.profile) {
    profDir = path.join(os.tmpdir(), `mailshim-bench-profile-${process.pid}`);
    mkdirSync(profDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
  }
  const mailshim = await startMailshim(msPort, sinkPort, { dir, nodeArgs });
  targets.push({ name: 'mailshim', port: msPort, child: mailshim });

  const notes = [];
  if (which('haproxy')) {
    const hp = await freePort();
    targets.push({ name: 'haproxy', port: hp, child: await startHaproxy(hp, sinkPort, { dir }) });
  } else notes.push('HAProxy: not installed, skipped (apt-get install haproxy)');
  notes.push(
    which('nginx')
      ? 'nginx mail proxy: installed but not measured (it needs an auth_http service to pick the upstream)'
      : 'nginx mail proxy: not installed, skipped',
  );

  const scale = flags.scale;
  const scenarios = SCENARIOS.map((s) => ({ ...s, messages: Math.max(20, Math.round(s.messages * scale)) }));
  console.log(`\n== throughput: smtp-source -> X -> smtp-sink (median of ${flags.runs}; load average before: ${loadAverage()}) ==`);
  let ok = true;
  const results = new Map(); // `${scenario}/${target}` -> msgs/s[]
  const cpu = new Map(); // `${scenario}/${target}` -> proxy CPU us per message[]

  const once = async (scenario, t, warm = false) => {
    const pid = t.child?.pid;
    const cpu0 = pid ? cpuMicros(pid) : 0;
    const r = await runBounded(smtpSource, sourceArgs(t.port, scenario), RUN_TIMEOUT_MS);
    const dead = t.child?.exited();
    if (r.code !== 0 || r.timedOut || dead) {
      ok = false;
      const why = r.timedOut ? `timed out after ${RUN_TIMEOUT_MS} ms` : dead ? `${t.child.name} died: ${JSON.stringify(dead)}` : `smtp-source exit ${r.code ?? r.signal}`;
      console.log(`  FAILED ${scenario.id} via ${t.name}: ${why}\n    ${r.output.trim().split('\n').slice(-5).join('\n    ')}`);
      if (dead) console.log(`    ${t.child.name} output: ${t.child.output().slice(-1500)}`);
      return null;
    }
    const rate = (scenario.messages * 1000) / r.ms;
    if (!warm) {
      const k = `${scenario.id}/${t.name}`;
      results.set(k, [...(results.get(k) ?? []), rate]);
      if (pid) cpu.set(k, [...(cpu.get(k) ?? []), (cpuMicros(pid) - cpu0) / scenario.messages]);
    }
    return rate;
  };

  // Warm-up (JIT, connection pools of nobody): a short run of each kind through every target, not counted.
  for (const t of targets) {
    await once({ ...scenarios[0], messages: 400 }, t, true);
    await once({ ...scenarios[2], messages: 200 }, t, true);
  }

  // Per run, the rates of that run's targets: measured minutes apart at most, so their ratio is less exposed
  // to the machine's slow phases than a ratio of medians taken from different runs.
  const perRun = new Map(); // scenario id -> [{ target: rate }]
  for (const sc of scenarios) {
    perRun.set(sc.id, []);
    for (let run = 0; run < flags.runs; run++) {
      const rates = {};
      perRun.get(sc.id).push(rates);
      // Rotate the order so a burst of load from elsewhere on the machine does not always hit the same X.
      const order = targets.map((_, i) => targets[(i + run) % targets.length]);
      const line = [];
      for (const t of order) {
        const rate = await once(sc, t);
        if (rate !== null) rates[t.name] = rate;
        line.push(`${t.name} ${rate === null ? 'FAILED' : rate.toFixed(0)}`);
      }
      console.log(`  ${sc.id.padEnd(4)} run ${run + 1}: ${line.join(', ')} msgs/s`);
    }
  }

  const mem = mailshim.exited() ? null : rss(mailshim.pid);
  const names = targets.map((t) => t.name);
  const med = (sc, n) => {
    const xs = results.get(`${sc}/${n}`);
    return xs && xs.length ? median(xs) : 0;
  };
  const paired = (sc) => {
    const xs = perRun.get(sc).filter((r) => r.mailshim && r.pipe).map((r) => r.mailshim / r.pipe);
    return xs.length ? `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}` : '-';
  };
  const headers = ['scenario', 'msgs', ...names.map((n) => `${n} msg/s`), 'mailshim/direct', 'pipe/direct', 'mailshim/pipe', 'mailshim/pipe per run'];
  if (names.includes('haproxy')) headers.push('haproxy/direct');
  const rows = scenarios.map((sc) => {
    const row = [sc.label, sc.messages, ...names.map((n) => med(sc.id, n).toFixed(0))];
    row.push(ratio(med(sc.id, 'mailshim'), med(sc.id, 'direct')), ratio(med(sc.id, 'pipe'), med(sc.id, 'direct')), ratio(med(sc.id, 'mailshim'), med(sc.id, 'pipe')), paired(sc.id));
    if (names.includes('haproxy')) row.push(ratio(med(sc.id, 'haproxy'), med(sc.id, 'direct')));
    return row;
  });
  console.log('\n' + table(headers, rows));
  // The proxy's own CPU per message is steadier than messages per second, which also depends on how the
  // two cores are shared with smtp-source and smtp-sink at the time.
  const proxies = names.filter((n) => n !== 'direct');
  const medCpu = (sc, n) => {
    const xs = cpu.get(`${sc}/${n}`);
    return xs && xs.length ? median(xs) : 0;
  };
  const cpuRows = scenarios.map((sc) => [sc.label, ...proxies.map((n) => medCpu(sc.id, n).toFixed(0)), ratio(medCpu(sc.id, 'mailshim'), medCpu(sc.id, 'pipe'))]);
  console.log(`\nproxy CPU per message (user + system of the proxy process, us, median of ${flags.runs}):\n` + table(['scenario', ...proxies, 'mailshim/pipe'], cpuRows));
  console.log(`\ngoal (issue 2): mailshim/pipe >= 0.90x in every scenario; differences under 10% are noise on a shared 2-core machine.`);
  if (mem) console.log(`mailshim RSS after the throughput runs: ${(mem.rssKb / 1024).toFixed(1)} MB (peak ${(mem.hwmKb / 1024).toFixed(1)} MB)`);
  for (const n of notes) console.log(n);
  console.log(`load average after: ${loadAverage()}`);

  // mailshim logs at warn: anything it printed is a session that did not end well.
  await mailshim.stop('SIGTERM', 10_000);
  const complaints = mailshim.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l));
  if (complaints.length > 0) {
    console.log(`mailshim logged ${complaints.length} warning/error line(s), e.g.:\n  ${complaints.slice(0, 3).join('\n  ')}`);
  }
  for (const t of targets) await t.child?.stop();
  await sink.stop();

  if (profDir) {
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) console.log(`no .cpuprofile written in ${profDir}`);
    for (const f of files) {
      const full = path.join(profDir, f);
      const r = topSelf(full, 25);
      console.log(`\nmailshim CPU profile ${full} (${r.totalMs.toFixed(0)} ms sampled)\ntop self time by function:\n${r.functions.join('\n')}\n\nby file:\n${r.files.slice(0, 15).join('\n')}`);
    }
  }
  return ok;
}

/** Run another part as its own process (its own open-files limit and memory), bounded in time. */
async function part(script, args, timeoutMs) {
  const c = startChild(script, process.execPath, [path.join(BENCH_DIR, script), ...args], { nofile: 20000 });
  c.proc.stdout.on('data', (d) => process.stdout.write(d));
  c.proc.stderr.on('data', (d) => process.stderr.write(d));
  const t = setTimeout(() => {
    console.log(`${script}: exceeded ${timeoutMs / 1000} s, stopping it`);
    void c.stop('SIGTERM', 3000);
  }, timeoutMs);
  const r = await new Promise((resolve) => c.proc.on('exit', (code, signal) => resolve({ code, signal })));
  clearTimeout(t);
  return r.code === 0;
}

async function main() {
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  const parts = flags.only ?? ['throughput', 'tls', 'memory'];
  const unknown = parts.filter((p) => !['throughput', 'tls', 'memory'].includes(p));
  if (unknown.length) {
    console.error(`unknown part(s) ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  if (!existsSync(MAILSHIM_MAIN)) {
    console.error(`${MAILSHIM_MAIN} not found: run npm run build first (npm run bench does)`);
    return 1;
  }
  console.log(`mailshim bench: node ${process.version}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, load average ${loadAverage()}`);
  const t0 = Date.now();
  let ok = true;
  if (parts.includes('throughput')) {
    try {
      ok = (await throughput(flags)) && ok;
    } catch (err) {
      console.log(`throughput: FAILED: ${err.message}`);
      ok = false;
    }
  }
  const common = ['--runs', String(flags.runs)];
  if (parts.includes('tls')) ok = (await part('tls-handshakes.mjs', common, 180_000)) && ok;
  if (parts.includes('memory')) ok = (await part('idle-memory.mjs', [], 240_000)) && ok;
  await sleep(0);
  console.log(`\nbench ${ok ? 'finished' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return ok ? 0 : 1;
}

process.exit(await main());
