/**
 * Which failures mark the PostgreSQL spool's database unavailable (availability.ts): a
 * connection error counts whatever realm made it — Node's own socket errors reach code run in
 * a `vm` context (jest) as objects that are no instance of that context's Error.
 */
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from '@jest/globals';
import { isSuspectError, isUnavailableError } from '../../../src/spool/postgres/availability.js';

describe('postgres spool availability classification', () => {
  it('counts a refused connection as unavailable, also when the error comes from another realm', () => {
    const foreign: unknown = runInNewContext(`Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })`);
    expect(foreign instanceof Error).toBe(false);
    expect(isUnavailableError(foreign)).toBe(true);
    expect(isUnavailableError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBe(true);
  });

  it('finds the connection error in a cause chain and ignores errors of the statement itself', () => {
    expect(isUnavailableError(new Error('spool write failed', { cause: new Error('Connection terminated unexpectedly') }))).toBe(true);
    expect(isUnavailableError(Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' }))).toBe(false);
    expect(isUnavailableError('ECONNREFUSED')).toBe(false);
    expect(isSuspectError(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }))).toBe(true);
  });
});
