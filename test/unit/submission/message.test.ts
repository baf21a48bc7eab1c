import { describe, expect, it } from '@jest/globals';
import { fromRaw } from '../../../src/submission/message.js';

const noEnvelope = { from: undefined, to: undefined };

describe('fromRaw (found by npm run fuzz)', () => {
  it('reads the header block of a bare-LF message up to its blank line: a body line `Cc:` adds no recipient, a body line `Bcc:` stays', () => {
    const raw = Buffer.from('From: a@hook.test\nTo: b@hook.test\n\nCc: body-cc@hook.test\nBcc: body-bcc@hook.test\n');
    const submitted = fromRaw(raw, noEnvelope);
    expect(submitted.recipients).toEqual(['b@hook.test']);
    expect(submitted.body.toString('latin1')).toBe('From: a@hook.test\r\nTo: b@hook.test\r\n\r\nCc: body-cc@hook.test\r\nBcc: body-bcc@hook.test\r\n');
  });

  it('still takes Bcc recipients from a bare-LF header block and removes the field', () => {
    const submitted = fromRaw(Buffer.from('From: a@hook.test\nBcc: hidden@hook.test\n\nbody\n'), noEnvelope);
    expect(submitted.recipients).toEqual(['hidden@hook.test']);
    expect(submitted.body.toString('latin1')).toBe('From: a@hook.test\r\n\r\nbody\r\n');
  });
});
