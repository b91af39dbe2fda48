// mailshim check-config: load and validate a config, print it as mailshim will use it (defaults filled in,
// secrets masked) and the insecure choices it allows. Errors come out as FILE:LINE:COL lines.
import { stringify } from 'yaml';
import { compile } from '../config/compile.js';
import { ConfigError, loadConfig, maskSecrets, warnings } from '../config/load.js';
import type { Config } from '../config/schema.js';

const USAGE = `usage: mailshim check-config --config FILE [--json]

Validate a mailshim config and print the effective configuration: every default filled in,
relative paths resolved, durations in milliseconds, passwords and digest hashes masked.
Warnings about insecure but allowed settings go to stderr.

  -c, --config FILE   the YAML config to check (required)
      --json          print JSON instead of YAML
  -h, --help          show this help

exit status: 0 valid, 1 invalid, 2 wrong usage`;

interface Options {
  config?: string;
  json: boolean;
  help: boolean;
}

function parseArgs(argv: string[]): Options | string {
  const opts: Options = { json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') opts.help = true;
    else if (a === '--json') opts.json = true;
    else if (a === '-c' || a === '--config') {
      const v = argv[++i];
      if (v === undefined) return `${a} needs a file name`;
      opts.config = v;
    } else if (a.startsWith('--config=')) opts.config = a.slice('--config='.length);
    else return `unknown argument "${a}"`;
  }
  return opts;
}

export async function run(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  if (typeof opts === 'string') {
    process.stderr.write(`mailshim check-config: ${opts}\n\n${USAGE}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (!opts.config) {
    process.stderr.write(`mailshim check-config: --config FILE is required\n\n${USAGE}\n`);
    return 2;
  }

  let cfg: Config;
  try {
    cfg = await loadConfig(opts.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      const n = err.issues.length;
      process.stderr.write(`${err.message}\n${opts.config}: ${n} problem${n === 1 ? '' : 's'}, config not valid\n`);
      return 1;
    }
    throw err;
  }

  // What `run` would build from it: certificate and CA files, cipher strings, rules.
  let compiled: Awaited<ReturnType<typeof compile>>;
  try {
    compiled = await compile(cfg);
  } catch (err) {
    process.stderr.write(`${opts.config}: ${err instanceof Error ? err.message : String(err)}\n${opts.config}: config not valid\n`);
    return 1;
  }
  const masked = maskSecrets(cfg);
  process.stdout.write(
    opts.json
      ? JSON.stringify(masked, null, 2) + '\n'
      : `# effective configuration of ${opts.config}: defaults filled in, durations in ms, secrets masked\n` +
          stringify(masked),
  );
  for (const w of new Set([...warnings(cfg), ...compiled.warnings])) process.stderr.write(`warning: ${w}\n`);
  return 0;
}
