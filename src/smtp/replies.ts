import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

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
  bareLineEnding: (what: 'LF' | 'CR'): SmtpReplyError =>
    new SmtpReplyError(550, `5.6.0 Message contains a bare ${what}; lines must end with CRLF`),
} as const;

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

/*
 * smtp-server prefixes every reply with an enhanced status code it derives from the
 * reply code alone (452 -> 4.2.2, 550 -> 5.1.1, DATA 250 -> 2.6.0), which contradicts the
 * codes SPEC section 3 fixes. Our own reply texts carry their enhanced code, so for a
 * text that already starts with one the automatic prefix is switched off; smtp-server's
 * own replies keep theirs. Installed once, when this module is loaded.
 */
// eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with .call below
const originalSend = SMTPConnection.prototype.send;
SMTPConnection.prototype.send = function send(this: SMTPConnection, code, data, context) {
  const own = typeof data === 'string' && ENHANCED_PREFIX.test(data);
  originalSend.call(this, code, data, own ? false : context);
};
