// Redaction helpers. The session masks secrets where it produces a line (OpenSMTPD's habit); these
// helpers are the second line of defence in the capture writer, and the shared vocabulary auth modes use
// to mark a line that carries a username (shown unless capture.redactUsernames) rather than a secret.
import type { Leg } from '../types.js';

export const MASK = '********';

/** `note` on a protocol event whose line is a SASL username (LOGIN's first response), not a secret. */
export const USERNAME_NOTE = 'sasl-username';

/** `AUTH <mech> <initial-response>` -> `AUTH <mech> ********`; any other line unchanged. */
export function maskAuthCommand(line: string): string {
  const m = /^(AUTH[ \t]+[^ \t]+)[ \t]+\S/i.exec(line);
  if (!m) return line;
  return line.slice(m[1].length).trim() === MASK ? line : `${m[1]} ${MASK}`;
}

/** A SASL continuation line: `*` (cancel) is safe to show, everything else becomes the mask. */
export function maskSaslResponse(line: string): string {
  return line === '*' ? '*' : MASK;
}

/**
 * Per-session state for the defence-in-depth scrub: after a `334` towards one side, that side's next line
 * is a SASL response and is masked, whatever the emitter did. Lines the emitter marked as a username are
 * kept (or masked when `redactUsernames`).
 */
export class SaslScrubber {
  /** The leg whose next line answers a 334. */
  private awaiting = new Set<Leg>();

  constructor(private readonly redactUsernames: boolean) {}

  scrub(leg: Leg, line: string, note?: string): string {
    switch (leg) {
      case 'upstream->proxy':
      case 'proxy->client': {
        const answering: Leg = leg === 'upstream->proxy' ? 'proxy->upstream' : 'client->proxy';
        if (/^334[ -]/.test(line) || line === '334') this.awaiting.add(answering);
        else if (/^\d{3} /.test(line)) this.awaiting.delete(answering);
        return line;
      }
      case 'client->proxy':
      case 'proxy->upstream': {
        if (this.awaiting.delete(leg)) {
          if (note === USERNAME_NOTE && !this.redactUsernames) return line;
          return maskSaslResponse(line);
        }
        return maskAuthCommand(line);
      }
    }
  }
}

/** The username as a transcript shows it. */
export function shownUser(user: string | undefined, redactUsernames: boolean): string | undefined {
  if (user === undefined) return undefined;
  return redactUsernames ? MASK : user;
}

/** `text` with every occurrence of `user` masked: a second line of defence for free-text reasons. */
export function withoutUser(text: string | undefined, user: string | undefined): string | undefined {
  if (text === undefined || !user) return text;
  return text.split(user).join(MASK);
}
