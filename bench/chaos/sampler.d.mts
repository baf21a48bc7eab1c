/** One reading of one relay process (see sampler.mjs). */
export interface ProcessSample {
  readonly at: number;
  readonly pid: number;
  readonly node: string;
  readonly rss: number;
  readonly fds: number;
}
/** The run's running totals at one sampling round. */
export interface Tick {
  readonly at: number;
  readonly accepted: number;
  readonly delivered: number;
}
export interface LowWater {
  readonly warmupSeconds: number;
  readonly minutesJudged: number;
  readonly slopeMBPerMin: number;
  readonly slopeStdErr: number | null;
  readonly lateSlopeMBPerMin: number;
  readonly lateSlopeStdErr: number | null;
  readonly firstFloorMB: number | null;
  readonly lastFloorMB: number | null;
  readonly verdict: 'flat' | 'levels off' | 'grows' | null;
}
export interface Window {
  readonly node: string;
  readonly fromMinute: number;
  readonly toMinute: number;
  readonly partial: boolean;
  readonly samples: number;
  readonly lives: number;
  readonly rssLowBytes: number | null;
  readonly rssMaxBytes: number | null;
  readonly fdsMin: number | null;
  readonly fdsMax: number | null;
  readonly accepted: number;
  readonly delivered: number;
}
export const SOAK_WARMUP_MS: number;
export const WINDOW_MS: number;
export function fitSlope(points: readonly (readonly [number, number])[]): { slope: number; se: number | null };
export function floorsPerMinute(samples: readonly ProcessSample[], from: number, until?: number): [number, number][];
export function lowWater(samples: readonly ProcessSample[], warmupMs: number, until?: number): LowWater | null;
export function windows(samples: readonly ProcessSample[], ticks: readonly Tick[], startedAt: number, nodeNames: readonly string[]): Window[];
