import { describe, expect, it } from '@jest/globals';
import { deliveryId, isQueueId, newQueueId, queueIdOfDelivery } from '../../../src/spool/ids.js';

describe('queue and delivery ids', () => {
  it('makes 15-character upper-case base-36 queue ids', () => {
    for (let i = 0; i < 50; i++) {
      const id = newQueueId();
      expect(id).toMatch(/^[0-9A-Z]{15}$/);
      expect(isQueueId(id)).toBe(true);
    }
  });

  it('makes queue ids that sort by arrival time', () => {
    const times = [1_000, 1_700_000_000_000, 1_700_000_000_001, 1_700_000_086_400, 2_000_000_000_000, 3_000_000_000_000];
    const ids = times.map((t) => newQueueId(t));
    expect([...ids].reverse().sort()).toEqual(ids);
  });

  it('makes distinct queue ids within the same millisecond', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newQueueId(1_700_000_000_000)));
    expect(ids.size).toBe(1000);
  });

  it.each(['', 'abc', '0mwyw9nt0tqde6j', '0MWYW9NT0TQDE6', '0MWYW9NT0TQDE6JX', '0MWYW9NT0TQDE6J.0', '0MWYW9NT0-QDE6J'])('rejects %j as a queue id', (id) => {
    expect(isQueueId(id)).toBe(false);
  });

  it('derives delivery ids from the queue id and reads the queue id back', () => {
    expect(deliveryId('0MWYW9NT0TQDE6J', 0)).toBe('0MWYW9NT0TQDE6J.0');
    expect(queueIdOfDelivery('0MWYW9NT0TQDE6J.0')).toBe('0MWYW9NT0TQDE6J');
    expect(queueIdOfDelivery(deliveryId('0MWYW9NT0TQDE6J', 1234))).toBe('0MWYW9NT0TQDE6J');
  });

  it.each(['0MWYW9NT0TQDE6J', '0MWYW9NT0TQDE6J.', '0MWYW9NT0TQDE6J.x', '0MWYW9NT0TQDE6J.12345', 'short.1', '0mwyw9nt0tqde6j.1'])('finds no queue id in %j', (id) => {
    expect(queueIdOfDelivery(id)).toBeNull();
  });
});
