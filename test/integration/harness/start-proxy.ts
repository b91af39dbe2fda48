// Starts mailshim in this process from an inline, YAML-shaped config object (validated by the real schema),
// on 127.0.0.1:0 unless the config says otherwise, and collects every session event for assertions.
import pino from 'pino';
import { configSchema } from '../../../src/config/schema.js';
import { App } from '../../../src/app.js';
import type { SessionEvent, SessionSummary } from '../../../src/observe/events.js';

export interface ProxyHandle {
  /** Port of the first listener. */
  port: number;
  /** Ports of all listeners, in config order. */
  ports: number[];
  app: App;
  /** Every event of every session, in emission order. */
  events: SessionEvent[];
  /** Summaries of the sessions that ended so far. */
  ended(): SessionSummary[];
  /** Waits until at least n sessions have ended (default 5 s); returns all summaries. */
  waitForSessionEnd(n: number, timeoutMs?: number): Promise<SessionSummary[]>;
  stop(): Promise<void>;
}

type Listenerish = { listen?: unknown } & Record<string, unknown>;

export async function startProxy(config: object): Promise<ProxyHandle> {
  const raw = structuredClone(config) as { listeners?: Listenerish[] } & Record<string, unknown>;
  for (const l of raw.listeners ?? []) l.listen ??= '127.0.0.1:0';
  const cfg = configSchema.parse(raw);
  const events: SessionEvent[] = [];
  const app = await App.start(cfg, { logger: pino({ level: 'silent' }), observers: [(ev) => events.push(ev)] });
  const ports = app.listeners.map((l) => l.address().port);
  const ended = (): SessionSummary[] =>
    events.flatMap((e) => (e.type === 'session.end' ? [e.summary] : []));
  return {
    port: ports[0],
    ports,
    app,
    events,
    ended,
    async waitForSessionEnd(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (ended().length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} ended session(s) within ${timeoutMs} ms, got ${ended().length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return ended();
    },
    stop: () => app.stop(500),
  };
}
