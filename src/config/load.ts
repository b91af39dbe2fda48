// Read a mailshim YAML config: parse it keeping positions, expand ${ENV}, validate it with schema.ts,
// read passwordFile secrets, resolve relative paths, and report every problem as FILE:LINE:COL.
//
// Relative paths (listener tls cert/key/ca/crl and sni.*.cert/key, upstream tls.ca, passwordFile,
// capture.dir, capture.keylog) resolve against the directory of the config file, not the working
// directory, so a config and its files can move together.
import { readFile as readFileAsync } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, parseDocument, visit, type Document, type Node, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export interface ConfigIssue {
  file: string;
  /** 1-based; 0 when the problem has no position (the file itself could not be read). */
  line: number;
  col: number;
  /** Dotted key path such as `listeners[0].auth.mode`; empty for the document itself. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    const sorted = [...issues].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
    super(sorted.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = sorted;
  }
}

export function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.col}` : i.file;
  return `${where}: ${i.path ? i.path + ': ' : ''}${i.message}`;
}

type Path = (string | number)[];
type ReadFile = (p: string) => string;

/** Read and validate a config file. Throws ConfigError for anything wrong with it. */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  let text: string;
  try {
    text = await readFileAsync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: 0, col: 0, path: '', message: `cannot read the config file (${errText(err)})` }]);
  }
  return parseConfig(text, file, env, (p) => readFileSync(p, 'utf8'));
}

/**
 * The whole loader without touching the config file itself: `text` is its content, `file` its name (used in
 * messages and as the base for relative paths), `readFile` reads passwordFile secrets.
 */
export function parseConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  readFile: ReadFile = (p) => readFileSync(p, 'utf8'),
): Config {
  const pos = new Positions(text);
  const issue = (offset: number, p: Path, message: string): ConfigIssue => ({
    file,
    ...pos.at(offset),
    path: formatPath(p),
    message,
  });

  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => issue(syntaxErrorOffset(doc, e), [], `YAML syntax error: ${e.message}`)));
  }
  const badAlias = findUnresolvedAlias(doc);
  if (badAlias) {
    throw new ConfigError([issue(badAlias.offset, [], `YAML syntax error: alias *${badAlias.name} has no anchor &${badAlias.name} before it`)]);
  }

  const issues: ConfigIssue[] = [];
  const failedPaths = new Set<string>();
  expandEnv(doc, text, env, (offset, p, message) => {
    issues.push(issue(offset, p, message));
    failedPaths.add(formatPath(p));
  });

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    // yaml refuses alias bombs ("billion laughs") here.
    throw new ConfigError([issue(0, [], `YAML error: ${err instanceof Error ? err.message : String(err)}`)]);
  }
  const parseOpts = { reportInput: true, error: () => DEFAULT_MESSAGE };
  const parsed = configSchema.safeParse(raw, parseOpts);
  let cfg: Config;
  if (parsed.success) {
    cfg = parsed.data;
  } else {
    for (const zi of flattenIssues(parsed.error.issues, [], raw)) {
      // A value whose ${VAR} failed is already reported; its stand-in empty string proves nothing.
      if (failedPaths.has(formatPath(zi.path))) continue;
      const { offset, path: p } = locate(doc, zi.path, zi.pointAtKey);
      issues.push(issue(offset, p, zi.message));
    }
    // zod runs schema.ts's cross-reference check only once the shape is right. When that check is all that
    // failed, the shape is fine, so go on to our own checks and report everything in one go.
    const structural = parsed.error.issues.every((i) => i.code === 'custom') ? shapeOnly.safeParse(raw) : undefined;
    if (!structural?.success) throw new ConfigError(issues);
    cfg = structural.data;
  }
  if (failedPaths.size > 0) throw new ConfigError(issues);

  const at = (p: Path, message: string, pointAtKey = false) => {
    const { offset } = locate(doc, p, pointAtKey);
    issues.push(issue(offset, p, message));
  };
  checkReferences(cfg, at);
  resolveFiles(cfg, path.dirname(path.resolve(file)), readFile, at);
  if (issues.length > 0) throw new ConfigError(issues);
  return cfg;
}

