// One client command line -> verb and arguments. Pure.

export interface Command {
  /** Upper-cased verb: EHLO, MAIL, ... */
  verb: string;
  /** Everything after the verb and its separating space, as received. */
  args: string;
  raw: string;
}

export function parseCommand(line: string): Command {
  const sp = line.indexOf(' ');
  if (sp === -1) return { verb: line.toUpperCase(), args: '', raw: line };
  // Extra spaces before the arguments are dropped (a loop, not a regex: this runs for every command).
  let a = sp + 1;
  while (a < line.length && line.charCodeAt(a) === 0x20) a++;
  return { verb: line.slice(0, sp).toUpperCase(), args: line.slice(a), raw: line };
}

// Compiled once: MAIL and RCPT are parsed on every transaction.
const PATH_RE = {
  FROM: /^FROM:\s*(<[^<>]*>|[^\s<>]+)(?:\s+(.*))?$/i,
  TO: /^TO:\s*(<[^<>]*>|[^\s<>]+)(?:\s+(.*))?$/i,
};

export interface ParsedPath {
  readonly path: string;
  readonly params: readonly string[];
}

// The handlers parse a command's path twice in a row (to check it, then to run it): the last answer is
// kept so that MAIL and RCPT cost one regex match each, not two.
let lastArgs = '';
let lastKeyword = '';
let lastPath: ParsedPath | null = null;

/** `FROM:<a@b> SIZE=10` -> the path and the parameters; null when the syntax is off. */
export function parsePath(args: string, keyword: 'FROM' | 'TO'): ParsedPath | null {
  if (args === lastArgs && keyword === lastKeyword) return lastPath;
  const m = PATH_RE[keyword].exec(args.trim());
  const parsed = m ? { path: m[1].startsWith('<') ? m[1].slice(1, -1) : m[1], params: m[2] ? m[2].split(/\s+/).filter(Boolean) : [] } : null;
  lastArgs = args;
  lastKeyword = keyword;
  lastPath = parsed;
  return parsed;
}
