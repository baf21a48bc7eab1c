import { describe, expect, it } from '@jest/globals';
import { parseRetryAfter } from '../../../src/delivery/http.js';
import { decodeHeaderValue } from '../../../src/delivery/http-payload.js';

describe('decodeHeaderValue', () => {
  it('leaves plain text alone', () => {
    expect(decodeHeaderValue('hello =? world')).toBe('hello =? world');
  });
  it('decodes Q and B words in any letter case', () => {
    expect(decodeHeaderValue('=?iso-8859-1?q?caf=E9_cr=E8me?=')).toBe('café crème');
    expect(decodeHeaderValue('=?UTF-8?b?w6k=?=')).toBe('é');
  });
  it('drops the whitespace between adjacent encoded words but keeps it around plain text', () => {
    expect(decodeHeaderValue('Re: =?UTF-8?Q?a?= =?UTF-8?Q?b?= c')).toBe('Re: ab c');
  });
  it('joins a character split across two words', () => {
    expect(decodeHeaderValue('=?UTF-8?B?8J+R?= =?UTF-8?B?iw==?=')).toBe('👋');
  });
  it('keeps a word in an unknown charset as it was sent', () => {
    expect(decodeHeaderValue('x =?x-unknown?Q?abc?= y')).toBe('x =?x-unknown?Q?abc?= y');
  });
  it('ignores an RFC 2231 language suffix', () => {
    expect(decodeHeaderValue('=?UTF-8*en?Q?hi?=')).toBe('hi');
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-01-02T03:04:05.000Z');
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
  });
  it('reads an HTTP-date relative to now', () => {
    expect(parseRetryAfter('Tue, 02 Jan 2024 03:05:05 GMT', now)).toBe(60_000);
  });
  it('treats a date in the past as now', () => {
    expect(parseRetryAfter('Tue, 02 Jan 2024 03:00:00 GMT', now)).toBe(0);
  });
  it('returns null when absent or unreadable', () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-5', now)).toBeNull();
  });
});
