/**
 * The run settings and the reporting of `npm run fuzz` (bench/fuzz.mjs, jest.fuzz.config.js)
 * and of its small slice in `npm test` (test/fuzz/*.test.ts).
 *
 * Environment (bench/fuzz.mjs sets it from its flags):
 *   FUZZ_FULL=1      full run counts (else the `npm test` slice: about 1 % of them)
 *   FUZZ_SEED=N      fast-check seed of every property (default: fixed in the slice, random in a full run)
 *   FUZZ_RUNS=N      numRuns of every property (overrides the per-property counts)
 *   FUZZ_SCALE=F     multiplies the per-property counts
 *   FUZZ_ONLY=NAME   run only the properties named NAME or NAME:… (e.g. `headers`, `headers:crlf`)
 *   FUZZ_PATH=P      fast-check's counterexample path, to replay one failure (with FUZZ_ONLY and FUZZ_SEED)
 *   FUZZ_REPORT=F    append one JSON line per property to F (inputs, ms, failures, seed)
 */
import { appendFileSync } from 'node:fs';
import { it } from '@jest/globals';
import fc from 'fast-check';

const env = process.env;

export const FULL = env['FUZZ_FULL'] === '1';
/** The `npm test` slice always runs the same inputs; a full run picks a seed (bench/fuzz.mjs prints it). */
export const SEED = env['FUZZ_SEED'] !== undefined && env['FUZZ_SEED'] !== '' ? Number(env['FUZZ_SEED']) : 20260527;
const RUNS = env['FUZZ_RUNS'] !== undefined && env['FUZZ_RUNS'] !== '' ? Number(env['FUZZ_RUNS']) : null;
const SCALE = Number(env['FUZZ_SCALE'] ?? 1) * (FULL ? 1 : 0.01);
const ONLY = env['FUZZ_ONLY'] ?? '';
const PATH = env['FUZZ_PATH'] ?? '';
const REPORT = env['FUZZ_REPORT'] ?? '';

/** numRuns for a property whose full run is `full` inputs. */
export function runsFor(full: number): number {
  return RUNS ?? Math.max(1, Math.round(full * SCALE));
}

/** Whether the property `name` (`target:property`) is selected by FUZZ_ONLY. */
export function selected(name: string): boolean {
  return ONLY === '' || name === ONLY || name.startsWith(`${ONLY}:`);
}

export interface FuzzRecord {
  readonly target: string;
  readonly inputs: number;
  readonly ms: number;
  readonly failures: number;
  readonly seed: number;
  readonly path?: string | null;
  readonly note?: string;
}

/** One line per property into FUZZ_REPORT (bench/fuzz.mjs prints the table), and to the console in a full run. */
export function report(record: FuzzRecord): void {
  if (REPORT !== '') appendFileSync(REPORT, `${JSON.stringify(record)}\n`);
}

type AnyProperty<Ts> = fc.IProperty<Ts> | fc.IAsyncProperty<Ts>;

/**
 * Runs `property` with the run's seed and count, reports it, and on a failure throws
 * fast-check's report (shrunk counterexample, seed, path) with the command that replays it.
 */
export async function runProperty<Ts>(name: string, property: AnyProperty<Ts>, fullRuns: number, params: fc.Parameters<Ts> = {}): Promise<void> {
  const numRuns = runsFor(fullRuns);
  const started = performance.now();
  const out = await fc.check(property as fc.IRawProperty<Ts>, {
    seed: SEED,
    numRuns,
    ...(PATH !== '' ? { path: PATH } : {}),
    ...params,
  });
  const ms = Math.round(performance.now() - started);
  report({ target: name, inputs: out.numRuns, ms, failures: out.failed ? 1 : 0, seed: out.seed, path: out.counterexamplePath });
  if (out.failed) {
    const replay = `npm run fuzz -- --only ${name} --seed ${out.seed}${out.counterexamplePath ? ` --path "${out.counterexamplePath}"` : ''}`;
    const cause = out.errorInstance instanceof Error ? (out.errorInstance.stack ?? out.errorInstance.message) : String(out.errorInstance);
    throw new Error(`${fc.defaultReportMessage(out) ?? 'property failed'}\n\nFailure: ${cause}\n\nReplay: ${replay}`);
  }
}

/** A jest test for one property: skipped when FUZZ_ONLY names another; a full run gets up to 14 minutes. */
export function fuzzIt<Ts>(name: string, build: () => AnyProperty<Ts>, fullRuns: number, params: fc.Parameters<Ts> = {}): void {
  const test = selected(name) ? it : it.skip;
  test(`${name}: ${runsFor(fullRuns)} inputs, seed ${SEED}`, () => runProperty(name, build(), fullRuns, params), FULL ? 14 * 60_000 : 60_000);
}