/** configSchema without its refinements: the same shape and defaults, no cross-reference checks. */
const shapeOnly = configSchema.clone({ ...configSchema.def, checks: [] });

// ---------------------------------------------------------------------------------------------------------
// Positions

class Positions {
  private readonly lineStarts: number[] = [0];

  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  at(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - this.lineStarts[lo]! + 1 };
  }
}

/**
 * yaml reports an unclosed quote at the end of the file, where the quoted scalar swallowed everything;
 * the opening quote is where the mistake is.
 */
function syntaxErrorOffset(doc: Document, e: YAMLError): number {
  if (e.code !== 'MISSING_CHAR' || !/quote/.test(e.message)) return e.pos[0];
  let best: number | undefined;
  visit(doc, {
    Scalar(_key, node) {
      const r = node.range;
      if ((node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') && r && r[0] <= e.pos[0] && r[1] >= e.pos[0]) {
        best = Math.max(best ?? 0, r[0]);
      }
    },
  });
  return best ?? e.pos[0];
}

function findUnresolvedAlias(doc: Document): { offset: number; name: string } | undefined {
  let found: { offset: number; name: string } | undefined;
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined) {
        found = { offset: node.range?.[0] ?? 0, name: node.source };
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function keyString(key: unknown): string | undefined {
  if (isScalar(key)) return key.value === null || key.value === undefined ? undefined : String(key.value);
  return undefined;
}

/**
 * Find the YAML node for a path. A path that runs past what the YAML holds (a missing key, or a section left
 * to its defaults) points at the deepest mapping that exists. `pointAtKey` points at the key instead of the value.
 */
function locate(doc: Document, p: Path, pointAtKey = false): { offset: number; path: Path } {
  let node: unknown = doc.contents;
  let offset = nodeStart(node) ?? 0;
  for (let i = 0; i < p.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = p[i]!;
    let next: unknown;
    let keyNode: unknown;
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && keyString(it.key) === String(seg));
      if (!pair) break;
      keyNode = pair.key;
      next = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      next = node.items[seg];
    } else {
      break;
    }
    const keyStart = nodeStart(keyNode);
    const valueStart = nodeStart(next);
    const last = i === p.length - 1;
    // An empty value (`key:` and nothing) has no text of its own; its key is the useful place.
    const emptyValue = isScalar(next) && next.value === null && next.range?.[0] === next.range?.[1];
    if (last && (pointAtKey || emptyValue || valueStart === undefined) && keyStart !== undefined) {
      offset = keyStart;
    } else if (valueStart !== undefined) {
      offset = valueStart;
    } else if (keyStart !== undefined) {
      offset = keyStart;
    }
    node = next;
  }
  return { offset, path: p };
}

function nodeStart(n: unknown): number | undefined {
  if (n && typeof n === 'object' && 'range' in n) {
    const r = (n as Node).range;
    if (r) return r[0];
  }
  return undefined;
}

export function formatPath(p: Path): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// ${VAR} expansion

const REF = /\$\$\{|\$\{([^}]*)\}?/g;

/**
 * Expand `${VAR}` and `${VAR:-default}` in every string value (keys are left alone); `$${` is a literal `${`.
 * A value made only of references where the schema wants a number or true/false (`port: ${SMTP_PORT}`)
 * becomes one, since the environment only holds strings.
 */
function expandEnv(
  doc: Document,
  text: string,
  env: NodeJS.ProcessEnv,
  fail: (offset: number, p: Path, message: string) => void,
): void {
  const walk = (node: unknown, p: Path): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const k = keyString(pair.key);
        if (k !== undefined) walk(pair.value, [...p, k]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((it, i) => walk(it, [...p, i]));
    } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
      const start = node.range?.[0] ?? 0;
      const src = node.range ? text.slice(node.range[0], node.range[1]) : undefined;
      let ok = true;
      const expanded = node.value.replace(REF, (match: string, body: string | undefined) => {
        if (match === '$${') return '${';
        // Point at the reference itself when the source spells it verbatim (no escapes or folding in between).
        const rel = src?.indexOf(match) ?? -1;
        const where = start + Math.max(rel, 0);
        const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s.exec(body ?? '');
        if (!match.endsWith('}') || !m) {
          ok = false;
          fail(where, p, `expected \${NAME} or \${NAME:-default} (got "${match}"); write $\${ for a literal \${`);
          return '';
        }
        const value = env[m[1]!];
        if (value !== undefined && (value !== '' || m[2] === undefined)) return value;
        if (m[2] !== undefined) return m[2];
        ok = false;
        fail(where, p, `environment variable ${m[1]} is not set (write \${${m[1]}:-default} for a fallback)`);
        return '';
      });
      node.value = ok ? coerce(expanded, p) : expanded;
    }
  };
  walk(doc.contents, []);
}

