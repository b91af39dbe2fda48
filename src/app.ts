// Composition root: config -> observers -> compiled listeners -> servers. No protocol logic here.
import type { Config } from './config/schema.js';
import { compile, type CompiledConfig } from './config/compile.js';
import { warnings as configWarnings } from './config/load.js';
import { EventBus } from './observe/bus.js';
import { createLogger, logObserver, type Logger } from './observe/log.js';
import type { Observer } from './observe/events.js';
import { Listener } from './listener/listener.js';

export interface AppOptions {
  logger?: Logger;
  /** Extra observers (the demo's transcript printer, tests). */
  observers?: Observer[];
}

export class App {
  readonly bus: EventBus;
  readonly listeners: Listener[] = [];
  private readonly counters = { total: 0, perClient: new Map<string, number>() };

  private constructor(
    public compiled: CompiledConfig,
    readonly log: Logger,
  ) {
    this.bus = new EventBus((err) => this.log.error({ err }, 'observer failed'));
  }

  static async start(cfg: Config, opts: AppOptions = {}): Promise<App> {
    const log = opts.logger ?? createLogger(cfg.log.level);
    const compiled = await compile(cfg);
    const app = new App(compiled, log);
    // Insecure but allowed choices get one clear warning at start.
    for (const w of new Set([...configWarnings(cfg), ...compiled.warnings])) log.warn(w);
    app.bus.add(logObserver(log));
    for (const o of opts.observers ?? []) app.bus.add(o);
    for (const l of compiled.listeners) {
      const listener = new Listener(l, app.bus, cfg.limits, {
        counters: app.counters,
        onRefused: (name, reason, client) => log.info({ listener: name, client, reason }, 'connection refused'),
      });
      const addr = await listener.listen();
      log.info({ listener: l.name, address: `${addr.address}:${addr.port}`, upstream: `${l.upstream.host}:${l.upstream.port}`, tls: l.cfg.tls.mode, auth: l.cfg.auth.mode }, 'listening');
      app.listeners.push(listener);
    }
    return app;
  }

  get activeSessions(): number {
    return this.listeners.reduce((n, l) => n + l.sessions.size, 0);
  }

  /**
   * Graceful stop: no new connections; open sessions may finish until `timeoutMs`, then each gets
   * 421 4.3.2 and is closed.
   */
  async stop(timeoutMs = this.compiled.cfg.shutdownTimeout): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.stopAccepting()));
    const deadline = Date.now() + timeoutMs;
    while (this.activeSessions > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const l of this.listeners) l.shutdownSessions();
    const grace = Date.now() + 3_000;
    while (this.activeSessions > 0 && Date.now() < grace) await new Promise((r) => setTimeout(r, 20));
  }
}
