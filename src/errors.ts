/**
 * Typed errors that cross module boundaries: a stable `code` callers can branch on,
 * a message for people, and an optional `cause`.
 */
export type ErrorCode =
  | 'ONWARD_ERR_CONFIG_INVALID'
  | 'ONWARD_ERR_CONFIG_UNREADABLE'
  | 'ONWARD_ERR_SPOOL_LOCKED'
  | 'ONWARD_ERR_SPOOL_UNAVAILABLE'
  | 'ONWARD_ERR_SPOOL_FULL'
  | 'ONWARD_ERR_SPOOL_WRITE'
  | 'ONWARD_ERR_NOT_FOUND'
  | 'ONWARD_ERR_BAD_ID'
  | 'ONWARD_ERR_BAD_ARGS'
  | 'ONWARD_ERR_ADMIN_UNREACHABLE'
  | 'ONWARD_ERR_ADMIN_INSECURE'
  | 'ONWARD_ERR_UNAUTHORIZED'
  | 'ONWARD_ERR_INTERNAL';

/** Every code, for the README's error table and its test. */
export const ERROR_CODES: readonly ErrorCode[] = [
  'ONWARD_ERR_CONFIG_INVALID',
  'ONWARD_ERR_CONFIG_UNREADABLE',
  'ONWARD_ERR_SPOOL_LOCKED',
  'ONWARD_ERR_SPOOL_UNAVAILABLE',
  'ONWARD_ERR_SPOOL_FULL',
  'ONWARD_ERR_SPOOL_WRITE',
  'ONWARD_ERR_NOT_FOUND',
  'ONWARD_ERR_BAD_ID',
  'ONWARD_ERR_BAD_ARGS',
  'ONWARD_ERR_ADMIN_UNREACHABLE',
  'ONWARD_ERR_ADMIN_INSECURE',
  'ONWARD_ERR_UNAUTHORIZED',
  'ONWARD_ERR_INTERNAL',
];

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
