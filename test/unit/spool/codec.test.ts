/** LevelDB records written before delivery events existed still decode: `eventOf` is null. */
import { describe, expect, it } from '@jest/globals';
import { decodeMessage, encodeRecord } from '../../../src/spool/level/codec.js';

describe('level message codec', () => {
  it('decodes a record without eventOf as an ordinary message, and keeps one that has it', () => {
    const old = { id: 'MI3Q5ZK7A4F9K2X', sender: 'a@b.test', recipients: [], messageId: null, size: 1, receivedAt: 1, client: {}, state: 'queued', deliveries: {}, finishedAt: null, dedupKey: null, bounceOf: null };
    expect(decodeMessage(encodeRecord(old))).toEqual({ ...old, eventOf: null });
    expect(decodeMessage(encodeRecord({ ...old, eventOf: 'MI3Q5ZK7A4F9K2Y' }))?.eventOf).toBe('MI3Q5ZK7A4F9K2Y');
    expect(decodeMessage(undefined)).toBeNull();
  });
});
