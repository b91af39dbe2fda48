// MAIL, RCPT, RSET, NOOP, VRFY, EXPN, HELP: relayed as sent, the client gets the upstream's own reply.
// Pipelined: these do not wait for their reply before the next command is read (RFC 2920).
import type { CommandHandler } from '../dispatch.js';
import * as R from '../../protocol/replies.js';
import { parsePath } from '../../protocol/command.js';
import type { SmtpReply } from '../../types.js';

export const mail: CommandHandler = {
  check(s, cmd) {
    if (s.listener.cfg.requireTls && !s.clientIsTls) return R.mustStartTls();
    if (s.needEhlo) return R.badSequence('Send EHLO first after STARTTLS');
    if (!parsePath(cmd.args, 'FROM')) return R.syntax('Syntax: MAIL FROM:<address>');
    if (!s.authUser && !s.listener.auth.mayRelayUnauthenticated(s.clientAddress)) return R.authRequired();
    return undefined;
  },
  run(s, cmd) {
    const from = parsePath(cmd.args, 'FROM')!.path;
    const mode = s.listener.auth;
    const line = `MAIL ${mode.mailFromArgs ? mode.mailFromArgs(cmd.args, s.authUser) : cmd.args}`;
    const then = (r: SmtpReply) => {
      if (r.code === 250) {
        s.tx = { from, recipients: [], size: 0 };
        s.emit({ type: 'tx.begin', sid: s.sid, from });
      }
    };
    // Local mode logs in upstream first; nothing more is read from the client until that is settled.
    const login = mode.beforeMail?.(s, s.authUser);
    if (!login) {
      s.relay(line, { then });
      return;
    }
    const fill = s.reserve(true);
    void login.then((verdict) => {
      // 454: the device retries later; the log already says loudly why (log.ts, auth events).
      if (verdict === 'refused') fill(R.authTempFail());
      else s.up.command(line, (r) => fill(r, () => then(r)));
    });
  },
};

export const rcpt: CommandHandler = {
  check(s, cmd) {
    if (s.listener.cfg.requireTls && !s.clientIsTls) return R.mustStartTls();
    if (s.needEhlo) return R.badSequence('Send EHLO first after STARTTLS');
    if (!parsePath(cmd.args, 'TO')) return R.syntax('Syntax: RCPT TO:<address>');
    return undefined;
  },
  run(s, cmd) {
    const to = parsePath(cmd.args, 'TO')!.path;
    s.relay(`RCPT ${cmd.args}`, {
      then: (r) => {
        if (r.code >= 200 && r.code < 300) s.tx?.recipients.push(to);
      },
    });
  },
};

export const rset: CommandHandler = {
  check: (_s, cmd) => (cmd.args.trim() ? R.syntax('RSET takes no arguments') : undefined),
  run(s) {
    s.relay('RSET', { then: () => (s.tx = undefined) });
  },
};

export const simpleRelay: CommandHandler = {
  check: () => undefined,
  run(s, cmd) {
    s.relay(cmd.args ? `${cmd.verb} ${cmd.args}` : cmd.verb);
  },
};
