import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { logObserver, type Logger } from '../../../src/observe/log.js';
import type { SessionSummary } from '../../../src/observe/events.js';

/** A pino logger whose lines land in `lines`. */
function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log: Logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { log, lines };
}

const summary: SessionSummary = {
  sid: 's1',
  listener: 'fwd',
  client: '127.0.0.1:1',
  upstream: 'provider',
  bytesIn: 1,
  bytesOut: 1,
  messages: 0,
  rejected: 0,
  result: 'ok',
  durationMs: 5,
  authUser: 'notify@provider.example',
  normalisedLineEndings: 0,
};

describe('logObserver', () => {
  it('with redactUsernames, neither the session-end line nor the upstream-login-failure line names the user', () => {
    const { log, lines } = memoryLogger();
    const obs = logObserver(log, { redactUsernames: true });
    obs({ type: 'auth', sid: 's1', side: 'upstream', mechanism: 'PLAIN', mode: 'local', user: 'acct@provider.example', result: 'fail', code: 535, reason: 'upstream provider refused AUTH PLAIN: 535 no' });
    obs({ type: 'session.end', summary });
    expect(lines).toHaveLength(2);
    const all = lines.join('');
    expect(all).not.toContain('provider.example');
    expect(JSON.parse(lines[0]!)).toMatchObject({ user: '********', code: 535 });
    expect(JSON.parse(lines[1]!)).toMatchObject({ msg: 'session end', authUser: '********', listener: 'fwd' });
  });

  it('without it, the log names the user (operators need to know whose login failed)', () => {
    const { log, lines } = memoryLogger();
    logObserver(log)({ type: 'session.end', summary });
    expect(JSON.parse(lines[0]!)).toMatchObject({ authUser: 'notify@provider.example' });
  });
});
