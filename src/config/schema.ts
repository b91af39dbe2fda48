// Every configuration key is declared once here, with its type and default (maddy's cfg.* habit).
// load.ts reads the YAML and turns zod issues into file:line:col errors; compile.ts builds runtime objects.
import net from 'node:net';
import { z } from 'zod';

/** "30s", "5m", "1h", "250ms" or a number of seconds -> milliseconds. */
export const duration = z
  .union([z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'a duration like 30s, 5m or 1h')])
  .transform((v) => {
    if (typeof v === 'number') return Math.round(v * 1000);
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v)!;
    const n = Number(m[1]);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    return Math.round(n * unit);
  });

/** host:port, [v6]:port or a bare port. */
export const hostPort = z.union([
  z.number().int().min(0).max(65535).transform((port) => ({ host: '0.0.0.0', port })),
  z
    .string()
    .regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:\s]+)?:?\d{1,5}$/, 'host:port, [ipv6]:port or a port number')
    .transform((s) => {
      const m = /^(?:\[([^\]]+)\]|([^:\s]+))?:?(\d{1,5})$/.exec(s)!;
      return { host: m[1] ?? m[2] ?? '0.0.0.0', port: Number(m[3]) };
    })
    .refine((a) => a.port <= 65535, 'a port from 0 to 65535'),
]);

export const cidr = z
  .string()
  .regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'an IP address or CIDR such as 192.168.0.0/16 or ::1/128')
  .refine((c) => {
    const [addr, bits] = c.split('/');
    const family = net.isIP(addr);
    if (family === 0) return false;
    return bits === undefined || Number(bits) <= (family === 4 ? 32 : 128);
  }, 'a valid IPv4/IPv6 address, with a prefix length of at most 32 (IPv4) or 128 (IPv6)');

const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
const tlsVersion = z.enum(TLS_VERSIONS);
/** minVersion must not be above maxVersion (no handshake could ever succeed). */
const versionOrder = (t: { minVersion: string; maxVersion: string }) => TLS_VERSIONS.indexOf(t.minVersion as never) <= TLS_VERSIONS.indexOf(t.maxVersion as never);
const versionOrderIssue = { message: 'minVersion must not be above maxVersion', path: ['minVersion'] };
export type TlsVersion = z.infer<typeof tlsVersion>;

const secretFields = {
  password: z.string().optional(),
  /** Path of a file holding the secret (trailing newline dropped). Read by load.ts into `password`. */
  passwordFile: z.string().optional(),
};

const listenerTls = z
  .object({
    mode: z.enum(['none', 'starttls', 'implicit']).default('none'),
    cert: z.string().optional(),
    key: z.string().optional(),
    minVersion: tlsVersion.default('TLSv1.2'),
    maxVersion: tlsVersion.default('TLSv1.3'),
    ciphers: z.string().optional(),
    /** Server name -> { cert, key } for SNI. */
    sni: z.record(z.string(), z.object({ cert: z.string(), key: z.string() }).strict()).default({}),
    requestClientCert: z.boolean().default(false),
    ca: z.string().optional(),
    crl: z.string().optional(),
  })
  .strict()
  .refine(versionOrder, versionOrderIssue)
  .default({ mode: 'none', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', sni: {}, requestClientCert: false });

const rule = z.union([
  z.object({ remove: z.string().min(1) }).strict(),
  z.object({ 'remove-auth': z.string().min(1) }).strict(),
  z.object({ 'add-auth-equals': z.literal(true) }).strict(),
  z.object({ add: z.string().min(1) }).strict(),
  z.object({ replace: z.object({ keyword: z.string().min(1), with: z.string().min(1) }).strict() }).strict(),
]);
export type RuleConfig = z.infer<typeof rule>;

const mechanism = z.enum(['PLAIN', 'LOGIN', 'CRAM-MD5', 'DIGEST-MD5', 'EXTERNAL']);

const user = z
  .object({
    name: z.string().min(1),
    ...secretFields,
    /** DIGEST-MD5 only: hex MD5(name:realm:password), so the plaintext need not be stored. */
    digestHash: z.string().regex(/^[0-9a-fA-F]{32}$/).optional(),
    upstreamAccount: z.string().optional(),
    /** EXTERNAL: the client certificate subject CN that maps to this user. */
    certificateSubject: z.string().optional(),
  })
  .strict();

const listenerAuth = z
  .object({
    mode: z.enum(['passthrough', 'forward', 'local']).default('passthrough'),
    mechanisms: z.array(mechanism).default(['PLAIN', 'LOGIN']),
    users: z.array(user).default([]),
    defaultUpstreamAccount: z.string().optional(),
    allowPlaintext: z.boolean().default(false),
    realm: z.string().optional(),
    maxFailures: z.number().int().positive().default(10),
    failureWindow: duration.default(600_000),
    lockout: duration.default(600_000),
    failureDelay: duration.default(1000),
  })
  .strict()
  .default({
    mode: 'passthrough',
    mechanisms: ['PLAIN', 'LOGIN'],
    users: [],
    allowPlaintext: false,
    maxFailures: 10,
    failureWindow: 600_000,
    lockout: 600_000,
    failureDelay: 1000,
  });

const timeouts = z
  .object({
    /** RFC 5321 4.5.3.2.7: the server waits at least 5 minutes for the next command. */
    command: duration.default(300_000),
    /** Inactivity while a message body streams in. */
    data: duration.default(300_000),
    /** Waiting for the upstream to answer TCP + greeting. */
    connect: duration.default(30_000),
  })
  .strict()
  .default({ command: 300_000, data: 300_000, connect: 30_000 });

export const listenerSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -'),
    listen: hostPort,
    /** Name used in mailshim's own replies; defaults to the machine's hostname. */
    hostname: z.string().optional(),
    upstream: z.string(),
    tls: listenerTls,
    requireTls: z.boolean().default(false),
    clients: z
      .object({ allow: z.array(cidr).default([]), relayWithoutAuth: z.array(cidr).default([]) })
      .strict()
      .default({ allow: [], relayWithoutAuth: [] }),
    auth: listenerAuth,
    ehlo: z.array(rule).default([]),
    /** Replace the text of the upstream's 220 greeting (the code is kept). */
    greeting: z.string().optional(),
    /** Longest command line accepted, CRLF included (RFC 5321 4.5.3.1.4: 512). */
    maxLineLength: z.number().int().min(64).max(65536).default(512),
    /** A client that talks before the greeting: wait (read it after the greeting) or reject (554, close). */
    earlyTalker: z.enum(['wait', 'reject']).default('wait'),
    timeouts,
    proxyProtocol: z.boolean().default(false),
    trustedProxies: z.array(cidr).default([]),
  })
  .strict();

