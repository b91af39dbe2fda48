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
