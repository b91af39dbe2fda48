// Summarise a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time, with
// file:line, and the same rolled up per file. Lines are 1-based (V8 stores 0-based line numbers).
// usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export function topSelf(file, n = 25) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((node) => [node.id, node]));
  const selfUs = new Map();
  // samples[i] was taken in node samples[i] and lasted timeDeltas[i + 1] (the delta to the next sample).
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i + 1] ?? 0;
    selfUs.set(prof.samples[i], (selfUs.get(prof.samples[i]) ?? 0) + dt);
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0) || 1;
  const fns = new Map();
  const files = new Map();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id).callFrame;
    const url = cf.url ? shorten(cf.url) : '';
    const where = url ? `${url}:${cf.lineNumber + 1}` : '(native)';
    const key = `${cf.functionName || '(anonymous)'}  ${where}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const fk = url || cf.functionName || '(native)';
    files.set(fk, (files.get(fk) ?? 0) + us);
  }
  const fmt = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
  return { totalMs: total / 1000, functions: fmt(fns), files: fmt(files) };
}

function shorten(url) {
  let p = url.startsWith('file://') ? fileURLToPath(url) : url;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  if (p.startsWith(root + path.sep)) p = path.relative(root, p);
  return p;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [N]\n');
    process.exit(2);
  }
  const r = topSelf(file, Number(n) || 25);
  console.log(`total sampled: ${r.totalMs.toFixed(0)} ms\n\ntop self time by function:\n${r.functions.join('\n')}\n\nby file:\n${r.files.join('\n')}`);
}
