// Picks the listener's auth mode once, when the config is compiled.
import type { AuthMode } from './mode.js';
import type { CompiledListener } from '../config/compile.js';
import { passthroughMode } from './mode-passthrough.js';

export function createAuthMode(l: CompiledListener): AuthMode {
  switch (l.cfg.auth.mode) {
    case 'passthrough':
      return passthroughMode;
    default:
      throw new Error(`listener ${l.name}: auth.mode ${l.cfg.auth.mode} is not available yet`);
  }
}
