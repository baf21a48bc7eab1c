import { describe, expect, it } from '@jest/globals';
import { RelayError, isRelayError } from '../../src/errors.js';

describe('RelayError', () => {
  it('carries a code that isRelayError can branch on', () => {
    const err = new RelayError('ONWARD_ERR_BAD_ID', 'no message abc');
    expect(isRelayError(err, 'ONWARD_ERR_BAD_ID')).toBe(true);
    expect(isRelayError(err, 'ONWARD_ERR_NOT_FOUND')).toBe(false);
    expect(isRelayError(new Error('x'))).toBe(false);
  });
});
