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

/** `FROM:<a@b> SIZE=10` -> the path and the parameters; null when the syntax is off. */
export function parsePath(args: string, keyword: 'FROM' | 'TO'): { path: string; params: string[] } | null {
  const m = PATH_RE[keyword].exec(args.trim());
  if (!m) return null;
  const path = m[1].startsWith('<') ? m[1].slice(1, -1) : m[1];
  return { path, params: m[2] ? m[2].split(/\s+/).filter(Boolean) : [] };
}
