// DATA: relay the command; on the upstream's 354 the session streams the body (session.startData) and the
// client gets the upstream's own reply to the final dot. BDAT is refused, its chunk read and dropped.
import type { CommandHandler } from '../dispatch.js';
import * as R from '../../protocol/replies.js';
import { REPLY_TIMEOUT } from '../../upstream/upstream-client.js';

export const data: CommandHandler = {
  check(s, cmd) {
    if (cmd.args.trim()) return R.syntax('DATA takes no arguments');
    if (s.listener.cfg.requireTls && !s.clientIsTls) return R.mustStartTls();
    if (s.needEhlo) return R.badSequence('Send EHLO first after STARTTLS');
    return undefined;
  },
  run(s) {
    s.relay('DATA', {
      sync: true, // RFC 2920: DATA ends a pipelined group; what follows a 354 is the body
      timeoutMs: REPLY_TIMEOUT.dataStart,
      then: (r) => {
        if (r.code === 354) s.startData();
      },
    });
  },
};

export const bdat: CommandHandler = {
  check: () => undefined,
  run(s, cmd) {
    // CHUNKING is never offered; the chunk's bytes still follow the command and must not run as commands,
    // whatever else is wrong with the line, as long as it names a size.
    const size = /^\d{1,15}/.exec(cmd.args.trim());
    if (!size) {
      s.reply(R.syntax('Syntax: BDAT <size> [LAST]'));
      return;
    }
    const wellFormed = /^\d{1,15}( +LAST)? *$/i.test(cmd.args.trim());
    s.discard(Number(size[0]), wellFormed ? R.bdatRefused() : R.syntax('Syntax: BDAT <size> [LAST]'));
  },
};
