/**
 * Human units in the YAML file (`30s`, `25MB`) to the numbers the code uses (ms, bytes).
 */

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
};

const DURATION_EXPECTED = 'expected a duration like 500ms, 30s, 5m, 4h or 5d';
const SIZE_EXPECTED = 'expected a size like 512KB, 25MB, 1.5GB or a whole number of bytes';

/**
 * Parses `500ms`, `30s`, `5m`, `4h`, `5d` (decimals allowed: `1.5h`) into milliseconds.
 * Units are lower case, so `5M` cannot be mistaken for megabytes or months.
 * A bare number is rejected, except 0: `30` could mean seconds or milliseconds, and a
 * guess that is off by 1000 is worse than an error.
 * @throws Error with a message saying what was expected.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (input === 0) return 0;
    throw new Error(`${DURATION_EXPECTED} (a bare number needs a unit), got ${String(input)}`);
  }
  const text = input.trim();
  if (text === '0') return 0;
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/.exec(text);
  const unit = match?.[2];
  const factor = unit === undefined ? undefined : DURATION_UNITS_MS[unit];
  if (match === null || factor === undefined) {
    throw new Error(`${DURATION_EXPECTED}, got ${JSON.stringify(input)}`);
  }
  return toWhole(Number(match[1]) * factor, input, DURATION_EXPECTED);
}

/**
 * Parses a size into bytes: a whole number is bytes; `B`, `KB`, `MB`, `GB` (any case)
 * are powers of 1024 (`25MB` = 26 214 400, `1.5GB` allowed).
 * @throws Error with a message saying what was expected.
 */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw new Error(`${SIZE_EXPECTED}, got ${String(input)}`);
  }
  const text = input.trim();
  if (/^\d+$/.test(text)) return toWhole(Number(text), input, SIZE_EXPECTED);
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]+)$/.exec(text);
  const unit = match?.[2]?.toLowerCase();
  const factor = unit === undefined ? undefined : SIZE_UNITS_BYTES[unit];
  if (match === null || factor === undefined) {
    throw new Error(`${SIZE_EXPECTED}, got ${JSON.stringify(input)}`);
  }
  return toWhole(Number(match[1]) * factor, input, SIZE_EXPECTED);
}

function toWhole(value: number, input: string, expected: string): number {
  const rounded = Math.round(value);
  if (!Number.isSafeInteger(rounded)) {
    throw new Error(`${expected}, got ${JSON.stringify(input)} (too large)`);
  }
  return rounded;
}
