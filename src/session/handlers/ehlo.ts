// EHLO/HELO: relay the greeting upstream (as EHLO wherever mailshim needs the upstream's capabilities),
// then show the client the capability list the listener wants it to see.
import net from 'node:net';
import type { CommandHandler } from '../dispatch.js';
import type { Session } from '../session.js';
import type { EhloReply, SmtpReply } from '../../types.js';
import { serializeEhlo, formatCapability } from '../../protocol/capabilities.js';
import { applyRules, withoutKeywords, withCap, setAuth } from '../../rewrite/apply.js';

/**
 * Capabilities the client must never see from the upstream: STARTTLS is mailshim's to offer (the upstream's
 * TLS is driven by mailshim itself); BDAT is refused so CHUNKING/BINARYMIME go; XCLIENT/XFORWARD would let a
 * client impersonate mailshim towards an upstream that trusts it.
 */
const HIDDEN = ['STARTTLS', 'CHUNKING', 'BINARYMIME', 'XCLIENT', 'XFORWARD'];

export const ehlo: CommandHandler = {
  check: () => undefined,
  run(s, cmd) {
    // Lenient towards devices that send a bare "EHLO": the upstream still gets a well-formed name.
    const name = cmd.args.trim().split(/\s+/)[0] || addressLiteral(s.clientAddress);
    const verb = cmd.verb as 'HELO' | 'EHLO';
    s.tx = undefined;
    const fill = s.reserve(true);
    // In passthrough a HELO client gets a transparent HELO upstream: nothing needs the upstream's ESMTP
    // capabilities. Where mailshim does AUTH itself it needs them, so it asks with EHLO whatever the client said.
    if (verb === 'HELO' && s.listener.auth.name === 'passthrough') {
      helo(s, name, fill);
      return;
    }
    s.up.command(`EHLO ${name}`, (r) => {
      if (r.code === 250) {
        s.helo = name;
        s.heloVerb = verb;
        s.needEhlo = false;
        fill(clientView(s, s.up.learnEhlo(r), verb));
        return;
      }
      if (verb === 'HELO' && r.code >= 500) {
        // An upstream without ESMTP: fall back to what the client asked for.
        helo(s, name, fill);
        return;
      }
      fill(r);
    });
  },
};

/** Relay HELO as it is; the upstream's one-line 250 is the client's reply. */
function helo(s: Session, name: string, fill: (r: SmtpReply) => void): void {
  s.up.command(`HELO ${name}`, (h) => {
    if (h.code === 250) {
      s.helo = name;
      s.heloVerb = 'HELO';
      s.needEhlo = false;
    }
    fill(h);
  });
}

function clientView(s: Session, parsed: EhloReply, verb: 'HELO' | 'EHLO'): SmtpReply {
  if (verb === 'HELO') return { code: 250, lines: [parsed.greeting] };
  let caps = withoutKeywords(parsed.caps, HIDDEN);
  const l = s.listener;
  if (l.cfg.tls.mode === 'starttls' && !s.clientIsTls) caps = withCap(caps, 'STARTTLS');
  const own = l.auth.advertised(s.clientIsTls);
  if (own) caps = setAuth(caps, own);
  // RFC 3207 4.2 practice: with requireTls, AUTH is not offered before TLS.
  if (l.cfg.requireTls && !s.clientIsTls) caps = setAuth(caps, null);
  const { caps: rewritten, changes } = applyRules(caps, l.rules);
  if (changes.length > 0 || rewritten !== parsed.caps) {
    s.emit({
      type: 'rewrite',
      sid: s.sid,
      before: parsed.caps.map(formatCapability),
      after: rewritten.map(formatCapability),
      changes,
    });
  }
  return serializeEhlo({ code: 250, greeting: parsed.greeting, caps: rewritten });
}

/** RFC 5321 4.1.3 address literal for a client that gave no name. */
function addressLiteral(address: string): string {
  return net.isIPv6(address) ? `[IPv6:${address}]` : `[${address}]`;
}
