#!/usr/bin/env node
// CLI entry: parse the command word and hand the rest of argv to a command in cli/. Nothing else.
import { tuneRuntime } from './runtime-tuning.js';

type Command = { summary: string; proxy?: true; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  run: { summary: 'run the proxy: mailshim run --config FILE', proxy: true, load: () => import('./cli/run.js') },
  'check-config': {
    summary: 'validate a config and print it with secrets masked: mailshim check-config --config FILE',
    load: () => import('./cli/check-config.js'),
  },
  demo: { summary: 'run the main job end to end on loopback with no setup', proxy: true, load: () => import('./cli/demo.js') },
  trace: {
    summary: 'captured sessions: mailshim trace list|show ID|follow|pcap ID --config FILE',
    load: () => import('./cli/trace.js'),
  },
  sasl: {
    summary: 'compute SASL client lines by hand: mailshim sasl cram-md5 USER PASSWORD CHALLENGE_B64',
    load: () => import('./cli/sasl.js'),
  },
  probe: {
    summary: 'what a mail server accepts (TLS versions, certificate, EHLO, AUTH): mailshim probe HOST[:PORT]',
    load: () => import('./cli/probe.js'),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'mailshim: an SMTP proxy that lets legacy clients reach modern mail servers',
    '',
    'usage: mailshim <command> [options]',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'mailshim <command> --help shows the options of a command.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
    process.stdout.write(pkg.version + '\n');
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`mailshim: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  // Commands that run the proxy get the GC and malloc tuning for relaying (see runtime-tuning.ts).
  if (cmd.proxy) tuneRuntime();
  return (await cmd.load()).run(rest);
}

// A command's result is the process's end: `run` resolves only after its drain, and whatever is still open
// then (a half-done handshake, a listener bound before a later bind failed) must not keep the process
// alive. Output is flushed first.
const exit = (code: number) => process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
main(process.argv.slice(2)).then(exit, (err: unknown) => {
  process.stderr.write(`mailshim: ${err instanceof Error ? err.message : String(err)}\n`);
  exit(1);
});
