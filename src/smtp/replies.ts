/**
 * An SMTP reply that a handler answers with: `code` goes on the wire, `text` starts with
 * the enhanced status code (`4.3.1 Insufficient system storage`).
 */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  constructor(code: number, text: string) {
    super(text);
    this.name = 'SmtpReplyError';
    this.responseCode = code;
  }
}

/** The replies of SPEC section 3, in one place. */
export const replies = {
  queued: (id: string): string => `2.0.0 Ok: queued as ${id}`,
  alreadyQueued: (id: string): string => `2.0.0 Ok: already queued as ${id}`,
  insufficientStorage: (): SmtpReplyError => new SmtpReplyError(452, '4.3.1 Insufficient system storage'),
  spoolWriteFailed: (): SmtpReplyError => new SmtpReplyError(451, '4.3.0 Temporary local problem, please try again later'),
  /** The spool's store does not answer (SPEC 9): said at once, before the client sends the data. */
  spoolUnavailable: (): SmtpReplyError => new SmtpReplyError(451, '4.3.0 Queue storage unavailable, please try again later'),
  relayDenied: (): SmtpReplyError => new SmtpReplyError(550, '5.7.1 Relaying denied'),
  authRequired: (): SmtpReplyError => new SmtpReplyError(530, '5.7.0 Authentication required'),
  authFailed: (): SmtpReplyError => new SmtpReplyError(535, '5.7.8 Authentication credentials invalid'),
  tooBig: (limit: number): SmtpReplyError => new SmtpReplyError(552, `5.3.4 Message size exceeds fixed limit of ${limit} bytes`),
  tooManyRecipients: (): SmtpReplyError => new SmtpReplyError(452, '4.5.3 Too many recipients'),
  badRecipientSyntax: (): SmtpReplyError => new SmtpReplyError(501, '5.1.3 Bad recipient address syntax'),
  badSenderSyntax: (): SmtpReplyError => new SmtpReplyError(501, '5.1.7 Bad sender address syntax'),
  authRateLimited: (): SmtpReplyError => new SmtpReplyError(454, '4.7.0 Too many failed authentication attempts, try again later'),
  shuttingDown: (): SmtpReplyError => new SmtpReplyError(421, '4.3.2 Service shutting down'),
  tooManyConnections: (): SmtpReplyError => new SmtpReplyError(421, '4.7.0 Too many connections from your address, try again later'),
  bareLineEnding: (what: 'LF' | 'CR' | 'NUL'): SmtpReplyError =>
    what === 'NUL'
      ? new SmtpReplyError(550, '5.6.0 Message contains a NUL byte')
      : new SmtpReplyError(550, `5.6.0 Message contains a bare ${what}; lines must end with CRLF`),
} as const;
