import { describe, expect, it } from '@jest/globals';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { PATCHED_MEMBERS, assertSmtpServerPatchable, smtpServerMismatch } from '../../../src/smtp/connection-patches.js';

const fn = (): void => undefined;
const shape = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ ...Object.fromEntries(PATCHED_MEMBERS.map((m) => [m, fn])), ...over });

describe('smtp-server version and shape check (the patches lean on private members)', () => {
  it.each(['3.21.6', '^3.21.6', '~3.21.6', ' 3.21.6 '])('accepts the pinned version written as %j with every patched member a function', (pin) => {
    expect(smtpServerMismatch(pin, '3.21.6', shape())).toBeNull();
  });

  it.each([
    ['a newer patch release', '3.21.7'],
    ['a newer minor release', '3.22.0'],
    ['an older release', '3.21.5'],
    ['a new major', '4.0.0'],
  ])('refuses %s, naming expected and found and what to do', (_name, found) => {
    const problem = smtpServerMismatch('^3.21.6', found, shape());
    expect(problem).toContain(`smtp-server ${found} is installed, but onward is pinned to 3.21.6`);
    expect(problem).toContain('npm ci');
  });

  it.each(PATCHED_MEMBERS.map((m) => [m]))('refuses a prototype whose %s is missing or not a function', (member) => {
    for (const value of [undefined, 'text', 42]) {
      const problem = smtpServerMismatch('3.21.6', '3.21.6', shape({ [member]: value }));
      expect(problem).toContain(`has no SMTPConnection.prototype.${member}()`);
    }
  });

  it('passes for the installed smtp-server and the package.json pin (what startRelay runs)', () => {
    expect(() => assertSmtpServerPatchable()).not.toThrow();
    // The shape check is real, not vacuous: every member it names exists on the installed prototype.
    for (const m of PATCHED_MEMBERS) expect(typeof (SMTPConnection.prototype as unknown as Record<string, unknown>)[m]).toBe('function');
  });
});