function coerce(value: string, p: Path): unknown {
  const kind = leafKind(p);
  if (kind === 'number' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (kind === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// Looking into the zod schema (for key lists and value kinds). Uses zod 4's public `def` of each schema.

type AnySchema = z.ZodType;
interface Def {
  type: string;
  innerType?: AnySchema;
  in?: AnySchema;
  out?: AnySchema;
  shape?: Record<string, AnySchema>;
  element?: AnySchema;
  valueType?: AnySchema;
  options?: AnySchema[];
}

function defOf(s: AnySchema): Def {
  return (s as unknown as { _zod: { def: Def } })._zod.def;
}

/** Strip default/optional/pipe wrappers down to the schema that decides the value's shape. */
function unwrap(s: AnySchema): AnySchema {
  for (let i = 0; i < 20; i++) {
    const d = defOf(s);
    if ((d.type === 'default' || d.type === 'optional' || d.type === 'nullable' || d.type === 'prefault') && d.innerType) s = d.innerType;
    else if (d.type === 'pipe' && d.in) s = d.in;
    else return s;
  }
  return s;
}

/** The schema at a path, or undefined where a union leaves it ambiguous. */
function schemaAt(p: Path): AnySchema | undefined {
  let s: AnySchema | undefined = configSchema;
  for (const seg of p) {
    if (!s) return undefined;
    const d = defOf(unwrap(s));
    if (d.type === 'object' && d.shape) s = d.shape[String(seg)];
    else if (d.type === 'array') s = d.element;
    else if (d.type === 'record') s = d.valueType;
    else return undefined;
  }
  return s;
}

function leafKind(p: Path): string | undefined {
  const s = schemaAt(p);
  return s ? defOf(unwrap(s)).type : undefined;
}

function knownKeys(p: Path): string[] {
  const s = schemaAt(p);
  if (!s) return [];
  const d = defOf(unwrap(s));
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : [];
}

// ---------------------------------------------------------------------------------------------------------
// zod issues -> readable messages

/** Returned by our error map, so a message that differs from it was written in schema.ts and is kept. */
const DEFAULT_MESSAGE = '\u0000default';

interface RawIssue {
  code: string;
  path: PropertyKey[];
  message: string;
  input?: unknown;
  expected?: string;
  values?: unknown[];
  keys?: string[];
  errors?: RawIssue[][];
  minimum?: number | bigint;
  maximum?: number | bigint;
  inclusive?: boolean;
  origin?: string;
  pattern?: string;
  format?: string;
}

interface Flat {
  path: Path;
  message: string;
  pointAtKey: boolean;
}

function getIn(value: unknown, p: Path): unknown {
  let v = value;
  for (const seg of p) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function flattenIssues(zIssues: readonly unknown[], prefix: Path, root: unknown): Flat[] {
  const out: Flat[] = [];
  for (const zi of zIssues as RawIssue[]) {
    const p: Path = [...prefix, ...zi.path.map((s) => (typeof s === 'number' ? s : String(s)))];
    const input = zi.input !== undefined ? zi.input : getIn(root, p);
    const missing = input === undefined && p.length > 0 && !hasKey(root, p);
    if (zi.code === 'unrecognized_keys') {
      const known = knownKeys(p);
      for (const k of zi.keys ?? []) {
        const near = known.filter((c) => editDistance(c.toLowerCase(), k.toLowerCase()) <= 2);
        const hint = near.length ? `; did you mean "${near[0]}"?` : '';
        out.push({
          path: [...p, k],
          message: `unknown key (expected one of: ${known.join(', ')}${hint})`,
          pointAtKey: true,
        });
      }
      continue;
    }
    if (zi.code === 'invalid_union' && zi.errors) {
      const picked = pickUnionBranch(zi.errors, input);
      if (picked) {
        out.push(...flattenIssues(picked, p, root));
        continue;
      }
      out.push({ path: p, message: `expected ${describeUnion(zi.errors, input)} (got ${got(input, p)})`, pointAtKey: false });
      continue;
    }
    out.push({ path: p, message: messageFor(zi, input, p, missing), pointAtKey: false });
  }
  return out;
}

function hasKey(root: unknown, p: Path): boolean {
  const parent = getIn(root, p.slice(0, -1));
  return parent !== null && typeof parent === 'object' && Object.hasOwn(parent, p[p.length - 1]!);
}

/** The union branch whose shape fits the input (its only problems are inside it), if exactly one does. */
function pickUnionBranch(branches: RawIssue[][], input: unknown): RawIssue[] | undefined {
  const fits = branches.filter((issues) =>
    issues.every((i) => {
      if (i.path.length === 0) return false;
      const isMissing = i.path.length === 1 && !(isObject(input) && Object.hasOwn(input, String(i.path[0])));
      return !isMissing;
    }),
  );
  return fits.length === 1 ? fits[0] : undefined;
}

function describeUnion(branches: RawIssue[][], input: unknown): string {
  const rootType = branches.map((issues) => issues.find((i) => i.path.length === 0 && i.code === 'invalid_type'));
  if (rootType.every((t) => t !== undefined)) {
    return unique(rootType.map((t) => typeName(t!.expected))).join(' or ');
  }
  // Object branches told apart by their one key (the EHLO rules): name those keys.
  const keys = branches.map((issues) => {
    const missingKeys = issues
      .filter((i) => i.path.length === 1 && !(isObject(input) && Object.hasOwn(input, String(i.path[0]))))
      .map((i) => String(i.path[0]));
    const unknown = new Set(issues.flatMap((i) => (i.code === 'unrecognized_keys' && i.path.length === 0 ? i.keys ?? [] : [])));
    const ownPresent = isObject(input) ? Object.keys(input).filter((k) => !unknown.has(k)) : [];
    return unique([...missingKeys, ...ownPresent]).join('+');
  });
  return `a mapping with exactly one of the keys ${unique(keys.filter(Boolean)).join(', ')}`;
}

function messageFor(i: RawIssue, input: unknown, p: Path, missing: boolean): string {
  const custom = i.message !== DEFAULT_MESSAGE ? i.message : undefined;
  if (i.code === 'custom') return custom ?? 'invalid value';
  const expected = custom ?? expectedText(i);
  if (missing) return `expected ${expected} (got nothing: this required key is missing)`;
  return `expected ${expected} (got ${got(input, p)})`;
}

function expectedText(i: RawIssue): string {
  switch (i.code) {
    case 'invalid_type':
      return typeName(i.expected);
    case 'invalid_value': {
      const vs = (i.values ?? []).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
      return vs.length === 1 ? vs[0]! : `one of: ${vs.join(', ')}`;
    }
    case 'too_small':
      return bound(i, 'at least', 'more than', i.minimum);
    case 'too_big':
      return bound(i, 'at most', 'less than', i.maximum);
    case 'invalid_format':
      return i.pattern ? `text matching ${i.pattern}` : `a valid ${i.format ?? 'value'}`;
    case 'not_multiple_of':
      return 'a multiple of the allowed step';
    default:
      return 'a valid value';
  }
}

function bound(i: RawIssue, incl: string, excl: string, n: number | bigint | undefined): string {
  const word = i.inclusive === false ? excl : incl;
  if (i.origin === 'array' || i.origin === 'set') return `a list with ${word} ${n} item${n === 1 ? '' : 's'}`;
  if (i.origin === 'string') return n === 1 && word === 'at least' ? 'a non-empty string' : `a string of ${word} ${n} characters`;
  return `a number ${word} ${n}`;
}

function typeName(t: string | undefined): string {
  switch (t) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'int':
      return 'a whole number';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    default:
      return t ?? 'a value';
  }
}

const SECRET_KEYS = new Set(['password', 'digestHash']);

function got(input: unknown, p: Path): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'an empty value';
  if (Array.isArray(input)) return input.length === 0 ? 'an empty list' : 'a list';
  if (typeof input === 'object') return `a mapping with keys ${Object.keys(input).join(', ') || '(none)'}`;
  // Never echo a secret into an error message (it ends up in logs).
  if (SECRET_KEYS.has(String(p[p.length - 1]))) return `a ${typeof input}`;
  if (typeof input === 'string') return JSON.stringify(input.length > 60 ? input.slice(0, 57) + '...' : input);
  return `${typeof input} ${String(input)}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function errText(err: unknown): string {
  if (err instanceof Error && 'code' in err && typeof err.code === 'string') {
    // Node's fs messages already start with the code: "ENOENT: no such file or directory, open '...'".
    return err.message.startsWith(err.code) ? err.message : `${err.code}: ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------------------
// Checks the schema cannot express, and files

type At = (p: Path, message: string, pointAtKey?: boolean) => void;

function checkReferences(cfg: Config, at: At): void {
  cfg.listeners.forEach((l, li) => {
    const base: Path = ['listeners', li];
    const upstream = cfg.upstreams[l.upstream];
    const accounts = Object.keys(upstream?.accounts ?? {});
    const accountRef = (p: Path, name: string) => {
      // An unknown upstream is reported by schema.ts; its accounts cannot be checked.
      if (upstream && !accounts.includes(name)) {
        at(p, `expected an account of upstream "${l.upstream}": ${accounts.join(', ') || 'it defines none'} (got "${name}")`);
      }
    };
    l.auth.users.forEach((u, ui) => {
      const up: Path = [...base, 'auth', 'users', ui];
      // A certificate-only user (EXTERNAL, FIELD-NOTES §5) proves itself with its certificate, not a secret.
      if (u.password === undefined && u.passwordFile === undefined && u.digestHash === undefined && u.certificateSubject === undefined) {
        at(up, `user "${u.name}" needs password, passwordFile, digestHash or certificateSubject (got none of them)`);
      }
      if (u.password !== undefined && u.passwordFile !== undefined) {
        at([...up, 'passwordFile'], 'expected password or passwordFile, not both', true);
      }
      if (u.upstreamAccount !== undefined) accountRef([...up, 'upstreamAccount'], u.upstreamAccount);
    });
    if (l.auth.defaultUpstreamAccount !== undefined) {
      accountRef([...base, 'auth', 'defaultUpstreamAccount'], l.auth.defaultUpstreamAccount);
    }
    if (
      l.auth.mode === 'local' &&
      l.auth.users.length === 0 &&
      !(l.auth.defaultUpstreamAccount !== undefined && l.clients.relayWithoutAuth.length > 0)
    ) {
      at(
        [...base, 'auth', 'mode'],
        'auth.mode local expected at least one entry in auth.users, or auth.defaultUpstreamAccount with clients.relayWithoutAuth (got neither)',
      );
    }
  });
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    for (const [acct, a] of Object.entries(u.accounts)) {
      if (a.password !== undefined && a.passwordFile !== undefined) {
        at(['upstreams', name, 'accounts', acct, 'passwordFile'], 'expected password or passwordFile, not both', true);
      }
    }
  }
}

function resolveFiles(cfg: Config, dir: string, readFile: ReadFile, at: At): void {
  const abs = (p: string) => path.resolve(dir, p);
  const readSecret = (holder: { password?: string; passwordFile?: string }, p: Path) => {
    if (holder.passwordFile === undefined) return;
    const file = abs(holder.passwordFile);
    holder.passwordFile = file;
    try {
      holder.password = readFile(file).replace(/\r?\n$/, '');
    } catch (err) {
      at([...p, 'passwordFile'], `expected a readable file (got ${errText(err)})`);
    }
  };

  cfg.listeners.forEach((l, li) => {
    const t = l.tls;
    if (t.cert !== undefined) t.cert = abs(t.cert);
    if (t.key !== undefined) t.key = abs(t.key);
    if (t.ca !== undefined) t.ca = abs(t.ca);
    if (t.crl !== undefined) t.crl = abs(t.crl);
    for (const sni of Object.values(t.sni)) {
      sni.cert = abs(sni.cert);
      sni.key = abs(sni.key);
    }
    l.auth.users.forEach((u, ui) => readSecret(u, ['listeners', li, 'auth', 'users', ui]));
  });
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    if (u.tls.ca !== undefined) u.tls.ca = abs(u.tls.ca);
    for (const [acct, a] of Object.entries(u.accounts)) readSecret(a, ['upstreams', name, 'accounts', acct]);
  }
  if (cfg.capture.dir !== undefined) cfg.capture.dir = abs(cfg.capture.dir);
  if (typeof cfg.capture.keylog === 'string') cfg.capture.keylog = abs(cfg.capture.keylog);
}

// ---------------------------------------------------------------------------------------------------------
// Masking and warnings

const MASK = '********';

/** A deep copy of the config with every password and digestHash replaced by ********, for printing and logs. */
export function maskSecrets(cfg: Config): unknown {
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy);
    if (isObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEYS.has(k) && x !== undefined ? MASK : copy(x);
      return out;
    }
    return v;
  };
  return copy(cfg);
}

