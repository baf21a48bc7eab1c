/**
 * Per-session limits that smtp-server does not enforce itself: commands per session,
 * error replies per session, and a total session lifetime. It wraps the connection's
 * `send`, which sees exactly one reply per command, so counting replies counts commands.
 */
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { LimitsConfig } from '../config/types.js';

export interface GuardLimits {
  readonly maxCommands: number;
  readonly maxErrors: number;
  readonly sessionTimeoutMs: number;
}

export type GuardViolation = 'too-many-commands' | 'too-many-errors' | 'session-timeout';

export function guardLimits(limits: LimitsConfig): GuardLimits {
  return { maxCommands: limits.maxCommands, maxErrors: limits.maxErrors, sessionTimeoutMs: limits.sessionTimeoutMs };
}

/** Installs the guard on one connection; returns the function that removes its timer. */
export function guardSession(connection: SMTPConnection, limits: GuardLimits, onViolation: (v: GuardViolation) => void): () => void {
  const send = connection.send.bind(connection);
  let replies = 0;
  let errors = 0;
  let closed = false;
  const shut = (violation: GuardViolation, text: string): void => {
    if (closed) return;
    closed = true;
    onViolation(violation);
    send(421, text);
    connection.close();
  };
  connection.send = (code, data, context) => {
    send(code, data, context);
    if (closed) return;
    replies += 1;
    if (code >= 400 && code !== 421) errors += 1;
    if (errors >= limits.maxErrors) shut('too-many-errors', '4.7.0 Too many errors, closing connection');
    else if (replies > limits.maxCommands) shut('too-many-commands', '4.7.0 Too many commands in one session, closing connection');
  };
  const timer = setTimeout(() => shut('session-timeout', '4.4.2 Session time limit exceeded, closing connection'), limits.sessionTimeoutMs);
  timer.unref();
  return () => clearTimeout(timer);
}
