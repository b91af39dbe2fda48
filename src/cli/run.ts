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
  let app: App;
  try {
    app = await App.start(await loadConfig(values.config));
  } catch (err) {
    process.stderr.write(`mailshim: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      app.log.info({ signal, sessions: app.activeSessions }, 'stopping: draining sessions');
      void app.stop().then(() => {
        app.log.info('stopped');
        resolve(0);
      });
    };
    let reloading = Promise.resolve();
    process.on('SIGHUP', () => {
      // One reload at a time, in signal order.
      reloading = reloading.then(async () => {
        if (stopping) return;
        app.log.info({ config: values.config }, 'SIGHUP: reloading configuration');
        try {
          await app.reload(await loadConfig(values.config!));
        } catch (err) {
          app.log.error({ reason: err instanceof Error ? err.message : String(err) }, 'configuration reload rejected; keeping the running configuration');
          app.metrics.reloaded(false);
        }
      });
    });
    process.on('SIGUSR1', () => {
      // Full-detail capture (message bodies up to capture.bodyMaxBytes) for sessions that start from now on.
      if (!app.capture) {
        app.log.warn('SIGUSR1: capture.dir is not set, nothing is captured');
        return;
      }
      const on = app.capture.toggleFullDetail();
      app.log.info({ fullDetail: on }, `SIGUSR1: full-detail capture ${on ? 'on' : 'off'} for new sessions`);
    });
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
