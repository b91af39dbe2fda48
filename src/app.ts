// Composition root: config -> observers -> compiled listeners -> servers. No protocol logic here.
import type { Config } from './config/schema.js';
import { compile, type CompiledConfig } from './config/compile.js';
import { warnings as configWarnings } from './config/load.js';
import { EventBus } from './observe/bus.js';
import { createLogger, logObserver, type Logger } from './observe/log.js';
import type { Observer } from './observe/events.js';
import { Listener } from './listener/listener.js';
import { RateLimiter } from './listener/rate-limit.js';
import { createMetrics, refusalReason, type Metrics } from './observe/metrics.js';
import { MetricsServer } from './observe/metrics-server.js';
import { TranscriptWriter } from './observe/transcript.js';
import { KeyLog } from './observe/keylog.js';

export interface AppOptions {
  logger?: Logger;
  /** Extra observers (the demo's transcript printer, tests). */
  observers?: Observer[];
}

export class App {
  readonly bus: EventBus;
  readonly listeners: Listener[] = [];
  private readonly counters = { total: 0, perClient: new Map<string, number>() };
  /** Shared with every listener and updated in place on reload. */
  private readonly limits: Config['limits'];
  private readonly rate: RateLimiter;
  readonly metrics: Metrics;
  metricsServer: MetricsServer | undefined;
  /** Session capture (capture.dir); SIGUSR1 toggles its full-detail mode. */
  capture: TranscriptWriter | undefined;
  keylog: KeyLog | undefined;
  private draining = false;

  private constructor(
    public compiled: CompiledConfig,
    readonly log: Logger,
  ) {
    this.bus = new EventBus((err) => this.log.error({ err }, 'observer failed'));
    this.limits = { ...compiled.cfg.limits };
    this.rate = new RateLimiter(compiled.cfg.limits.ratePerClient);
    // Without metrics.listen nothing can ever read the registry (metrics settings change only at a restart),
    // so neither the per-session observer nor Node's default collectors (GC observer, loop-delay timer) run.
    this.metrics = createMetrics((name) => this.compiled.listeners.find((l) => l.name === name)?.upstreamName, {
      defaultMetrics: Boolean(compiled.cfg.metrics.listen),
    });
  }

  static async start(cfg: Config, opts: AppOptions = {}): Promise<App> {
    const log = opts.logger ?? createLogger(cfg.log.level);
    const compiled = await compile(cfg);
    const app = new App(compiled, log);
    // Insecure but allowed choices get one clear warning at start.
    for (const w of new Set([...configWarnings(cfg), ...compiled.warnings])) log.warn(w);
    // Neither reads protocol lines; without a line observer the session does not build per-line events.
    app.bus.add(logObserver(log, { redactUsernames: cfg.capture.redactUsernames }), { lines: false });
    if (cfg.metrics.listen) app.bus.add(app.metrics.observer, { lines: false });
    if (cfg.capture.dir) {
      app.capture = await TranscriptWriter.start({ ...cfg.capture, dir: cfg.capture.dir }, log);
      app.capture.attach(app.bus);
    }
    if (cfg.capture.keylog) app.keylog = new KeyLog(cfg.capture.keylog, log);
    app.wireKeylog(compiled);
    for (const o of opts.observers ?? []) app.bus.add(o);
    try {
      await app.bind(cfg, log);
    } catch (err) {
      // A later bind failed (port in use): nothing started may stay behind relaying.
      await app.stop(0);
      throw err;
    }
    return app;
  }

  private async bind(cfg: Config, log: Logger): Promise<void> {
    const app = this;
    for (const l of this.compiled.listeners) {
      const listener = new Listener(l, app.bus, app.limits, {
        counters: app.counters,
        rate: app.rate,
        onRefused: (name, reason, client) => {
          log.info({ listener: name, client, reason }, 'connection refused');
          app.metrics.refused(name, refusalReason(reason));
        },
      });
      const addr = await listener.listen();
      log.info({ listener: l.name, address: `${addr.address}:${addr.port}`, upstream: `${l.upstream.host}:${l.upstream.port}`, tls: l.cfg.tls.mode, auth: l.cfg.auth.mode }, 'listening');
      app.listeners.push(listener);
    }
    if (cfg.metrics.listen) {
      app.metricsServer = new MetricsServer(app.metrics.registry, { notReady: () => app.notReady() });
      const a = await app.metricsServer.listen(cfg.metrics.listen.host, cfg.metrics.listen.port);
      log.info({ address: `${a.address}:${a.port}` }, 'metrics, /healthz and /readyz listening');
    }
  }

