/**
 * Typed errors that cross module boundaries: a stable `code` callers can branch on,
 * a message for people, and an optional `cause`. Every code is listed in README's
 * error table (a test checks it).
 */
export const ERROR_CODES = [
  'ONWARD_ERR_CONFIG_INVALID',
  'ONWARD_ERR_CONFIG_UNREADABLE',
  'ONWARD_ERR_SPOOL_LOCKED',
  'ONWARD_ERR_SPOOL_UNAVAILABLE',
  'ONWARD_ERR_SPOOL_WRITE',
  'ONWARD_ERR_NOT_FOUND',
  'ONWARD_ERR_BAD_ID',
  'ONWARD_ERR_BAD_ARGS',
  'ONWARD_ERR_ADMIN_UNREACHABLE',
  'ONWARD_ERR_UNAUTHORIZED',
  'ONWARD_ERR_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class RelayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
  }
}

export function isRelayError(err: unknown, code?: ErrorCode): err is RelayError {
  return err instanceof RelayError && (code === undefined || err.code === code);
}
