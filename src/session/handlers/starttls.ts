// STARTTLS from the client (RFC 3207): mailshim answers it itself, then everything known before TLS
// is forgotten and the client must EHLO again. Bytes pipelined after STARTTLS are discarded, never run
// inside the TLS session (CVE-2011-0411 class).
import type { CommandHandler } from '../dispatch.js';
import * as R from '../../protocol/replies.js';

export const starttls: CommandHandler = {
  check(s, cmd) {
    if (s.listener.cfg.tls.mode !== 'starttls' || !s.listener.tlsServer) return R.notImplemented('STARTTLS');
    if (s.clientIsTls) return R.tlsAlreadyActive();
    if (cmd.args.trim()) return R.syntax('STARTTLS takes no arguments');
    // RFC 3207 4.2: nothing from before TLS may carry into it (as Postfix: not during a transaction). The
    // EHLO required after the handshake also resets the upstream's side.
    if (s.tx) return R.badSequence('STARTTLS not permitted during a mail transaction');
    return undefined;
  },
  run(s) {
    const fill = s.reserve(true);
    fill(R.tlsReady(), () => {
      const dropped = s.discardBuffered();
      if (dropped > 0) {
        s.emit({ type: 'protocol', sid: s.sid, leg: 'client->proxy', line: `[discarded ${dropped} bytes sent after STARTTLS before TLS]` });
      }
      s.upgradeClientTls();
    });
  },
};