  /** capture.keylog: both legs' TLS sockets report their secrets to the key log. */
  private wireKeylog(c: CompiledConfig): void {
    const write = this.keylog?.write;
    for (const l of c.listeners) {
      l.upstream.tls.onKeylog = write;
      if (l.tlsServer) l.tlsServer.onKeylog = write;
    }
  }

  /** For /readyz: undefined when every listener accepts connections. */
  private notReady(): string | undefined {
    if (this.draining) return 'draining';
    const down = this.listeners.filter((l) => !l.accepting).map((l) => l.compiled.name);
    return down.length > 0 ? `listeners not accepting: ${down.join(', ')}` : undefined;
  }

  /**
   * SIGHUP: compile the new config (certificates are read again) and swap it in. New sessions use it;
   * open sessions keep the compiled listener they started with. A config that does not compile, or that
   * adds, removes or moves a listener (a new socket needs a restart), is rejected and the old one stays.
   */
  async reload(cfg: Config): Promise<{ ok: true } | { ok: false; reason: string }> {
    let next: CompiledConfig;
    try {
      next = await compile(cfg, this.compiled);
    } catch (err) {
      return this.rejectReload(err instanceof Error ? err.message : String(err));
    }
    const same = (a: { host: string; port: number }, b: { host: string; port: number }) => a.host === b.host && a.port === b.port;
    const byName = new Map(next.listeners.map((l) => [l.name, l]));
    if (
      next.listeners.length !== this.listeners.length ||
      this.listeners.some((l) => !byName.has(l.compiled.name) || !same(byName.get(l.compiled.name)!.cfg.listen, l.compiled.cfg.listen))
    ) {
      return this.rejectReload('listeners were added, removed or moved to another address; restart to apply that');
    }
    for (const w of new Set([...configWarnings(cfg), ...next.warnings])) this.log.warn(w);
    const before = this.compiled.cfg;
    // The key log can be switched on, off or moved by a reload (it is sensitive: off must mean off).
    if (before.capture.keylog !== cfg.capture.keylog) {
      await this.keylog?.close();
      this.keylog = cfg.capture.keylog ? new KeyLog(cfg.capture.keylog, this.log) : undefined;
    }
    this.wireKeylog(next);
    if (before.log.level !== cfg.log.level) this.log.level = cfg.log.level;
    const { keylog: _a, ...captureBefore } = before.capture;
    const { keylog: _b, ...captureAfter } = cfg.capture;
    if (JSON.stringify(captureBefore) !== JSON.stringify(captureAfter) || JSON.stringify(before.metrics) !== JSON.stringify(cfg.metrics)) {
      this.log.warn('capture (other than capture.keylog) and metrics settings change only at a restart; they are not applied by this reload');
    }
    for (const l of this.listeners) l.compiled = byName.get(l.compiled.name)!;
    Object.assign(this.limits, cfg.limits);
    this.rate.setLimit(cfg.limits.ratePerClient);
    this.compiled = next;
    this.metrics.reloaded(true);
    this.log.info({ listeners: next.listeners.map((l) => l.name) }, 'configuration reloaded; open sessions finish on the old one');
    return { ok: true };
  }

  private rejectReload(reason: string): { ok: false; reason: string } {
    this.metrics.reloaded(false);
    this.log.error({ reason }, 'configuration reload rejected; keeping the running configuration');
    return { ok: false, reason };
  }

  get activeSessions(): number {
    return this.listeners.reduce((n, l) => n + l.sessions.size, 0);
  }

  /**
   * Graceful stop: no new connections; open sessions may finish until `timeoutMs`, then each gets
   * 421 4.3.2 and is closed.
   */
  async stop(timeoutMs = this.compiled.cfg.shutdownTimeout): Promise<void> {
    this.draining = true;
    await Promise.all(this.listeners.map((l) => l.stopAccepting()));
    const deadline = Date.now() + timeoutMs;
    while (this.activeSessions > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const l of this.listeners) l.shutdownSessions();
    const grace = Date.now() + 3_000;
    while (this.activeSessions > 0 && Date.now() < grace) await new Promise((r) => setTimeout(r, 20));
    await this.metricsServer?.close();
    await this.capture?.flush();
    await this.keylog?.close();
  }
}
