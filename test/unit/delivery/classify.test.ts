import { describe, expect, it } from '@jest/globals';
import {
  classifyHttpStatus,
  classifySmtpCode,
  errorReply,
  isContentionError,
  isContentionStatus,
  parseEnhancedStatus,
  smtpReply,
} from '../../../src/delivery/classify.js';
import type { Outcome } from '../../../src/delivery/types.js';

describe('classifyHttpStatus', () => {
  const table: Array<[number, Outcome, string]> = [
    [200, 'ok', 'accepts 200 OK'],
    [201, 'ok', 'accepts 201 Created'],
    [202, 'ok', 'accepts 202 Accepted'],
    [204, 'ok', 'accepts 204 No Content'],
    [400, 'fail', 'fails a 400 Bad Request for good'],
    [401, 'fail', 'fails a 401 Unauthorized for good'],
    [403, 'fail', 'fails a 403 Forbidden for good'],
    [404, 'fail', 'fails a 404 Not Found for good'],
    [410, 'fail', 'fails a 410 Gone for good'],
    [413, 'fail', 'fails a 413 Content Too Large for good'],
    [422, 'fail', 'fails a 422 Unprocessable Content for good'],
    [408, 'error', 'retries a 408 Request Timeout'],
    [425, 'error', 'retries a 425 Too Early'],
    [429, 'error', 'retries a 429 Too Many Requests'],
    [500, 'error', 'retries a 500 Internal Server Error'],
    [502, 'error', 'retries a 502 Bad Gateway'],
    [503, 'error', 'retries a 503 Service Unavailable'],
    [504, 'error', 'retries a 504 Gateway Timeout'],
    [301, 'error', 'retries a 301 redirect, since the POST was not taken'],
    [100, 'error', 'retries a stray 1xx'],
    [600, 'error', 'retries a status outside HTTP'],
  ];
  it.each(table)('given %i it answers %s (%s)', (status, outcome) => {
    expect(classifyHttpStatus(status)).toBe(outcome);
  });
});

describe('classifySmtpCode', () => {
  const table: Array<[string, Outcome]> = [
    ['250 2.0.0 Ok: queued as 4XkT2J1bQzz1', 'ok'],
    ['250 2.6.0 <abc@example.com> [InternalId=123] Queued mail for delivery', 'ok'],
    ['550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient table', 'fail'],
    ['554 5.7.1 <x@example.com>: Relay access denied', 'fail'],
    ['552 5.3.4 Message size exceeds fixed limit', 'fail'],
    ['421 4.7.0 mx.example.com Error: too many connections from 192.0.2.1', 'error'],
    ['450 4.2.0 <a@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/', 'error'],
    ['451 4.3.0 Error: queue file write error', 'error'],
    ['452 4.5.3 Error: too many recipients', 'error'],
    ['354 End data with <CR><LF>.<CR><LF>', 'error'],
  ];
  it.each(table)('classifies the reply "%s" as %s', (line, outcome) => {
    const code = Number(line.slice(0, 3));
    expect(classifySmtpCode(code)).toBe(outcome);
  });
});

describe('parseEnhancedStatus', () => {
  it('reads the enhanced code after the reply code', () => {
    expect(parseEnhancedStatus('550 5.1.1 <x@example.com>: user unknown')).toBe('5.1.1');
  });
  it('reads it from a continuation line of a multi-line reply', () => {
    expect(parseEnhancedStatus('550-5.7.1 Unauthenticated email is not accepted')).toBe('5.7.1');
  });
  it('reads it from reply text without a reply code', () => {
    expect(parseEnhancedStatus('4.2.2 mailbox full')).toBe('4.2.2');
  });
  it('accepts three-digit subject and detail parts', () => {
    expect(parseEnhancedStatus('554 5.7.100 policy')).toBe('5.7.100');
  });
  it('returns null when the server sends none', () => {
    expect(parseEnhancedStatus('250 Ok')).toBeNull();
    expect(parseEnhancedStatus('550 Mailbox unavailable')).toBeNull();
  });
  it('ignores an enhanced code whose class contradicts the reply code', () => {
    expect(parseEnhancedStatus('250 5.0.0 confused server')).toBeNull();
  });
  it('does not mistake a version number in the text for a status', () => {
    expect(parseEnhancedStatus('220 mx.example.com ESMTP Postfix 3.7.11')).toBeNull();
  });
});

describe('isContentionStatus', () => {
  it('treats 429 and 503 as contention and nothing else', () => {
    expect([429, 503].every(isContentionStatus)).toBe(true);
    expect([200, 400, 408, 500, 502, 504].some(isContentionStatus)).toBe(false);
  });
});

describe('smtpReply', () => {
  it('keeps the line and splits out code and enhanced status', () => {
    expect(smtpReply('550 5.1.1 <x@example.com>: user unknown')).toEqual({
      kind: 'smtp',
      code: 550,
      enhancedStatus: '5.1.1',
      text: '550 5.1.1 <x@example.com>: user unknown',
    });
  });
  it('joins a multi-line reply into one line', () => {
    expect(smtpReply('250-first\n250 second').text).toBe('250-first 250 second');
  });
});

describe('errorReply', () => {
  it('reports a refused connection with the socket error text', () => {
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1234'), { code: 'ECONNREFUSED' });
    expect(errorReply('smtp', err)).toEqual({
      kind: 'smtp',
      code: null,
      enhancedStatus: null,
      text: 'connect ECONNREFUSED 127.0.0.1:1234',
    });
    expect(isContentionError(err)).toBe(true);
  });
  it("looks through undici's 'fetch failed' to the cause", () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    const err = new TypeError('fetch failed', { cause });
    expect(errorReply('http', err).text).toBe('connect ECONNREFUSED 127.0.0.1:9');
    expect(isContentionError(err)).toBe(true);
  });
  it('names an AbortSignal timeout with the configured limit', () => {
    const err = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    expect(errorReply('http', err, 30000).text).toBe('timeout after 30000 ms');
    expect(isContentionError(err)).toBe(true);
  });
  it("keeps nodemailer's own timeout reason next to the limit", () => {
    const err = Object.assign(new Error('Greeting never received'), { code: 'ETIMEDOUT' });
    expect(errorReply('smtp', err, 500).text).toBe('timeout after 500 ms (Greeting never received)');
  });
  it('does not call a TLS failure contention', () => {
    const err = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(errorReply('smtp', err).text).toBe('self-signed certificate');
    expect(isContentionError(err)).toBe(false);
  });
  it('falls back to the error code when the message is empty', () => {
    const err = Object.assign(new AggregateError([], ''), { code: 'ECONNREFUSED' });
    expect(errorReply('http', err).text).toBe('ECONNREFUSED');
  });
});
