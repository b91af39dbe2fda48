// Issue 6: memory per idle session. For each proxy and each kind (plaintext, implicit TLS): start the proxy
// fresh in front of an idle upstream (bench/greeter.mjs), warm it up, read its RSS, open N client
// connections that each wait for the 220 greeting and then stay idle, read the RSS again:
// (RSS after - RSS before) / N. N = 1,000, then 5,000 (the same connections plus 4,000 more).
// The bench process holds the client sockets; each process gets a raised open-files limit (see lib.mjs).
// usage: node bench/idle-memory.mjs [--scale F]   (F scales N; 1 = 1,000 and 5,000)
import net from 'node:net';
import tls from 'node:tls';
import { spawnSync } from 'node:child_process';
import {
  freePort,
  loadAverage,
  makeCert,
  parseFlags,
  rss,
  sleep,
  startGreeter,
  startHaproxy,
  startMailshim,
  startPipe,
  table,
  tmpDir,
  which,
} from './lib.mjs';

const CONNECT_PARALLEL = 100;
const SETTLE_MS = 2000;
const TIME_BOUND_MS = 60_000;

function nofileLimit() {
  const r = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' });
  return r.stdout.trim() === 'unlimited' ? Infinity : Number(r.stdout.trim());
}

/** Open one connection and resolve with it once the 220 greeting arrived. */
function idleClient(port, useTls) {
  return new Promise((resolve, reject) => {
    const sock = useTls
      ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'bench.test' })
      : net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no greeting within 20 s'));
    }, 20_000);
    const onData = (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\n')) {
        clearTimeout(timer);
        sock.off('data', onData);
        if (!buf.startsWith('220')) {
          sock.destroy();
          reject(new Error(`unexpected greeting: ${buf.trim()}`));
          return;
        }
        resolve(sock);
      }
    };
    sock.on('data', onData);
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function openMany(port, useTls, n, into) {
  const deadline = Date.now() + TIME_BOUND_MS;
  let next = 0;
  const worker = async () => {
    while (next < n) {
      if (Date.now() > deadline) throw new Error(`time bound of ${TIME_BOUND_MS} ms exceeded after ${into.length} connections`);
      next++;
      into.push(await idleClient(port, useTls));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_PARALLEL, n) }, worker));
}

function closeAll(socks) {
  for (const s of socks) s.destroy();
  socks.length = 0;
}

async function measure(target, kind, counts) {
  const useTls = kind === 'TLS';
  const socks = [];
  try {
    // Warm-up: code paths loaded, TLS context used, buffers pooled, before the baseline is read.
    await openMany(target.port, useTls, 50, socks);
    closeAll(socks);
    await sleep(SETTLE_MS);
    const before = rss(target.child.pid).rssKb;
    const out = [];
    for (const n of counts) {
      await openMany(target.port, useTls, n - socks.length, socks);
      await sleep(SETTLE_MS);
      const after = rss(target.child.pid).rssKb;
      out.push({ n, before, after, perSessionKb: (after - before) / n });
    }
    return out;
  } finally {
    closeAll(socks);
  }
}

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  const counts = [1000, 5000].map((n) => Math.max(10, Math.round(n * flags.scale)));
  const maxN = counts[counts.length - 1];
  // The client sockets live in this process; the proxies raise their own limit (lib.mjs startChild).
  const limit = nofileLimit();
  if (limit < maxN + 200) {
    console.log(`idle memory: open-files limit is ${limit}, need ${maxN + 200}: run \`ulimit -n ${2 * maxN + 400}\` first (npm run bench raises it when the hard limit allows)`);
    return false;
  }
  const dir = tmpDir();
  const cert = makeCert(dir);
  const upPort = await freePort();
  const upstream = await startGreeter(upPort, { nofile: 2 * maxN + 200 });

  const makers = [
    { name: 'mailshim', kinds: ['plaintext', 'TLS'], start: (port, kind) => startMailshim(port, upPort, { dir, tls: kind === 'TLS' ? cert : undefined }) },
    { name: 'node pipe', kinds: ['plaintext'], start: (port) => startPipe(port, upPort) },
  ];
  let note = '';
  if (which('haproxy')) {
    makers.push({ name: 'haproxy', kinds: ['plaintext', 'TLS'], start: (port, kind) => startHaproxy(port, upPort, { dir, pem: kind === 'TLS' ? cert.pem : undefined }) });
  } else note = 'HAProxy: not installed, skipped';

  console.log(`\n== idle memory per session: RSS delta / N with N = ${counts.join(' and ')} idle greeted connections (load average ${loadAverage()}) ==`);
  let ok = true;
  const rows = [];
  for (const kind of ['plaintext', 'TLS']) {
    for (const m of makers) {
      if (!m.kinds.includes(kind)) continue;
      const port = await freePort();
      let child;
      try {
        child = await m.start(port, kind);
        const res = await measure({ port, child }, kind, counts);
        const row = [`${m.name}, ${kind}`, `${(res[0].before / 1024).toFixed(1)} MB`];
        for (const r of res) row.push(`${(r.after / 1024).toFixed(1)} MB`, `${r.perSessionKb.toFixed(1)} KB`);
        rows.push(row);
        console.log(`  measured ${m.name}, ${kind}`);
      } catch (err) {
        ok = false;
        console.log(`  FAILED ${m.name}, ${kind}: ${err.message}${child?.exited() ? `; output: ${child.output().slice(-1500)}` : ''}`);
      } finally {
        await child?.stop();
      }
    }
  }
  const headers = ['proxy, client side', 'RSS idle'];
  for (const n of counts) headers.push(`RSS @${n}`, `per session @${n}`);
  console.log('\n' + table(headers, rows));
  console.log('TLS: implicit TLS on the client side (TLS 1.3), plaintext to the upstream. HAProxy runs one thread.');
  if (note) console.log(note);
  await upstream.stop();
  return ok;
}

process.exit((await main()) ? 0 : 1);
