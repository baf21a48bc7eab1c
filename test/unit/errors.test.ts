import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { ERROR_CODES, RelayError, isRelayError } from '../../src/errors.js';

describe('RelayError', () => {
  it('carries a code that isRelayError can branch on', () => {
    const err = new RelayError('ONWARD_ERR_BAD_ID', 'no message abc');
    expect(isRelayError(err, 'ONWARD_ERR_BAD_ID')).toBe(true);
    expect(isRelayError(err, 'ONWARD_ERR_NOT_FOUND')).toBe(false);
    expect(isRelayError(new Error('x'))).toBe(false);
  });

  it('has unique codes, each documented in the README error table and nothing more', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    const readme = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const documented = [...readme.matchAll(/^\| `(ONWARD_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect([...documented].sort()).toEqual([...ERROR_CODES].sort());
  });
});
