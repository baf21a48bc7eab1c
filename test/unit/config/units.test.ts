import { describe, expect, it } from '@jest/globals';
import { parseDuration, parseSize } from '../../../src/config/units.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['4h', 14_400_000],
    ['5d', 432_000_000],
    ['1.5h', 5_400_000],
    [' 10 s ', 10_000],
    ['0', 0],
    [0, 0],
  ])('converts %p to %p milliseconds', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  it('rejects a bare number other than 0 because its unit would be a guess', () => {
    expect(() => parseDuration(30)).toThrow(/expected a duration like .*30s.*needs a unit/);
    expect(() => parseDuration('30')).toThrow(/expected a duration like/);
  });

  it.each(['', '5x', '5M', 'm5', '-5m', 'soon', '1h30m'])('rejects %p with a message saying what is expected', (input) => {
    expect(() => parseDuration(input)).toThrow(/expected a duration like 500ms, 30s, 5m, 4h or 5d, got/);
  });
});

describe('parseSize', () => {
  it.each([
    [1024, 1024],
    ['1024', 1024],
    ['10B', 10],
    ['512KB', 524_288],
    ['25MB', 26_214_400],
    ['25mb', 26_214_400],
    ['1.5GB', 1_610_612_736],
    ['2 gb', 2_147_483_648],
    [0, 0],
  ])('converts %p to %p bytes', (input, expected) => {
    expect(parseSize(input)).toBe(expected);
  });

  it.each(['', '25TB', 'MB', '-1', 'lots', '1.5'])('rejects %p with a message saying what is expected', (input) => {
    expect(() => parseSize(input)).toThrow(/expected a size like 512KB, 25MB, 1.5GB or a whole number of bytes, got/);
  });

  it('rejects fractional and negative numbers of bytes', () => {
    expect(() => parseSize(1.5)).toThrow(/expected a size/);
    expect(() => parseSize(-1)).toThrow(/expected a size/);
  });
});
