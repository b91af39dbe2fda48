// Issue 3: TLS handshake cost. Full handshakes per second (no session resumption; Node's default TLS 1.3,
// RSA-2048 certificate) with 20 parallel clients, each doing: connect, handshake, read the 220 greeting,
// QUIT, wait for the close. Against
//   direct    a Node TLS server that greets by itself (bench/greeter.mjs): the cost of TLS + a greeting;
//   mailshim  an implicit-TLS listener relaying to smtp-sink (handshake + upstream connect + greeting relay);
//   haproxy   `bind ... ssl` in tcp mode relaying to smtp-sink, when installed (a C peer for scale).
// usage: node bench/tls-handshakes.mjs [--runs N] [--scale F]
import tls from 'node:tls';
import {
  freePort,
  loadAverage,
  makeCert,
  median,
  parseFlags,
  ratio,
  startGreeter,
  startHaproxy,
  startMailshim,
  startSmtpSink,
  table,
  tmpDir,
  which,
} from './lib.mjs';

const PARALLEL = 20;
const TIME_BOUND_MS = 30_000;

/** One client session; resolves when the server closed after QUIT. */
function session(port) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'bench.test' });
    let buf = '';
    let greeted = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('session timed out'));
    }, 10_000);
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (!greeted && buf.includes('\n')) {
        if (!buf.startsWith('220')) {
          clearTimeout(timer);
          sock.destroy();
          reject(new Error(`unexpected greeting: ${buf.trim()}`));
          return;
        }
        greeted = true;
        sock.write('QUIT\r\n');
      }
    });
    sock.on('error', (err) => {
      // A legacy-style unclean close after QUIT is not a failure; before the greeting it is.
      if (!greeted) {
        clearTimeout(timer);
        reject(err);
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (greeted) resolve();
      else reject(new Error('closed before the greeting'));
    });
  });
}

/** `count` sessions, PARALLEL at a time, bounded by TIME_BOUND_MS. Returns handshakes per second. */
async function measure(port, count) {
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  const deadline = Date.now() + TIME_BOUND_MS;
  const worker = async () => {
    while (started < count) {
      if (Date.now() > deadline) throw new Error(`time bound of ${TIME_BOUND_MS} ms exceeded after ${done} handshakes`);
      started++;
      await session(port);
      done++;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return (done * 1000) / (performance.now() - t0);
}

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  const count = Math.max(40, Math.round(1000 * flags.scale));
  const dir = tmpDir();
  const cert = makeCert(dir);
  const sinkPort = await freePort();
  const sink = await startSmtpSink(sinkPort);

  const targets = [];
  const gp = await freePort();
  targets.push({ name: 'direct', port: gp, child: await startGreeter(gp, { tls: cert }) });
  const mp = await freePort();
  const mailshim = await startMailshim(mp, sinkPort, { dir, tls: cert });
  targets.push({ name: 'mailshim', port: mp, child: mailshim });
  let note = '';
  if (which('haproxy')) {
    const hp = await freePort();
    targets.push({ name: 'haproxy', port: hp, child: await startHaproxy(hp, sinkPort, { dir, pem: cert.pem }) });
  } else note = 'HAProxy: not installed, skipped';

  console.log(`\n== TLS handshakes: ${PARALLEL} parallel clients, ${count} full handshakes per run, median of ${flags.runs} (load average ${loadAverage()}) ==`);
  let ok = true;
  const rates = new Map(targets.map((t) => [t.name, []]));
  for (const t of targets) {
    try {
      await measure(t.port, 60); // warm-up
    } catch (err) {
      console.log(`  FAILED warm-up via ${t.name}: ${err.message}`);
      ok = false;
    }
  }
  for (let run = 0; run < flags.runs && ok; run++) {
    const line = [];
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + run) % targets.length];
      try {
        const r = await measure(t.port, count);
        rates.get(t.name).push(r);
        line.push(`${t.name} ${r.toFixed(0)}`);
      } catch (err) {
        ok = false;
        line.push(`${t.name} FAILED (${err.message})`);
        if (t.child.exited()) console.log(`  ${t.child.name} output: ${t.child.output().slice(-1500)}`);
      }
    }
    console.log(`  run ${run + 1}: ${line.join(', ')} handshakes/s`);
  }
  const med = (n) => (rates.get(n)?.length ? median(rates.get(n)) : 0);
  const headers = ['handshakes/s', ...targets.map((t) => t.name), 'mailshim/direct'];
  if (rates.has('haproxy')) headers.push('haproxy/direct');
  const row = ['TLS 1.3, RSA-2048, full', ...targets.map((t) => med(t.name).toFixed(0)), ratio(med('mailshim'), med('direct'))];
  if (rates.has('haproxy')) row.push(ratio(med('haproxy'), med('direct')));
  console.log('\n' + table(headers, [row]));
  if (note) console.log(note);

  for (const t of targets) await t.child.stop();
  await sink.stop();
  return ok;
}

process.exit((await main()) ? 0 : 1);
