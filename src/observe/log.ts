// pino factory: JSON lines for the platform's log pipeline, human-readable when stdout is a terminal.
import { pino, type Logger } from 'pino';
import type { Observer } from './events.js';
import { shownUser, withoutUser } from './redact.js';

export type { Logger };

export function createLogger(level: string, opts: { pretty?: boolean } = {}): Logger {
  const pretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  return pino({
    level,
    base: { app: 'mailshim' },
    // Defence in depth: config objects logged by mistake never show a secret.
    redact: { paths: ['*.password', '*.*.password', 'password'], censor: '********' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}

export interface LogObserverOptions {
  /** capture.redactUsernames: the log is as much a record of who logged in as a transcript is. */
  redactUsernames?: boolean;
}

/** One line when a session starts and one when it ends (client, upstream, bytes, messages, result, duration). */
export function logObserver(log: Logger, opts: LogObserverOptions = {}): Observer {
  const redact = opts.redactUsernames ?? false;
  return (ev) => {
    switch (ev.type) {
      case 'session.start':
        if (!log.isLevelEnabled('info')) break; // skip building the object (once per session)
        log.info({ sid: ev.sid, listener: ev.listener, client: ev.client, proxiedFrom: ev.proxiedFrom }, 'session start');
        break;
      case 'link.tls-failed':
        log.warn({ sid: ev.sid, side: ev.side, reason: ev.reason, offered: ev.offered }, 'TLS handshake failed');
        break;
      case 'auth':
        // The provider refused the account mailshim logs in with: every device behind it is stuck until fixed.
        if (ev.side === 'upstream' && ev.mode === 'local' && ev.result !== 'ok') {
          log.error({ sid: ev.sid, user: shownUser(ev.user, redact), code: ev.code, reason: redact ? withoutUser(ev.reason, ev.user) : ev.reason }, 'UPSTREAM LOGIN FAILED: the provider rejected the mapped account; clients get 454');
        }
        break;
      case 'session.end': {
        const s = ev.summary;
        const level = s.result === 'ok' || s.result === 'client-closed' ? 'info' : 'warn';
        log[level](redact && s.authUser !== undefined ? { ...s, authUser: shownUser(s.authUser, true) } : s, 'session end');
        break;
      }
      default:
        break;
    }
  };
}
