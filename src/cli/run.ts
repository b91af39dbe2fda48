// `mailshim run --config FILE`: run until SIGINT/SIGTERM, then drain (sessions finish until
// shutdownTimeout, then get 421 4.3.2). SIGHUP reloads the config file; a bad one is logged and ignored.
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from '../config/load.js';
import { App } from '../app.js';

const USAGE = 'usage: mailshim run --config FILE';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(`${USAGE}\n\nRuns the proxy until SIGINT or SIGTERM. See config/mailshim.example.yaml for every key.\n`);
    return 0;
  }
  if (!values.config) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  // Signal handlers go in before the (possibly slow) start, so a SIGHUP from a reload hook or a SIGTERM
  // during start-up neither kills the process with the default action nor is lost.
  let app: App | undefined;
  let stopping = false;
  let started: () => void = () => {};
  const ready = new Promise<void>((r) => (started = r));
  let finished: (code: number) => void = () => {};
  const done = new Promise<number>((r) => (finished = r));
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void ready.then(async () => {
      if (!app) return;
      app.log.info({ signal, sessions: app.activeSessions }, 'stopping: draining sessions');
      await app.stop();
      app.log.info('stopped');
      finished(0);
    });
  };
  let reloading = Promise.resolve();
  const onHup = () => {
    // One reload at a time, in signal order; one during start-up waits for the start.
    reloading = reloading.then(async () => {
      await ready;
      if (stopping || !app) return;
      app.log.info({ config: values.config }, 'SIGHUP: reloading configuration');
      try {
        await app.reload(await loadConfig(values.config!));
      } catch (err) {
        app.log.error({ reason: err instanceof Error ? err.message : String(err) }, 'configuration reload rejected; keeping the running configuration');
        app.metrics.reloaded(false);
      }
    });
  };
  const onUsr1 = () => {
    if (!app) return;
    // Full-detail capture (message bodies up to capture.bodyMaxBytes) for sessions that start from now on.
    if (!app.capture) {
      app.log.warn('SIGUSR1: capture.dir is not set, nothing is captured');
      return;
    }
    const on = app.capture.toggleFullDetail();
    app.log.info({ fullDetail: on }, `SIGUSR1: full-detail capture ${on ? 'on' : 'off'} for new sessions`);
  };
  const onTerm = () => stop('SIGTERM');
  const onInt = () => stop('SIGINT');
  process.on('SIGHUP', onHup);
  process.on('SIGUSR1', onUsr1);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  try {
    app = await App.start(await loadConfig(values.config));
  } catch (err) {
    process.stderr.write(`mailshim: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err)}\n`);
    for (const [sig, h] of [['SIGHUP', onHup], ['SIGUSR1', onUsr1], ['SIGTERM', onTerm], ['SIGINT', onInt]] as const) process.off(sig, h);
    return 1;
  }
  started();
  return done;
}
