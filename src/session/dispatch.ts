// Verb -> handler. Each handler checks syntax and sequence first (returning the error reply, changing
// nothing), then runs (OpenSMTPD's commands[] split).
import type { Command } from '../protocol/command.js';
import type { SmtpReply } from '../types.js';
import * as R from '../protocol/replies.js';
import type { Session } from './session.js';
import { ehlo } from './handlers/ehlo.js';
import { mail, rcpt, simpleRelay, rset } from './handlers/envelope.js';
import { data, bdat } from './handlers/data.js';
import { auth } from './handlers/auth.js';
import { starttls } from './handlers/starttls.js';
import { quit } from './handlers/quit.js';

export interface CommandHandler {
  check(s: Session, cmd: Command): SmtpReply | undefined;
  run(s: Session, cmd: Command): void;
}

const refuse = (reply: () => SmtpReply): CommandHandler => ({ check: () => reply(), run: () => {} });

const handlers: Record<string, CommandHandler> = Object.assign(Object.create(null) as Record<string, CommandHandler>, {
  EHLO: ehlo,
  HELO: ehlo,
  MAIL: mail,
  RCPT: rcpt,
  DATA: data,
  BDAT: bdat,
  RSET: rset,
  NOOP: simpleRelay,
  VRFY: simpleRelay,
  EXPN: simpleRelay,
  HELP: simpleRelay,
  AUTH: auth,
  STARTTLS: starttls,
  QUIT: quit,
  // Never let a client speak for mailshim to an upstream that trusts it (Postfix XCLIENT/XFORWARD).
  XCLIENT: refuse(R.unknownCommand),
  XFORWARD: refuse(R.unknownCommand),
});

/** A verb mailshim knows (relayed, answered or refused on purpose); anything else is shown masked in transcripts. */
export function isKnownVerb(verb: string): boolean {
  return verb in handlers;
}

export function dispatch(s: Session, cmd: Command): void {
  const h = handlers[cmd.verb];
  if (!h) {
    s.reply(R.unknownCommand());
    return;
  }
  const err = h.check(s, cmd);
  if (err) {
    s.reply(err);
    return;
  }
  h.run(s, cmd);
}
