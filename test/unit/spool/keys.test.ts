import { describe, expect, it } from '@jest/globals';
import { keys, laneOf, lastPart, padTime, parseDueKey } from '../../../src/spool/keys.js';

const inRange = (key: string, range: { gte: string; lt: string }): boolean => key >= range.gte && key < range.lt;

describe('spool keys', () => {
  it('pads times to a fixed width so that lexical order is time order', () => {
    const times = [0, 5, 999, 1_000, 86_400_000, 1_700_000_000_000, 1_700_000_000_001, 99_999_999_999_999];
    const shuffled = [...times].reverse();
    expect(shuffled.map(padTime).sort()).toEqual(times.map(padTime));
    expect(padTime(42)).toBe('000000000000042');
    expect(padTime(-5)).toBe('000000000000000');
    expect(padTime(12.9)).toBe('000000000000012');
  });

  it('sorts due keys of a lane by due time, then by delivery id', () => {
    const entries: [number, string][] = [
      [1_700_000_000_500, 'B.0'],
      [1_700_000_000_000, 'C.1'],
      [1_700_000_000_500, 'A.0'],
      [999, 'Z.0'],
      [1_800_000_000_000, 'A.1'],
    ];
    const sorted = entries.map(([t, id]) => keys.due('outbox', t, id)).sort();
    expect(sorted.map(parseDueKey)).toEqual([
      { dueAt: 999, deliveryId: 'Z.0' },
      { dueAt: 1_700_000_000_000, deliveryId: 'C.1' },
      { dueAt: 1_700_000_000_500, deliveryId: 'A.0' },
      { dueAt: 1_700_000_000_500, deliveryId: 'B.0' },
      { dueAt: 1_800_000_000_000, deliveryId: 'A.1' },
    ]);
  });

  it('round-trips a due key through parseDueKey, with lanes that name several targets', () => {
    const lane = laneOf(['primary', 'backup']);
    expect(lane).toBe('primary+backup');
    expect(parseDueKey(keys.due(lane, 1_700_000_000_123, '0MWYW9NT0TQDE6J.3'))).toEqual({ dueAt: 1_700_000_000_123, deliveryId: '0MWYW9NT0TQDE6J.3' });
  });

  it('makes dueRange hold exactly the keys of its lane that are due at or before the time', () => {
    const range = keys.dueRange('a', 1000);
    expect(inRange(keys.due('a', 0, 'X.0'), range)).toBe(true);
    expect(inRange(keys.due('a', 1000, 'X.0'), range)).toBe(true);
    expect(inRange(keys.due('a', 1001, 'X.0'), range)).toBe(false);
    // Neighbouring lanes never spill into the range, whatever their names.
    for (const other of ['ab', 'a+b', 'a.b', 'a-b', 'a_b', 'A', 'b']) {
      expect(inRange(keys.due(other, 5, 'X.0'), range)).toBe(false);
      expect(inRange(keys.due(other, 5, 'X.0'), keys.duePrefix('a'))).toBe(false);
    }
    expect(inRange(keys.due('a', 99_999_999_999_999, 'X.0'), keys.duePrefix('a'))).toBe(true);
  });

  it('keeps record families in disjoint prefixes', () => {
    const samples = [
      keys.message('Q'),
      keys.body('Q'),
      keys.delivery('Q.0'),
      keys.due('outbox', 1, 'Q.0'),
      keys.lease('Q.0'),
      keys.dedup('abc'),
      keys.dedupExpiry(1, 'abc'),
      keys.finished(1, 'Q'),
      keys.open('Q'),
      keys.counters,
    ];
    expect(new Set(samples.map((k) => k.slice(0, 2))).size).toBe(samples.length);
    expect(inRange(keys.message('Q'), keys.messages)).toBe(true);
    expect(inRange(keys.body('Q'), keys.messages)).toBe(false);
    expect(inRange(keys.lease('Q.0'), keys.leases)).toBe(true);
    expect(inRange(keys.open('Q'), keys.opens)).toBe(true);
  });

  it('selects only the deliveries of one message with deliveriesOf', () => {
    const range = keys.deliveriesOf('0MWYW9NT0TQDE6J');
    expect(inRange(keys.delivery('0MWYW9NT0TQDE6J.0'), range)).toBe(true);
    expect(inRange(keys.delivery('0MWYW9NT0TQDE6J.12'), range)).toBe(true);
    expect(inRange(keys.delivery('0MWYW9NT0TQDE6K.0'), range)).toBe(false);
    expect(inRange(keys.delivery('0MWYW9NT0TQDE6JX.0'), range)).toBe(false);
  });

  it('orders dedup expiry and retention keys by time, and lastPart reads their id', () => {
    expect([keys.dedupExpiry(2000, 'b'), keys.dedupExpiry(100, 'a')].sort()).toEqual([keys.dedupExpiry(100, 'a'), keys.dedupExpiry(2000, 'b')]);
    expect(inRange(keys.dedupExpiry(100, 'a'), keys.dedupExpiryUpTo(100))).toBe(true);
    expect(inRange(keys.dedupExpiry(101, 'a'), keys.dedupExpiryUpTo(100))).toBe(false);
    expect(inRange(keys.finished(50, 'Q'), keys.finishedUpTo(50))).toBe(true);
    expect(inRange(keys.finished(51, 'Q'), keys.finishedUpTo(50))).toBe(false);
    expect(lastPart(keys.finished(50, '0MWYW9NT0TQDE6J'))).toBe('0MWYW9NT0TQDE6J');
    expect(lastPart(keys.lease('0MWYW9NT0TQDE6J.1'))).toBe('0MWYW9NT0TQDE6J.1');
  });
});
