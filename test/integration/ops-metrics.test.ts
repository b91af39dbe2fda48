// /metrics after real sessions through mailshim (success, AUTH failure, upstream down), read with a strict
// Prometheus text parser; /healthz and /readyz, including /readyz going 503 while draining.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './harness/fake-upstream.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';
import { connect } from './harness/dialogue.js';
import { REFUSED_PORT } from './harness/ports.js';
import { scrape, sampleSum } from './ops-prom-text.js';

const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');

describe('metrics endpoint after real sessions', () => {
  let up: FakeUpstream;
  let proxy: ProxyHandle;
  let metricsPort: number;

  beforeAll(async () => {
    up = await startFakeUpstream({ ehlo: ['PIPELINING', '8BITMIME', 'AUTH PLAIN LOGIN'], users: { alice: 'right' } });
    const deadPort = REFUSED_PORT;
    proxy = await startProxy({
      listeners: [
        { name: 'main', upstream: 'fake', ehlo: [{ remove: '8BITMIME' }] },
        { name: 'broken', upstream: 'dead' },
      ],
      upstreams: { fake: { host: '127.0.0.1', port: up.port }, dead: { host: '127.0.0.1', port: deadPort } },
      metrics: { listen: '127.0.0.1:0' },
    });
    metricsPort = proxy.app.metricsServer!.address().port;
  });

  afterAll(async () => {
    await proxy?.stop();
    await up?.stop();
  });

  it('counts a relayed message, a failed AUTH and an unreachable upstream', async () => {
    // 1: a message relayed.
    const a = await connect(proxy.ports[0]);
    const ehlo = await a.ehloDone();
    expect(ehlo.raw).not.toContain('8BITMIME');
    a.send('MAIL FROM:<a@example.org>');
    await a.expect(/^250 /);
    a.send('RCPT TO:<b@example.org>');
    await a.expect(/^250 /);
    a.send('DATA');
    await a.expect(/^354 /);
    a.sendRaw('Subject: hi\r\n\r\nbody\r\n.\r\n');
    await a.expect(/^250 /);
    a.send('QUIT');
    await a.expect(/^221 /);
    await a.closed();

    // 2: AUTH with a wrong password, relayed to the upstream (passthrough) and refused there.
    const b = await connect(proxy.ports[0]);
    await b.ehloDone();
    b.send(`AUTH PLAIN ${b64('\0alice\0wrong')}`);
    await b.expect(/^535 /);
    b.send('QUIT');
    await b.expect(/^221 /);
    await b.closed();

    // 3: the upstream is down.
    const c = await connect(proxy.ports[1]);
    await c.expect(/^421 4\.4\.1 /);
    await c.closed();

    await proxy.waitForSessionEnd(3);
    const m = await scrape(metricsPort);
    expect(sampleSum(m, 'mailshim_sessions_total', { listener: 'main' })).toBe(2);
    expect(sampleSum(m, 'mailshim_sessions_total', { listener: 'broken', result: 'upstream-unreachable' })).toBe(1);
    expect(sampleSum(m, 'mailshim_sessions_active')).toBe(0);
    expect(sampleSum(m, 'mailshim_session_duration_seconds_count')).toBe(3);
    expect(sampleSum(m, 'mailshim_messages_total', { listener: 'main', outcome: 'relayed', class: '2xx' })).toBe(1);
    expect(sampleSum(m, 'mailshim_messages_total', { outcome: 'rejected' })).toBe(0);
    expect(sampleSum(m, 'mailshim_auth_attempts_total', { listener: 'main', mechanism: 'PLAIN', mode: 'passthrough', result: 'fail' })).toBe(1);
    expect(sampleSum(m, 'mailshim_auth_attempts_total', { result: 'ok' })).toBe(0);
    expect(sampleSum(m, 'mailshim_upstream_failures_total', { upstream: 'dead', reason: 'refused' })).toBe(1);
    expect(sampleSum(m, 'mailshim_upstream_failures_total', { upstream: 'fake' })).toBe(0);
    expect(sampleSum(m, 'mailshim_ehlo_rewrites_total', { listener: 'main', rule: 'remove' })).toBe(2);
    expect(sampleSum(m, 'mailshim_client_bytes_total', { listener: 'main', direction: 'in' })).toBeGreaterThan(60);
    expect(sampleSum(m, 'mailshim_client_bytes_total', { listener: 'main', direction: 'out' })).toBeGreaterThan(100);
    expect(m.get('mailshim_session_duration_seconds')?.type).toBe('histogram');
    expect(m.get('mailshim_process_resident_memory_bytes')?.samples[0].value).toBeGreaterThan(0);
    // Label values stay bounded: no client address and no username anywhere.
    for (const f of m.values()) for (const s of f.samples) for (const v of Object.values(s.labels)) expect(v).not.toMatch(/127\.0\.0\.1|alice/);
  });

  it('answers /healthz and /readyz, and /readyz says 503 while draining', async () => {
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    expect(health.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/nothing`)).status).toBe(404);

    const open = await connect(proxy.ports[0]);
    await open.greeted();
    const stopping = proxy.app.stop(600);
    const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toMatch(/draining/);
    // Liveness stays up during the drain, so the orchestrator does not kill a draining process.
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
    await open.expect(/^421 4\.3\.2 /, 3000);
    await stopping;
  });
});
