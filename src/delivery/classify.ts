/**
 * The one place where downstream answers become outcomes (SPEC, the table at the top).
 * Pure functions: no I/O, no clock.
 */
import type { Outcome, Reply, ReplyKind } from './types.js';

/** HTTP status → outcome: 2xx OK; 4xx FAIL except 408/425/429; 5xx, 408, 425, 429 and anything else ERROR. */
export function classifyHttpStatus(status: number): Outcome {
  if (status >= 200 && status <= 299) return 'ok';
  if (status >= 400 && status <= 499) {
    return status === 408 || status === 425 || status === 429 ? 'error' : 'fail';
  }
  return 'error';
}

/** SMTP reply code → outcome: 2xx OK, 5xx FAIL, everything else (4xx, 3xx where 2xx was due, garbage) ERROR. */
export function classifySmtpCode(code: number): Outcome {
  if (code >= 200 && code <= 299) return 'ok';
  if (code >= 500 && code <= 599) return 'fail';
  return 'error';
}

/** HTTP statuses that say "too much, slow down" rather than "broken". */
export function isContentionStatus(status: number): boolean {
  return status === 429 || status === 503;
}

const REPLY_LINE = /^([2-5])\d\d(?:[ -]|$)/;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

/**
 * The RFC 3463 enhanced status code of an SMTP reply line (`550 5.1.1 <x>: user unknown` → `5.1.1`),
 * or of bare reply text (`5.1.1 no such user`). Null when absent, or when its class contradicts the
 * reply code (`250 5.0.0 ...`), as Postfix ignores those too.
 */
export function parseEnhancedStatus(text: string): string | null {
  let rest = text.trimStart();
  const line = REPLY_LINE.exec(rest);
  if (line) rest = rest.slice(4).trimStart();
  const enhanced = ENHANCED.exec(rest);
  if (!enhanced) return null;
  if (line && line[1] !== enhanced[1]) return null;
  return `${enhanced[1] ?? ''}.${enhanced[2] ?? ''}.${enhanced[3] ?? ''}`;
}

/** The reply code at the start of an SMTP reply line, or null. */
export function parseSmtpCode(text: string): number | null {
  const line = REPLY_LINE.exec(text.trimStart());
  return line ? Number(text.trimStart().slice(0, 3)) : null;
}

/** A Reply for an SMTP reply line as the downstream sent it (multi-line replies joined into one line). */
export function smtpReply(text: string): Reply {
  const line = oneLine(text);
  return { kind: 'smtp', code: parseSmtpCode(line), enhancedStatus: parseEnhancedStatus(line), text: line };
}

/** Network error codes that mean the downstream is overloaded or unreachable, not that the message is bad. */
const CONTENTION_CODES = new Set([
  'ECONNREFUSED',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** True when a failure is a timeout or a refused connection: a contention signal (SPEC section 4). */
export function isContentionError(err: unknown): boolean {
  return isTimeoutError(err) || errorChain(err).some((e) => {
    const code = stringProp(e, 'code');
    return (code !== undefined && CONTENTION_CODES.has(code)) || /\bECONNREFUSED\b/.test(messageOf(e));
  });
}

/** True for an AbortSignal.timeout() abort, undici's own timeouts and nodemailer's ETIMEDOUT. */
export function isTimeoutError(err: unknown): boolean {
  return errorChain(err).some((e) => {
    const code = stringProp(e, 'code');
    return (
      stringProp(e, 'name') === 'TimeoutError' ||
      code === 'ETIMEDOUT' ||
      code === 'UND_ERR_CONNECT_TIMEOUT' ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT'
    );
  });
}

/**
 * A Reply for a network, TLS or timeout failure: `code: null`, outcome ERROR by definition.
 * The text is the innermost useful message of the error's cause chain (`connect ECONNREFUSED
 * 127.0.0.1:1234`, not a wrapper's generic words), or `timeout after <timeoutMs> ms` for timeouts.
 */
export function errorReply(kind: ReplyKind, err: unknown, timeoutMs?: number): Reply {
  let text = describeError(err);
  if (timeoutMs !== undefined && isTimeoutError(err)) {
    const detail = genericTimeoutText(text) ? '' : ` (${text})`;
    text = `timeout after ${String(timeoutMs)} ms${detail}`;
  }
  return { kind, code: null, enhancedStatus: null, text: oneLine(text) };
}

/** The most specific message in an error's cause chain, for people and logs. */
export function describeError(err: unknown): string {
  const chain = errorChain(err);
  for (let i = chain.length - 1; i >= 0; i--) {
    const message = messageOf(chain[i]);
    if (message !== '') return message;
  }
  return String(err);
}

function genericTimeoutText(text: string): boolean {
  return text === '' || /operation was aborted due to timeout|^timeout$/i.test(text);
}

/** The error, its `cause`s and the first of an AggregateError's `errors`, outermost first. */
function errorChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = err;
  while (current !== undefined && current !== null && chain.length < 8 && !chain.includes(current)) {
    chain.push(current);
    if (typeof current !== 'object') break;
    const errors: unknown = (current as { errors?: unknown }).errors;
    const cause: unknown = (current as { cause?: unknown }).cause;
    current = cause ?? (Array.isArray(errors) ? (errors[0] as unknown) : undefined);
  }
  return chain;
}

function messageOf(e: unknown): string {
  const message = stringProp(e, 'message');
  if (message !== undefined && message !== '') return message;
  return stringProp(e, 'code') ?? '';
}

function stringProp(e: unknown, key: 'code' | 'name' | 'message'): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const value: unknown = (e as Record<string, unknown>)[key];
  return typeof value === 'string' ? value : undefined;
}

function oneLine(text: string): string {
  return text.replace(/\r?\n/g, ' ').trim();
}
