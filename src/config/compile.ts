// Turn a validated Config into runtime objects: compiled rewrite rules, the chosen auth mode, TLS
// contexts, address sets and upstream targets. No protocol logic here.
import os from 'node:os';
import fs from 'node:fs';
import type tls from 'node:tls';
import type { Config, ListenerConfig, UpstreamConfig } from './schema.js';
import type { CapabilityRule } from '../types.js';
import { compileRules } from '../rewrite/rules.js';
import { AddressSet } from '../listener/allowlist.js';
import { buildServerTls, type ServerTls } from '../listener/tls-context.js';
import type { UpstreamTarget } from '../upstream/upstream-client.js';
import type { AuthMode } from '../auth/mode.js';
import { createAuthMode } from '../auth/index.js';
import { FailureLockout } from '../auth/lockout.js';
import type { SmtpReply } from '../types.js';

export interface Lockout {
  /** The reply to send when this address is locked out, else undefined. */
  check(address: string): SmtpReply | undefined;
  recordFailure(address: string): void;
}

export interface CompiledListener {
  name: string;
  cfg: ListenerConfig;
  hostname: string;
  rules: CapabilityRule[];
  upstream: UpstreamTarget;
  upstreamName: string;
  upstreamCfg: UpstreamConfig;
  allow: AddressSet;
  relayWithoutAuth: AddressSet;
  trustedProxies: AddressSet;
  tlsServer: ServerTls | undefined;
  auth: AuthMode;
  lockout?: Lockout;
}

export interface CompiledConfig {
  cfg: Config;
  listeners: CompiledListener[];
  warnings: string[];
}

export function upstreamTarget(name: string, u: UpstreamConfig, connectTimeoutMs: number): UpstreamTarget {
  return {
    name,
    host: u.host,
    port: u.port,
    tlsMode: u.tls.mode,
    tls: {
      minVersion: u.tls.minVersion as tls.SecureVersion,
      maxVersion: u.tls.maxVersion as tls.SecureVersion,
      verify: u.tls.verify,
      ca: u.tls.ca ? fs.readFileSync(u.tls.ca) : undefined,
      servername: u.tls.servername ?? u.host,
      ciphers: u.tls.ciphers,
    },
    ehloName: u.ehloName ?? os.hostname(),
    connectTimeoutMs,
  };
}

/**
 * `previous`: the running config on a reload; a listener of the same name keeps its brute-force lockout
 * state (a SIGHUP, e.g. from a certificate renewal hook, must not forgive an attacker).
 */
export async function compile(cfg: Config, previous?: CompiledConfig): Promise<CompiledConfig> {
  const warnings: string[] = [];
  const listeners: CompiledListener[] = [];
  for (const [i, l] of cfg.listeners.entries()) {
    try {
      listeners.push(await compileListener(cfg, l, previous, warnings));
    } catch (err) {
      // Files that cannot be read, an OpenSSL cipher string it rejects...: say which listener.
      throw new Error(`listeners[${i}] (${l.name}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { cfg, listeners, warnings };
}

async function compileListener(cfg: Config, l: ListenerConfig, previous: CompiledConfig | undefined, warnings: string[]): Promise<CompiledListener> {
  const hostname = l.hostname ?? os.hostname();
  const upstreamCfg = cfg.upstreams[l.upstream];
  const tlsServer = await buildServerTls(l, hostname);
  if (tlsServer) warnings.push(...tlsServer.warnings);
  const compiled: CompiledListener = {
    name: l.name,
    cfg: l,
    hostname,
    rules: compileRules(l.ehlo),
    upstream: upstreamTarget(l.upstream, upstreamCfg, l.timeouts.connect),
    upstreamName: l.upstream,
    upstreamCfg,
    allow: new AddressSet(l.clients.allow),
    relayWithoutAuth: new AddressSet(l.clients.relayWithoutAuth),
    trustedProxies: new AddressSet(l.trustedProxies),
    tlsServer,
    auth: undefined as unknown as AuthMode,
    lockout: undefined,
  };
  const lockoutOptions = { hostname, maxFailures: l.auth.maxFailures, failureWindowMs: l.auth.failureWindow, lockoutMs: l.auth.lockout };
  const kept = previous?.listeners.find((p) => p.name === l.name)?.lockout;
  if (kept instanceof FailureLockout) kept.setOptions(lockoutOptions);
  compiled.lockout = kept ?? new FailureLockout(lockoutOptions);
  compiled.auth = createAuthMode(compiled);
  return compiled;
}
