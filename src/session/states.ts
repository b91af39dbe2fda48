// The session's named states and the transitions allowed between them.

export type SessionState =
  /** Dialling the upstream; the client has not been greeted. */
  | 'connecting'
  /** Reading commands (pipelined groups included). */
  | 'command'
  /** Inside an AUTH exchange: client lines are SASL responses, not commands. */
  | 'auth'
  /** Streaming a message body to the upstream. */
  | 'data'
  /** Client TLS handshake after STARTTLS. */
  | 'tls'
  /** Last reply sent; waiting for the socket to close. */
  | 'closing'
  | 'closed';

const allowed: Record<SessionState, readonly SessionState[]> = {
  connecting: ['command', 'closing', 'closed'],
  command: ['auth', 'data', 'tls', 'closing', 'closed'],
  auth: ['command', 'closing', 'closed'],
  data: ['command', 'closing', 'closed'],
  tls: ['command', 'closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

export function canEnter(from: SessionState, to: SessionState): boolean {
  return allowed[from].includes(to);
}