const upstreamTls = z
  .object({
    mode: z.enum(['none', 'starttls', 'implicit']).default('none'),
    minVersion: tlsVersion.default('TLSv1.2'),
    maxVersion: tlsVersion.default('TLSv1.3'),
    verify: z.boolean().default(true),
    ca: z.string().optional(),
    servername: z.string().optional(),
    ciphers: z.string().optional(),
  })
  .strict()
  .refine(versionOrder, versionOrderIssue)
  .default({ mode: 'none', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', verify: true });

export const upstreamSchema = z
  .object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(25),
    tls: upstreamTls,
    /** Name mailshim uses in its own EHLO to the upstream (before the client's EHLO is relayed). */
    ehloName: z.string().optional(),
    accounts: z.record(z.string(), z.object({ user: z.string(), ...secretFields }).strict()).default({}),
    auth: z
      .object({ mechanism: z.enum(['PLAIN', 'LOGIN']).optional() })
      .strict()
      .default({}),
    allowAuthWithoutVerifiedTls: z.boolean().default(false),
    xclient: z.boolean().default(false),
  })
  .strict();

export const configSchema = z
  .object({
    listeners: z.array(listenerSchema).min(1, 'at least one listener'),
    upstreams: z.record(z.string(), upstreamSchema),
    capture: z
      .object({
        dir: z.string().optional(),
        body: z.enum(['none', 'headers', 'full']).default('headers'),
        bodyMaxBytes: z.number().int().nonnegative().max(64 * 1024 * 1024).default(65536),
        keylog: z.union([z.string(), z.literal(false)]).default(false),
        maxFiles: z.number().int().positive().default(1000),
        maxBytes: z.number().int().positive().default(100 * 1024 * 1024),
        redactUsernames: z.boolean().default(false),
      })
      .strict()
      .default({ body: 'headers', bodyMaxBytes: 65536, keylog: false, maxFiles: 1000, maxBytes: 100 * 1024 * 1024, redactUsernames: false }),
    metrics: z.object({ listen: hostPort.optional() }).strict().default({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
    limits: z
      .object({
        maxConnections: z.number().int().positive().default(1000),
        maxPerClient: z.number().int().positive().default(50),
        ratePerClient: z.number().int().positive().optional(),
      })
      .strict()
      .default({ maxConnections: 1000, maxPerClient: 50 }),
    shutdownTimeout: duration.default(30_000),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    cfg.listeners.forEach((l, i) => {
      if (!(l.upstream in cfg.upstreams)) {
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', i, 'upstream'],
          message: `unknown upstream "${l.upstream}"; defined: ${Object.keys(cfg.upstreams).join(', ') || 'none'}`,
        });
      }
    });
  });

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = z.output<typeof listenerSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
