import type { RetryConfig } from '../config/types.js';

/**
 * When the next attempt of a delivery is due, after `attemptsMade` attempts.
 * `retry.schedule[attemptsMade - 1]`, the last interval repeated, ± jitter; a downstream's
 * Retry-After replaces the interval but is capped by the schedule's last interval.
 * Pure: the clock and the random source are arguments.
 */
export function nextAttemptAt(
  policy: Pick<RetryConfig, 'scheduleMs' | 'jitter'>,
  attemptsMade: number,
  now: number,
  retryAfterMs: number | null = null,
  random: () => number = Math.random,
): number {
  const schedule = policy.scheduleMs;
  const last = schedule[schedule.length - 1] ?? 60_000;
  const index = Math.min(Math.max(attemptsMade - 1, 0), schedule.length - 1);
  if (retryAfterMs !== null) return now + Math.min(Math.max(retryAfterMs, 0), last);
  const base = schedule[index] ?? last;
  const spread = base * policy.jitter * (2 * random() - 1);
  return now + Math.max(0, Math.round(base + spread));
}

/** Whether a delivery created at `createdAt` has outlived the queue lifetime. */
export function isExpired(policy: Pick<RetryConfig, 'maxAgeMs'>, createdAt: number, now: number): boolean {
  return now - createdAt >= policy.maxAgeMs;
}
