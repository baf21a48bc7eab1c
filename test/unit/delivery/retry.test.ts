import { describe, expect, it } from '@jest/globals';
import { isExpired, nextAttemptAt } from '../../../src/delivery/retry.js';

const NOW = 1_700_000_000_000;
const MIN = 60_000;
const schedule = { scheduleMs: [1 * MIN, 5 * MIN, 15 * MIN], jitter: 0 };

describe('nextAttemptAt', () => {
  it('takes the schedule step of the attempt just made', () => {
    expect(nextAttemptAt(schedule, 1, NOW)).toBe(NOW + 1 * MIN);
    expect(nextAttemptAt(schedule, 2, NOW)).toBe(NOW + 5 * MIN);
    expect(nextAttemptAt(schedule, 3, NOW)).toBe(NOW + 15 * MIN);
  });

  it('keeps repeating the last interval once the schedule runs out', () => {
    expect(nextAttemptAt(schedule, 4, NOW)).toBe(NOW + 15 * MIN);
    expect(nextAttemptAt(schedule, 50, NOW)).toBe(NOW + 15 * MIN);
  });

  it('treats zero attempts made like the first', () => {
    expect(nextAttemptAt(schedule, 0, NOW)).toBe(NOW + 1 * MIN);
  });

  it('spreads the interval by ± jitter using the injected random source', () => {
    const policy = { scheduleMs: [100_000], jitter: 0.1 };
    expect(nextAttemptAt(policy, 1, NOW, null, () => 0)).toBe(NOW + 90_000);
    expect(nextAttemptAt(policy, 1, NOW, null, () => 0.5)).toBe(NOW + 100_000);
    expect(nextAttemptAt(policy, 1, NOW, null, () => 0.999_999)).toBe(NOW + 110_000);
  });

  it('stays within the jitter bounds for any random value', () => {
    const policy = { scheduleMs: [10_000, 60_000], jitter: 0.25 };
    for (let i = 0; i <= 100; i++) {
      const r = Math.min(i / 100, 0.999_999_9);
      const at = nextAttemptAt(policy, 2, NOW, null, () => r);
      expect(at).toBeGreaterThanOrEqual(NOW + 45_000);
      expect(at).toBeLessThanOrEqual(NOW + 75_000);
    }
  });

  it('ignores the random source when jitter is 0', () => {
    expect(nextAttemptAt(schedule, 1, NOW, null, () => 0)).toBe(NOW + 1 * MIN);
    expect(nextAttemptAt(schedule, 1, NOW, null, () => 0.999)).toBe(NOW + 1 * MIN);
  });

  it('lets Retry-After replace the schedule step, even a shorter or longer one', () => {
    expect(nextAttemptAt(schedule, 1, NOW, 7_000)).toBe(NOW + 7_000);
    expect(nextAttemptAt(schedule, 1, NOW, 3 * MIN)).toBe(NOW + 3 * MIN);
  });

  it("caps Retry-After at the schedule's last interval", () => {
    expect(nextAttemptAt(schedule, 1, NOW, 3_600_000)).toBe(NOW + 15 * MIN);
    expect(nextAttemptAt(schedule, 1, NOW, 15 * MIN)).toBe(NOW + 15 * MIN);
  });

  it('treats Retry-After 0 (or a past date) as now', () => {
    expect(nextAttemptAt(schedule, 2, NOW, 0)).toBe(NOW);
    expect(nextAttemptAt(schedule, 2, NOW, -5_000)).toBe(NOW);
  });

  it('never returns a time before now', () => {
    const policy = { scheduleMs: [1_000], jitter: 1 };
    expect(nextAttemptAt(policy, 1, NOW, null, () => 0)).toBe(NOW);
  });
});

describe('isExpired', () => {
  const policy = { maxAgeMs: 5 * 86_400_000 };
  const created = NOW - 5 * 86_400_000;

  it('is false while the delivery is younger than retry.maxAge', () => {
    expect(isExpired(policy, NOW, NOW)).toBe(false);
    expect(isExpired(policy, created + 1, NOW)).toBe(false);
  });

  it('is true once retry.maxAge has passed', () => {
    expect(isExpired(policy, created - 1, NOW)).toBe(true);
    expect(isExpired(policy, created - 86_400_000, NOW)).toBe(true);
  });
});
