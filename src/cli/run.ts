// `mailshim run --config FILE`: run until SIGINT/SIGTERM, then drain (sessions finish until
// shutdownTimeout, then get 421 4.3.2).
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
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
