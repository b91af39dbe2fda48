// Picks the listener's auth mode once, when the config is compiled.
import type { AuthMode } from './mode.js';
import type { CompiledListener } from '../config/compile.js';
import { passthroughMode } from './mode-passthrough.js';
import { createForwardMode } from './mode-forward.js';
import { createLocalMode } from './mode-local.js';

export function createAuthMode(l: CompiledListener): AuthMode {
  switch (l.cfg.auth.mode) {
    case 'passthrough':
      return passthroughMode;
    case 'forward':
      return createForwardMode(l);
    case 'local':
      return createLocalMode(l);
  }
}