const TLS_ORDER = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\./.test(h);
}

/** Insecure choices the config allows; each deserves one clear line at startup. */
export function warnings(cfg: Config): string[] {
  const out: string[] = [];
  const portMismatch = (who: string, mode: string, port: number) => {
    if (mode === 'implicit' && (port === 587 || port === 25)) {
      out.push(`${who}: implicit TLS on port ${port}, where clients expect STARTTLS (RFC 8314 puts implicit TLS on 465)`);
    }
    if (mode === 'starttls' && port === 465) {
      out.push(`${who}: STARTTLS on port 465, where clients expect implicit TLS (RFC 8314)`);
    }
  };
  cfg.listeners.forEach((l, i) => {
    const who = `listeners[${i}] (${l.name})`;
    if (l.tls.mode !== 'none' && TLS_ORDER.indexOf(l.tls.minVersion) < TLS_ORDER.indexOf('TLSv1.2')) {
      out.push(`${who}: accepts ${l.tls.minVersion}, which is broken and deprecated (RFC 8996); keep it only for clients that cannot do TLS 1.2`);
    }
    if (l.auth.allowPlaintext) {
      out.push(`${who}: auth.allowPlaintext lets clients send passwords without TLS`);
    }
    portMismatch(who, l.tls.mode, l.listen.port);
    const open = !isLoopback(l.listen.host) && l.clients.allow.length === 0;
    if (open && l.auth.mode === 'local') {
      out.push(`${who}: listens on ${l.listen.host} with auth.mode local and an empty clients.allow, so anyone who can reach it may try passwords; set clients.allow`);
    }
    if (open && l.auth.mode !== 'local') {
      out.push(
        `${who}: listens on ${l.listen.host} with auth.mode ${l.auth.mode} and an empty clients.allow: if the upstream trusts mailshim's address ` +
          `(e.g. Postfix permit_mynetworks), anyone who can reach this listener relays through it; set clients.allow, or upstreams.${l.upstream}.xclient so the upstream judges the real client`,
      );
    }
    if (l.auth.users.some((u) => u.certificateSubject) && !l.tls.ca) {
      out.push(`${who}: a user is matched by certificateSubject but tls.ca is not set, so client certificates are checked against the public CAs; set tls.ca to your own CA`);
    }
    if (open && l.clients.relayWithoutAuth.some((c) => /\/0$/.test(c))) {
      out.push(`${who}: clients.relayWithoutAuth covers every address and clients.allow is empty: this is an open relay`);
    }
  });
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    const who = `upstreams.${name}`;
    if (u.tls.mode !== 'none' && !u.tls.verify) {
      out.push(`${who}: tls.verify is false, so the server's certificate is not checked and a man in the middle can read credentials`);
    }
    if (u.allowAuthWithoutVerifiedTls) {
      out.push(`${who}: allowAuthWithoutVerifiedTls sends account passwords over connections whose server is not verified`);
    }
    portMismatch(who, u.tls.mode, u.port);
  }
  if (cfg.capture.keylog !== false) {
    out.push(`capture.keylog writes TLS session keys to ${cfg.capture.keylog}: anyone with that file can decrypt captured traffic`);
  }
  return out;
}
