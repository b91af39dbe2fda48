// AUTH: sequence and TLS policy are checked here; the exchange itself belongs to the listener's auth mode
// (passthrough | forward | local), chosen once when the config was compiled.
import type { CommandHandler } from '../dispatch.js';
import type { Session } from '../session.js';
import type { AuthContext } from '../../auth/mode.js';
import type { SmtpReply } from '../../types.js';
import * as R from '../../protocol/replies.js';

export const auth: CommandHandler = {
  check(s, cmd) {
    const [mech, initial, extra] = cmd.args.trim().split(/ +/);
    if (!mech || extra !== undefined) return R.syntax('Syntax: AUTH mechanism [initial-response]');
    if (s.authUser) return R.authAlready();
    if (s.tx) return R.badSequence('AUTH not permitted during a mail transaction');
    if (s.listener.cfg.requireTls && !s.clientIsTls) return R.mustStartTls();
    if (s.needEhlo) return R.badSequence('Send EHLO first after STARTTLS');
    const l = s.listener;
    if (l.cfg.tls.mode !== 'none' && !s.clientIsTls && !l.cfg.auth.allowPlaintext) return R.encryptionRequired();
    void initial;
    return undefined;
  },
  run(s, cmd) {
    const [mech, initial] = cmd.args.trim().split(/ +/);
    const locked = s.listener.lockout?.check(s.clientAddress);
    if (locked) {
      // Brute force: answer in order, read nothing more, close (no address is exempt).
      s.emit({ type: 'auth.lockout', sid: s.sid });
      s.reserve(true)(locked, () => s.enterClosing());
      return;
    }
    s.beginAuth();
    s.listener.auth.begin(countingFailures(s), mech.toUpperCase(), initial);
  },
};

/**
 * The session as the auth mode sees it, noting each 535 (credentials invalid) it sends or relays, so
 * failures count towards the lockout in every mode, passthrough included.
 */
function countingFailures(s: Session): AuthContext {
  const note = (r: SmtpReply) => {
    if (r.code === 535) s.listener.lockout?.recordFailure(s.clientAddress);
  };
  return {
    hostname: s.hostname,
    clientAddress: s.clientAddress,
    clientTls: s.clientTls,
    clientCertUser: s.clientCertUser,
    up: s.up,
    sid: s.sid,
    reply: (r) => {
      note(r);
      s.reply(r);
    },
    relayReply: (r) => {
      note(r);
      s.relayReply(r);
    },
    readAuthLine: (cb) => s.readAuthLine(cb),
    finish: (result) => s.finish(result),
    emit: (ev) => s.emit(ev),
  };
}
