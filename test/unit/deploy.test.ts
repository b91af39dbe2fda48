// deploy/ and the Dockerfile: every manifest is well-formed YAML, the configs they ship are valid mailshim
// configs, the pieces refer to each other consistently (ports, labels, probes, drain timing), and the
// Dockerfile runs what package.json declares.
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };

function yamlFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(e.name) ? [p] : [];
  });
}

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function docs(file: string): Doc[] {
  const all = parseAllDocuments(read(file), { uniqueKeys: true });
  if (!Array.isArray(all)) throw new Error(`${file}: not a YAML stream`);
  for (const d of all) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  }
  return all.map((d) => d.toJS() as Doc);
}

const k8s = new Map<string, Doc>();
for (const f of yamlFiles('deploy/kubernetes')) for (const d of docs(f)) k8s.set(d.kind, d);

/** Dockerfile instructions, continuation lines joined. */
function dockerfile(): { op: string; args: string }[] {
  return read('Dockerfile')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'))
    .map((l) => {
      const m = /^\s*(\w+)\s+(.*)$/.exec(l)!;
      return { op: m[1].toUpperCase(), args: m[2].trim() };
    });
}

describe('deploy manifests', () => {
  it('every YAML file under deploy/ parses without errors or duplicate keys', () => {
    const files = yamlFiles('deploy');
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const f of files) expect(() => docs(f), f).not.toThrow();
  });

  it('the mailshim configs shipped in deploy/ are valid configs', () => {
    const cm = k8s.get('ConfigMap')!;
    const env = { PROVIDER_PASSWORD: 'x' };
    const fromCm = parseConfig(cm.data['mailshim.yaml'] as string, 'configmap.yaml', env);
    expect(fromCm.metrics.listen).toEqual({ host: '0.0.0.0', port: 9464 });
    const compose = parseConfig(read('deploy/compose/mailshim.yaml'), 'deploy/compose/mailshim.yaml', env);
    expect(compose.metrics.listen?.port).toBe(9464);
  });

  it('Kubernetes: 2 replicas; probes on /readyz and /healthz at the metrics port; preStop; drain fits the grace period', () => {
    const dep = k8s.get('Deployment')!;
    expect(dep.spec.replicas).toBe(2);
    const pod = dep.spec.template.spec;
    const c = pod.containers[0];
    const metricsPort = c.ports.find((p: Doc) => p.name === 'metrics').containerPort;
    const cfg = parseConfig(k8s.get('ConfigMap')!.data['mailshim.yaml'] as string, 'configmap.yaml', { PROVIDER_PASSWORD: 'x' });
    expect(metricsPort).toBe(cfg.metrics.listen!.port);
    const smtpPort = c.ports.find((p: Doc) => p.name === 'smtp').containerPort;
    expect(smtpPort).toBe(cfg.listeners[0].listen.port);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    const sleep = Number(c.lifecycle.preStop.exec.command[1]);
    expect(c.lifecycle.preStop.exec.command[0]).toBe('sleep');
    // preStop + shutdownTimeout + the 3 s the closing 421s get must end before Kubernetes sends SIGKILL.
    expect(sleep + cfg.shutdownTimeout / 1000 + 3).toBeLessThan(pod.terminationGracePeriodSeconds);
    expect(c.args).toEqual(['run', '--config', '/etc/mailshim/mailshim.yaml']);
    expect(c.volumeMounts[0].mountPath).toBe('/etc/mailshim');
    expect(pod.volumes[0].configMap.name).toBe(k8s.get('ConfigMap')!.metadata.name);
    expect(c.envFrom[0].secretRef.name).toBe(k8s.get('Secret')!.metadata.name);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
  });

  it('Kubernetes: Service and PodDisruptionBudget select the Deployment pods; kustomization lists every file', () => {
    const labels = k8s.get('Deployment')!.spec.template.metadata.labels;
    const matches = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    expect(matches(k8s.get('Service')!.spec.selector)).toBe(true);
    expect(matches(k8s.get('PodDisruptionBudget')!.spec.selector.matchLabels)).toBe(true);
    expect(k8s.get('PodDisruptionBudget')!.spec.minAvailable).toBe(1);
    const targets = k8s.get('Service')!.spec.ports.map((p: Doc) => p.targetPort);
    expect(targets).toEqual(['smtp', 'metrics']);
    const listed = k8s.get('Kustomization')!.resources as string[];
    const present = fs.readdirSync(path.join(ROOT, 'deploy/kubernetes')).filter((f) => f !== 'kustomization.yaml');
    expect([...listed].sort()).toEqual(present.sort());
  });

  it('docker-compose runs mailshim with the mounted config and a demo upstream it points at', () => {
    const [compose] = docs('deploy/docker-compose.yml');
    const svc = compose.services.mailshim;
    expect(svc.build.dockerfile).toBe('Dockerfile');
    expect(fs.existsSync(path.join(ROOT, 'deploy', svc.build.context, svc.build.dockerfile))).toBe(true);
    expect(svc.command).toEqual(['run', '--config', '/etc/mailshim/mailshim.yaml']);
    const [src, dst] = (svc.volumes[0] as string).split(':');
    expect(dst).toBe('/etc/mailshim/mailshim.yaml');
    const cfg = parseConfig(read(path.join('deploy', src)), src, {});
    const upstreamHost = cfg.upstreams[cfg.listeners[0].upstream].host;
    expect(Object.keys(compose.services)).toContain(upstreamHost);
  });

  it('the systemd unit runs the package bin with the run command, reloads with SIGHUP and outlasts the drain', () => {
    const unit = read('deploy/systemd/mailshim.service');
    const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(unit)?.[1];
    expect(get('ExecStart')).toBe(`/usr/bin/node /opt/mailshim/${pkg.bin.mailshim} run --config /etc/mailshim/mailshim.yaml`);
    expect(get('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(get('KillSignal')).toBe('SIGTERM');
    expect(Number(get('TimeoutStopSec'))).toBeGreaterThan(30 + 3);
  });
});

describe('Dockerfile matches package.json', () => {
  const ins = dockerfile();

  it('builds with the package build script and runs the package bin', () => {
    const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs).toContain('npm run build');
    expect(pkg.scripts.build).toBeDefined();
    const entry = JSON.parse(ins.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    expect(entry).toEqual(['node', pkg.bin.mailshim]);
    // The image's default command is what `npm start` runs.
    const cmd = JSON.parse(ins.find((i) => i.op === 'CMD')!.args) as string[];
    expect(`node ${pkg.bin.mailshim} ${cmd.join(' ')}`).toBe(pkg.scripts.start);
  });

  it('is multi-stage, runs as a non-root user, and checks health on /healthz at the metrics port', () => {
    expect(ins.filter((i) => i.op === 'FROM').length).toBeGreaterThanOrEqual(2);
    const user = ins.filter((i) => i.op === 'USER').at(-1)!.args;
    expect(user).not.toMatch(/^(root|0)$/);
    const hc = ins.find((i) => i.op === 'HEALTHCHECK')!.args;
    expect(hc).toMatch(/127\.0\.0\.1:9464\/healthz/);
    expect(ins.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).toContain('9464');
    // Every file the build stage copies exists in the repository.
    for (const c of ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      for (const src of c.args.split(/\s+/).slice(0, -1)) expect(fs.existsSync(path.join(ROOT, src)), src).toBe(true);
    }
  });
});
