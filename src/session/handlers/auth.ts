// AUTH: sequence and TLS policy are checked here; the exchange itself belongs to the listener's auth mode
// (passthrough | forward | local), chosen once when the config was compiled.
import type { CommandHandler } from '../dispatch.js';
import * as R from '../../protocol/replies.js';

export const auth: CommandHandler = {
  check(s, cmd) {
    const [mech, initial, extra] = cmd.args.trim().split(/ +/);
    if (!mech || extra !== undefined) return R.syntax('Syntax: AUTH mechanism [initial-response]');
    if (s.authUser) return R.authAlready();
    if (s.tx) return R.badSequence('AUTH not permitted during a mail transaction');
    if (s.listener.cfg.requireTls && !s.clientIsTls) return R.mustStartTls();
    const l = s.listener;
    if (l.cfg.tls.mode !== 'none' && !s.clientIsTls && !l.cfg.auth.allowPlaintext) return R.encryptionRequired();
    const locked = l.lockout?.check(s.clientAddress);
    if (locked) return locked;
    void initial;
    return undefined;
  },
  run(s, cmd) {
    const [mech, initial] = cmd.args.trim().split(/ +/);
    s.beginAuth();
    s.listener.auth.begin(s, mech.toUpperCase(), initial);
  },
};
