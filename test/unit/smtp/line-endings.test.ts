import { describe, expect, it } from '@jest/globals';
import { checkLineEndings } from '../../../src/smtp/line-endings.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('line-ending check (SMTP smuggling defence)', () => {
  it.each([
    ['an empty body', ''],
    ['CRLF lines', 'Subject: x\r\n\r\nline\r\n'],
    ['a dot line', 'a\r\n.\r\nb\r\n'],
    ['no line break at all', 'just text'],
  ])('passes %s unchanged under both policies', (_name, text) => {
    for (const policy of ['reject', 'normalize'] as const) {
      const verdict = checkLineEndings(b(text), policy);
      expect(verdict.ok).toBe(true);
      if (verdict.ok) expect(verdict.body.toString('latin1')).toBe(text);
    }
  });

  it.each([
    ['a bare LF inside a line', 'a\nb\r\n'],
    ['a bare LF at the start', '\nb\r\n'],
    ['a bare LF at the end', 'a\r\nb\n'],
    ['<LF>.<LF>', 'a\n.\nMAIL FROM:<x@y>\r\n'],
    ['<CR><LF>.<LF>', 'a\r\n.\nMAIL FROM:<x@y>\r\n'],
    ['<LF>.<CR><LF>', 'a\n.\r\nMAIL FROM:<x@y>\r\n'],
  ])('refuses %s as a bare LF under reject', (_name, text) => {
    expect(checkLineEndings(b(text), 'reject')).toEqual({ ok: false, found: 'LF' });
  });

  it.each([
    ['a bare CR inside a line', 'a\rb\r\n'],
    ['a bare CR at the end', 'a\r\nb\r'],
    ['<CR>.<CR>', 'a\r.\rMAIL FROM:<x@y>\r\n'],
    ['<LF>.<CR>', 'a\n.\rMAIL FROM:<x@y>\r\n'],
    ['CR CR LF', 'a\r\r\nb\r\n'],
    ['LF CR', 'a\n\rb'],
  ])('refuses %s as a bare CR under both policies', (_name, text) => {
    expect(checkLineEndings(b(text), 'reject')).toEqual({ ok: false, found: 'CR' });
    expect(checkLineEndings(b(text), 'normalize')).toEqual({ ok: false, found: 'CR' });
  });

  it.each([
    ['a\nb\r\n', 'a\r\nb\r\n'],
    ['\nb', '\r\nb'],
    ['a\n.\nMAIL FROM:<x@y>\r\n', 'a\r\n.\r\nMAIL FROM:<x@y>\r\n'],
    ['a\r\n.\nb\n\n', 'a\r\n.\r\nb\r\n\r\n'],
  ])('turns every bare LF into CRLF under normalize: %j', (input, expected) => {
    const verdict = checkLineEndings(b(input), 'normalize');
    expect(verdict.ok && verdict.body.toString('latin1')).toBe(expected);
    // Normalising twice changes nothing more.
    const again = verdict.ok ? checkLineEndings(verdict.body, 'normalize') : null;
    expect(again?.ok && again.body.toString('latin1')).toBe(expected);
  });

  it('keeps 8-bit bytes intact while normalising', () => {
    const input = Buffer.from([0xff, 0x0a, 0x01, 0x80, 0x0d, 0x0a]);
    const verdict = checkLineEndings(input, 'normalize');
    expect(verdict.ok && [...verdict.body]).toEqual([0xff, 0x0d, 0x0a, 0x01, 0x80, 0x0d, 0x0a]);
  });

  it.each([
    ['<CR><LF><NUL>.<CR><LF>', 'a\r\n\x00.\r\nMAIL FROM:<x@y>\r\n'],
    ['a NUL inside a line', 'a\x00b\r\n'],
    ['a lone NUL', '\x00'],
  ])('refuses %s as a NUL under reject', (_name, text) => {
    expect(checkLineEndings(b(text), 'reject')).toEqual({ ok: false, found: 'NUL' });
  });

  it.each([
    ['a\r\n\x00.\r\nb\r\n', 'a\r\n.\r\nb\r\n'],
    ['\x00\x00a\x00\r\n\x00', 'a\r\n'],
    // Stripping first: the CR and LF a NUL separated form one CRLF, never a bare CR.
    ['a\r\x00\nb', 'a\r\nb'],
    ['a\n\x00.\nb', 'a\r\n.\r\nb'],
  ])('removes every NUL under normalize: %j', (input, expected) => {
    const verdict = checkLineEndings(b(input), 'normalize');
    expect(verdict.ok && verdict.body.toString('latin1')).toBe(expected);
  });

  it('still refuses a bare CR under normalize once the NULs are gone', () => {
    expect(checkLineEndings(b('a\x00\r\x00b\r\n'), 'normalize')).toEqual({ ok: false, found: 'CR' });
  });
});
