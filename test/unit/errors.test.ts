import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { ERROR_CODES, RelayError, isErrorCode, isRelayError } from '../../src/errors.js';

/** The rows of docs/operations.md's error table: `| `CODE` | status | exit | meaning |`. */
function documentedRows(): { code: string; status: number; exit: number }[] {
  const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  return [...doc.matchAll(/^\| `(ONWARD_ERR_[A-Z_]+)` \| ([^|]*) \| ([^|]*) \|/gm)].map((m) => ({
    code: m[1] ?? '',
    status: Number(m[2]?.trim()),
    exit: Number(m[3]?.trim()),
  }));
}

describe('RelayError', () => {
  it('carries a code that isRelayError can branch on', () => {
    const err = new RelayError('ONWARD_ERR_BAD_ID', 'no message abc');
    expect(isRelayError(err, 'ONWARD_ERR_BAD_ID')).toBe(true);
    expect(isRelayError(err, 'ONWARD_ERR_NOT_FOUND')).toBe(false);
    expect(isRelayError(new Error('x'))).toBe(false);
  });

  it('takes its HTTP status and CLI exit from the code table', () => {
    const err = new RelayError('ONWARD_ERR_NOT_FOUND', 'no message abc');
    expect([err.status, err.exit]).toEqual([ERROR_CODES.ONWARD_ERR_NOT_FOUND.status, ERROR_CODES.ONWARD_ERR_NOT_FOUND.exit]);
  });

  it('recognises only the codes of the table', () => {
    expect(isErrorCode('ONWARD_ERR_BAD_ARGS')).toBe(true);
    expect(isErrorCode('ONWARD_ERR_NO_SUCH_THING')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode(undefined)).toBe(false);
  });
});

describe('the error table in docs/operations.md', () => {
  const rows = documentedRows();

  it('lists each code once, every code of src/errors.ts and nothing more', () => {
    const codes = rows.map((r) => r.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...codes].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it("gives each code the HTTP status and CLI exit of src/errors.ts", () => {
    const fromTable = Object.entries(ERROR_CODES).map(([code, { status, exit }]) => ({ code, status, exit }));
    const byCode = (a: { code: string }, b: { code: string }) => a.code.localeCompare(b.code);
    expect([...rows].sort(byCode)).toEqual(fromTable.sort(byCode));
  });
});
