// Shared set-up for the capture tests: start mailshim in-process from an inline config, with its log
// captured in memory, and run `mailshim trace ...` in-process with stdout captured.
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.js';
import { App } from '../../src/app.js';
import { run as trace } from '../../src/cli/trace.js';

export async function startProxy(config: Record<string, unknown>): Promise<{ app: App; port: number; logs: string[] }> {
  const logs: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  const cfg = configSchema.parse(config);
  const app = await App.start(cfg, { logger });
  return { app, port: app.listeners[0]!.address().port, logs };
}

export async function traceCli(argv: string[]): Promise<{ code: number; out: Buffer; err: string }> {
  const out: Buffer[] = [];
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((c: string | Uint8Array) => (out.push(Buffer.from(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((err += String(c)), true)) as typeof process.stderr.write;
  try {
    const code = await trace(argv);
    return { code, out: Buffer.concat(out), err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

/** Wait until the session count drops to zero and the capture queue is on disk. */
export async function settle(app: App): Promise<void> {
  for (let i = 0; i < 100 && app.activeSessions > 0; i++) await new Promise((r) => setTimeout(r, 20));
  await app.capture?.flush();
}
