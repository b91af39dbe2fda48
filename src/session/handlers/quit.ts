// QUIT: the upstream's 221 goes back to the client, then both connections close.
import type { CommandHandler } from '../dispatch.js';
import * as R from '../../protocol/replies.js';

export const quit: CommandHandler = {
  check: () => undefined,
  run(s) {
    if (s.up.closed) {
      s.reply(R.bye(), () => s.enterClosing());
      return;
    }
    s.relay('QUIT', {
      sync: true,
      timeoutMs: 10_000,
      // The upstream said goodbye: close our side now, so enterClosing() does not send it a second QUIT.
      then: () => {
        s.up.close();
        s.enterClosing();
      },
    });
  },
};
