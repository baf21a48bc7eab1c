/**
 * The soak's memory verdict (bench/chaos/sampler.mjs): the RSS low-water line after the warm-up
 * and the per-5-minute table, on series shaped like the ones the harness records (5 s samples
 * with a GC saw-tooth on top of the floor).
 */
import { describe, expect, it } from '@jest/globals';
import { lowWater, windows, type ProcessSample } from '../../../bench/chaos/sampler.mjs';

const MB = 1024 * 1024;
const T0 = 1_800_000_000_000;

/** `minutes` of 5 s samples of one process whose floor is `floor(minute)` MB, with a saw-tooth of up to 40 MB above it. */
function series(minutes: number, floor: (minute: number) => number, node = 'relay', pid = 100): ProcessSample[] {
  const out: ProcessSample[] = [];
  for (let k = 0; k <= minutes * 12; k++) {
    const minute = k / 12;
    const tooth = ((k * 7) % 12) * (40 / 11); // every value 0..40 MB once a minute, in a scrambled order
    out.push({ at: T0 + k * 5000, pid, node, rss: Math.round((floor(minute) + tooth) * MB), fds: 60 + (k % 9) });
  }
  return out;
}

describe('soak low-water verdict', () => {
  const warmupMs = 3 * 60_000;

  it('calls a floor that stays put flat, whatever the saw-tooth above it', () => {
    const lw = lowWater(series(30, () => 200), warmupMs);
    expect(lw?.verdict).toBe('flat');
    expect(Math.abs(lw?.slopeMBPerMin ?? 1)).toBeLessThan(0.05);
  });

  it('calls a floor rising 1.1 MB/min to the end GROWS and measures the slope', () => {
    const lw = lowWater(series(30, (m) => 190 + 1.1 * m), warmupMs);
    expect(lw?.verdict).toBe('grows');
    expect(lw?.slopeMBPerMin).toBeCloseTo(1.1, 1);
  });

  it('calls a floor that rises towards a bound and stops "levels off"', () => {
    const lw = lowWater(series(30, (m) => 190 + 40 * (1 - Math.exp(-m / 4))), warmupMs);
    expect(lw?.verdict).toBe('levels off');
    expect(lw?.lateSlopeMBPerMin).toBeLessThan(0.1);
  });

  it('judges only up to the end of the load (a drained relay frees memory)', () => {
    const loadEnd = T0 + 20 * 60_000;
    const samples = series(25, (m) => (m < 20 ? 200 : 150));
    expect(lowWater(samples, warmupMs, loadEnd)?.verdict).toBe('flat');
    expect(lowWater(samples, warmupMs, loadEnd)?.minutesJudged).toBe(17);
  });

  it('gives no verdict with fewer than 6 minutes after the warm-up', () => {
    expect(lowWater(series(8, () => 200), warmupMs)?.minutesJudged).toBe(5);
    expect(lowWater(series(8, () => 200), warmupMs)?.verdict).toBeNull();
  });
});

describe('soak table per 5 minutes', () => {
  it('has one row per window and node with the low-water, the peak, the fds and the run totals of the window', () => {
    const samples = [...series(12, () => 200, 'node-1', 1), ...series(12, (m) => 300 + m, 'node-2', 2)];
    const ticks = samples.filter((s) => s.node === 'node-1').map((s) => ({ at: s.at, accepted: (s.at - T0) / 100, delivered: (s.at - T0) / 50 }));
    const rows = windows(samples, ticks, T0, ['node-1', 'node-2']);
    expect(rows.map((r) => [r.node, r.fromMinute, r.toMinute, r.partial])).toEqual([
      ['node-1', 0, 5, false],
      ['node-2', 0, 5, false],
      ['node-1', 5, 10, false],
      ['node-2', 5, 10, false],
      ['node-1', 10, 12, true],
      ['node-2', 10, 12, true],
    ]);
    const second = rows[3];
    expect(second?.rssLowBytes).toBe(305 * MB);
    expect(second?.rssMaxBytes).toBeGreaterThanOrEqual(339 * MB);
    expect([second?.fdsMin, second?.fdsMax]).toEqual([60, 68]);
    // 5 minutes at 10 accepted and 20 delivered per second.
    expect([second?.accepted, second?.delivered]).toEqual([3000, 6000]);
  });
});
