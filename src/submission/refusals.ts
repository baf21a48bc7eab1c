/**
 * The submission API's answers that are errors (SPEC 10): `{ error: { code, message, field? } }`
 * with the code's status and, where the client should come back later, `Retry-After`.
 */
import type { AcceptOutcome } from '../accept/index.js';
import type { ErrorCode } from '../errors.js';

/** Seconds a client is told to wait after a 503. */
const RETRY_AFTER_S = 30;
/** An answer with an error body: `{ error: { code, message, field? } }`. */
export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

export const refuse = {
  badMessage: (field: string, message: string) => new HttpRefusal(400, 'ONWARD_ERR_BAD_MESSAGE', message, field),
  tooLarge: (limit: number) => new HttpRefusal(413, 'ONWARD_ERR_TOO_LARGE', `the message is over the limit of ${limit} bytes`, 'body', { connection: 'close' }),
  spoolFull: () => new HttpRefusal(503, 'ONWARD_ERR_SPOOL_FULL', 'insufficient system storage, try again later', undefined, { 'retry-after': String(RETRY_AFTER_S) }),
  spoolWrite: (message = 'temporary local problem, try again later') =>
    new HttpRefusal(503, 'ONWARD_ERR_SPOOL_WRITE', message, undefined, { 'retry-after': String(RETRY_AFTER_S) }),
  unauthorized: () => new HttpRefusal(401, 'ONWARD_ERR_UNAUTHORIZED', 'a valid Authorization: Bearer <key> is required', undefined, { 'www-authenticate': 'Bearer' }),
  notFound: (message = 'no such resource') => new HttpRefusal(404, 'ONWARD_ERR_NOT_FOUND', message),
  method: (allow: string) => new HttpRefusal(405, 'ONWARD_ERR_METHOD_NOT_ALLOWED', `allowed: ${allow}`, undefined, { allow }),
};

export function refusalOf(outcome: Exclude<AcceptOutcome, { refused?: undefined }>): HttpRefusal {
  switch (outcome.refused) {
    case 'bare-line-ending':
      return refuse.badMessage('body', outcome.found === 'CR' ? 'the message contains a bare CR' : `the message contains a bare ${outcome.found}`);
    case 'capacity':
      return outcome.reason === 'full' ? refuse.spoolFull() : refuse.spoolWrite('queue storage unavailable, try again later');
    case 'no-route':
      return new HttpRefusal(400, 'ONWARD_ERR_NO_ROUTE', `no route for recipient ${outcome.recipient}`, 'to');
    case 'idempotency-mismatch':
      return new HttpRefusal(
        422,
        'ONWARD_ERR_IDEMPOTENCY_MISMATCH',
        `this Idempotency-Key was used for another request (message ${outcome.queueId})`,
        'Idempotency-Key',
      );
  }
}
