import { describe, it, expect } from 'vitest';
import { createMetrics, classifyUpstreamFailure, refusalReason } from '../../../src/observe/metrics.js';
import type { SessionEvent, SessionSummary } from '../../../src/observe/events.js';

type MetricJson = { name: string; values: { value: number; labels: Record<string, string | number>; metricName?: string }[] };

async function value(m: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string> = {}): Promise<number> {
  const all = (await m.registry.getMetricsAsJSON()) as unknown as MetricJson[];
  const metricName = name.replace(/_(count|sum)$/, '');
  const metric = all.find((x) => x.name === metricName);
  if (!metric) throw new Error(`no metric ${name}`);
  return metric.values
    .filter((v) => (v.metricName ?? metric.name) === name && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((n, v) => n + v.value, 0);
}

function summary(over: Partial<SessionSummary>): SessionSummary {
  return { sid: 's1', listener: 'door', client: '192.0.2.1:1', upstream: 'up:25', bytesIn: 100, bytesOut: 200, messages: 0, rejected: 0, result: 'ok', durationMs: 1500, normalisedLineEndings: 0, ...over };
}

describe('metrics fed from session events', () => {
  it('counts a session with TLS, AUTH, a rewrite and messages, labelled without client data', async () => {
    const m = createMetrics(() => 'provider', { defaultMetrics: false });
    const evs: SessionEvent[] = [
      { type: 'session.start', sid: 's1', listener: 'door', client: '192.0.2.1', clientPort: 1 },
      { type: 'link.tls', sid: 's1', side: 'upstream', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', handshakeMs: 3 } },
      { type: 'rewrite', sid: 's1', before: [], after: [], changes: [{ rule: 'remove-auth', action: 'removed' }, { rule: 'add-auth-equals', action: 'added' }] },
      { type: 'auth', sid: 's1', side: 'upstream', mechanism: 'login', mode: 'passthrough', user: 'alice@example.org', result: 'ok' },
      { type: 'tx.commit', sid: 's1', size: 10, recipients: [], from: '', reply: '250 ok', code: 250 },
      { type: 'tx.rollback', sid: 's1', size: 10, recipients: [], from: '', reply: '554 no', code: 554 },
    ];
    for (const e of evs) m.observer(e);
    expect(await value(m, 'mailshim_sessions_active', { listener: 'door' })).toBe(1);
    m.observer({ type: 'session.end', summary: summary({}) });
    expect(await value(m, 'mailshim_sessions_active', { listener: 'door' })).toBe(0);
    expect(await value(m, 'mailshim_sessions_total', { listener: 'door', result: 'ok' })).toBe(1);
    expect(await value(m, 'mailshim_session_duration_seconds_sum')).toBe(1.5);
    expect(await value(m, 'mailshim_client_bytes_total', { direction: 'in' })).toBe(100);
    expect(await value(m, 'mailshim_client_bytes_total', { direction: 'out' })).toBe(200);
    expect(await value(m, 'mailshim_tls_handshakes_total', { side: 'upstream', version: 'TLSv1.3' })).toBe(1);
    expect(await value(m, 'mailshim_ehlo_rewrites_total', { listener: 'door', rule: 'remove-auth' })).toBe(1);
    expect(await value(m, 'mailshim_auth_attempts_total', { listener: 'door', mechanism: 'LOGIN', mode: 'passthrough', result: 'ok' })).toBe(1);
    expect(await value(m, 'mailshim_messages_total', { outcome: 'relayed', class: '2xx' })).toBe(1);
    expect(await value(m, 'mailshim_messages_total', { outcome: 'rejected', class: '5xx' })).toBe(1);
    // No label anywhere carries a client address or a username.
    const text = await m.registry.metrics();
    expect(text).not.toContain('192.0.2.1');
    expect(text).not.toContain('alice');
  });

  it('counts upstream failures with a bounded reason, once per session', async () => {
    const m = createMetrics(() => 'provider', { defaultMetrics: false });
    m.observer({ type: 'session.start', sid: 'a', listener: 'door', client: '192.0.2.1', clientPort: 1 });
    m.observer({ type: 'session.end', summary: summary({ sid: 'a', result: 'upstream-unreachable', reason: 'connect ECONNREFUSED 127.0.0.1:1' }) });
    m.observer({ type: 'session.start', sid: 'b', listener: 'door', client: '192.0.2.1', clientPort: 1 });
    m.observer({ type: 'link.tls-failed', sid: 'b', side: 'upstream', reason: 'certificate has expired' });
    m.observer({ type: 'session.end', summary: summary({ sid: 'b', result: 'upstream-unreachable', reason: 'certificate has expired' }) });
    m.observer({ type: 'session.start', sid: 'c', listener: 'door', client: '192.0.2.1', clientPort: 1 });
    m.observer({ type: 'auth', sid: 'c', side: 'upstream', mechanism: 'PLAIN', mode: 'local', result: 'fail', code: 535 });
    m.observer({ type: 'session.end', summary: summary({ sid: 'c', result: 'ok' }) });
    expect(await value(m, 'mailshim_upstream_failures_total', { upstream: 'provider', reason: 'refused' })).toBe(1);
    expect(await value(m, 'mailshim_upstream_failures_total', { upstream: 'provider', reason: 'tls' })).toBe(1);
    expect(await value(m, 'mailshim_upstream_failures_total', { upstream: 'provider', reason: 'login' })).toBe(1);
    expect(await value(m, 'mailshim_upstream_failures_total')).toBe(3);
  });

  it('maps free-text reasons onto a closed set', () => {
    expect(classifyUpstreamFailure('upstream did not answer within 30 s')).toBe('timeout');
    expect(classifyUpstreamFailure('connect ETIMEDOUT')).toBe('timeout');
    expect(classifyUpstreamFailure('getaddrinfo ENOTFOUND smtp.invalid')).toBe('dns');
    expect(classifyUpstreamFailure('something nobody expected: 192.0.2.1')).toBe('other');
    // The listener's refusal texts, as listener.ts writes them.
    expect(refusalReason('not in clients.allow')).toBe('allowlist');
    expect(refusalReason('limits.maxConnections')).toBe('max-connections');
    expect(refusalReason('limits.maxPerClient')).toBe('max-per-client');
    expect(refusalReason('limits.ratePerClient')).toBe('rate');
    expect(refusalReason('shutting down')).toBe('shutting-down');
    expect(refusalReason('proxy protocol: peer not in trustedProxies')).toBe('proxy-protocol');
    expect(refusalReason('proxy protocol: v2 transport 3 is neither STREAM nor DGRAM')).toBe('proxy-protocol');
  });

  it('exports the default process metrics with the mailshim_ prefix', async () => {
    const m = createMetrics(() => undefined);
    const names = ((await m.registry.getMetricsAsJSON()) as unknown as MetricJson[]).map((x) => x.name);
    expect(names).toContain('mailshim_process_resident_memory_bytes');
    expect(names).toContain('mailshim_nodejs_eventloop_lag_seconds');
    for (const n of names) expect(n).toMatch(/^mailshim_/);
  });
});
