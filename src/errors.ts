/**
 * Typed errors that cross module boundaries: a stable `code` callers can branch on,
 * a message for people, and an optional `cause`. Every code is listed in the error table
 * of docs/operations.md with its HTTP status and CLI exit (a test checks it).
 */

/** CLI exit codes of SPEC section 1. */
export const EXIT = { ok: 0, user: 1, unavailable: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What a code means outside the process: the admin API's HTTP status and the CLI's exit code. */
export interface ErrorCodeInfo {
  readonly status: number;
  readonly exit: ExitCode;
}

/**
 * The one table of error codes (as fastify's `lib/errors.js`): adding a code is one line here
 * and one row in the docs table.
 */
export const ERROR_CODES = {
  ONWARD_ERR_CONFIG_INVALID: { status: 500, exit: EXIT.user },
  ONWARD_ERR_CONFIG_UNREADABLE: { status: 500, exit: EXIT.user },
  ONWARD_ERR_SPOOL_LOCKED: { status: 503, exit: EXIT.unavailable },
  ONWARD_ERR_SPOOL_UNAVAILABLE: { status: 503, exit: EXIT.unavailable },
  ONWARD_ERR_SPOOL_WRITE: { status: 503, exit: EXIT.unavailable },
  ONWARD_ERR_SPOOL_REFUSED: { status: 500, exit: EXIT.user },
  ONWARD_ERR_LEASE_LOST: { status: 409, exit: EXIT.unavailable },
  ONWARD_ERR_NOT_FOUND: { status: 404, exit: EXIT.user },
  ONWARD_ERR_BAD_ID: { status: 400, exit: EXIT.user },
  ONWARD_ERR_BAD_ARGS: { status: 400, exit: EXIT.user },
  ONWARD_ERR_ADMIN_UNREACHABLE: { status: 502, exit: EXIT.unavailable },
  ONWARD_ERR_UNAUTHORIZED: { status: 401, exit: EXIT.user },
  ONWARD_ERR_DEPENDENCY_MISMATCH: { status: 500, exit: EXIT.user },
  ONWARD_ERR_INTERNAL: { status: 500, exit: EXIT.unavailable },
  // HTTP submission (SPEC 10)
  ONWARD_ERR_BAD_MESSAGE: { status: 400, exit: EXIT.user },
  ONWARD_ERR_NO_ROUTE: { status: 400, exit: EXIT.user },
  ONWARD_ERR_TOO_LARGE: { status: 413, exit: EXIT.user },
  ONWARD_ERR_UNSUPPORTED_TYPE: { status: 415, exit: EXIT.user },
  ONWARD_ERR_IDEMPOTENCY_MISMATCH: { status: 422, exit: EXIT.user },
  ONWARD_ERR_SPOOL_FULL: { status: 503, exit: EXIT.unavailable },
  ONWARD_ERR_METHOD_NOT_ALLOWED: { status: 405, exit: EXIT.user },
} as const satisfies Record<`ONWARD_ERR_${string}`, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export class RelayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
  }

  /** The admin API's HTTP status for this error. */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  /** The CLI's exit code for this error. */
  get exit(): ExitCode {
    return ERROR_CODES[this.code].exit;
  }
}

export function isRelayError(err: unknown, code?: ErrorCode): err is RelayError {
  return err instanceof RelayError && (code === undefined || err.code === code);
}
