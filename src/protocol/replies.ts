// The replies mailshim writes itself, each with its RFC 5321 code and RFC 3463 enhanced status code.
// Everything else the client sees is the upstream's own reply, relayed. Each entry is a function so every
// caller gets a fresh value. 421 replies start with mailshim's hostname (RFC 5321 4.2:
// "421 <domain> Service not available, closing transmission channel").
import type { SmtpReply } from '../types.js';

const r = (code: number, text: string): SmtpReply => ({ code, lines: [text] });

/**
 * An error that carries the reply to send (go-smtp's SMTPError, maddy's exterrors): `reply` is what the
 * client may read; `reason` (also the Error message) is for the log and may hold detail the client must not.
 */
export class SmtpError extends Error {
  override readonly name = 'SmtpError';
  constructor(
    readonly reply: SmtpReply,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
  }
}

// --- greeting, HELO/EHLO, QUIT ---------------------------------------------------------------------
/** 220 greeting when mailshim answers before the upstream's greeting is relayed or replaced. */
export const serviceReady = (hostname: string, text = 'ESMTP ready'): SmtpReply => r(220, `${hostname} ${text}`);
/** 250 to HELO (and the first line of mailshim's own EHLO reply). */
export const hello = (hostname: string): SmtpReply => r(250, hostname);
export const ok = (text = 'OK'): SmtpReply => r(250, `2.0.0 ${text}`);
export const bye = (): SmtpReply => r(221, '2.0.0 Bye');

// --- command syntax and sequence ---------------------------------------------------------------------
export const lineTooLong = (): SmtpReply => r(500, '5.5.2 Line too long');
/** A line ending other than CRLF (RFC 5321 2.3.8); the SMTP smuggling defence. */
export const bareLineEnding = (): SmtpReply => r(500, '5.5.2 Bare CR or LF not allowed; lines must end with CRLF');
export const unknownCommand = (): SmtpReply => r(500, '5.5.1 Command unrecognized');
export const syntax = (detail = 'Syntax error in parameters or arguments'): SmtpReply => r(501, `5.5.4 ${detail}`);
export const notImplemented = (verb?: string): SmtpReply =>
  r(502, `5.5.1 ${verb ? `${verb} ` : ''}Command not implemented`);
export const badSequence = (detail = 'Bad sequence of commands'): SmtpReply => r(503, `5.5.1 ${detail}`);
/**
 * BDAT when CHUNKING is not offered (mailshim streams DATA and removes CHUNKING from EHLO). RFC 3030
 * forbids BDAT unless CHUNKING was advertised, so it is out of sequence: 503. The chunk's bytes are still
 * read and discarded, so they can never be taken for commands.
 */
export const bdatRefused = (): SmtpReply => r(503, '5.5.1 BDAT not supported, use DATA');
/** A client that talked before the greeting when the listener says `earlyTalker: reject`. */
export const earlyTalker = (hostname: string): SmtpReply =>
  r(554, `5.5.0 ${hostname} Protocol error: command sent before the greeting`);
export const tooManyErrors = (hostname: string): SmtpReply =>
  r(421, `4.7.0 ${hostname} Too many errors, closing connection`);

// --- upstream and connection state -------------------------------------------------------------------
export const upstreamUnavailable = (hostname: string): SmtpReply =>
  r(421, `4.4.1 ${hostname} Upstream server unavailable, closing connection`);
/** The upstream went away during a transaction; the session may go on (a new MAIL gets a new upstream). */
export const upstreamLost = (): SmtpReply => r(451, '4.4.2 Upstream connection lost, message not accepted');
export const upstreamLostClosing = (hostname: string): SmtpReply =>
  r(421, `4.4.2 ${hostname} Upstream connection lost, closing connection`);
/** The upstream's STARTTLS or certificate failed: fail closed, nothing is sent in the clear. */
export const upstreamTlsFailed = (hostname: string): SmtpReply =>
  r(421, `4.7.0 ${hostname} TLS with the upstream server failed, closing connection`);
export const timeout = (hostname: string): SmtpReply => r(421, `4.4.2 ${hostname} Error: timeout exceeded`);
export const tooMany = (hostname: string): SmtpReply =>
  r(421, `4.7.0 ${hostname} Too many connections, try again later`);
export const clientNotAllowed = (): SmtpReply => r(554, '5.7.1 Access denied');
export const shuttingDown = (hostname: string): SmtpReply =>
  r(421, `4.3.2 ${hostname} Service shutting down, closing connection`);

// --- STARTTLS (RFC 3207) ----------------------------------------------------------------------------
export const tlsReady = (): SmtpReply => r(220, '2.0.0 Ready to start TLS');
export const tlsNotAvailable = (): SmtpReply => r(454, '4.7.0 TLS not available due to temporary reason');
export const tlsAlreadyActive = (): SmtpReply => r(503, '5.5.1 TLS already active');
export const mustStartTls = (): SmtpReply => r(530, '5.7.0 Must issue a STARTTLS command first');

// --- AUTH (RFC 4954) --------------------------------------------------------------------------------
/** 334 with a base64 challenge; an empty challenge is `334 ` (the space is required). */
export const authChallenge = (base64: string): SmtpReply => r(334, base64);
export const authSuccess = (): SmtpReply => r(235, '2.7.0 Authentication successful');
export const authRequired = (): SmtpReply => r(530, '5.7.0 Authentication required');
export const authCancelled = (): SmtpReply => r(501, '5.7.0 Authentication cancelled');
export const authMalformed = (): SmtpReply => r(501, '5.5.2 Cannot Base64-decode client response');
export const authLineTooLong = (): SmtpReply => r(500, '5.5.6 Authentication exchange line is too long');
export const authUnknownMech = (): SmtpReply => r(504, '5.5.4 Unrecognized authentication type');
export const authAlready = (): SmtpReply => r(503, '5.5.1 Already authenticated');
export const authNotAvailable = (): SmtpReply => r(503, '5.5.1 AUTH not available');
export const authTooWeak = (): SmtpReply => r(534, '5.7.9 Authentication mechanism is too weak');
export const authFailed = (): SmtpReply => r(535, '5.7.8 Authentication credentials invalid');
export const encryptionRequired = (): SmtpReply =>
  r(538, '5.7.11 Encryption required for requested authentication mechanism');
/** Brute-force lockout (auth.maxFailures within auth.failureWindow): the connection closes after it. */
export const authLockedOut = (hostname: string): SmtpReply =>
  r(421, `4.7.0 ${hostname} Too many failed authentication attempts, closing connection`);
export const authTempFail = (): SmtpReply => r(454, '4.7.0 Temporary authentication failure');
