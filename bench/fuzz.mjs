#!/usr/bin/env node
/**
 * `npm run fuzz`: the fuzz targets of test/fuzz/ (headers, config, payload, dsn, submission)
 * at their full counts and the SMTP front-door fuzzer (test/integration/reliability/fuzz.test.ts)
 * with more seeds, through jest (jest.fuzz.config.js: the targets are TypeScript), then a
 * table per property: inputs, time, failures, seed. `npm test` runs the same files as a ~1 % slice.
 *
 *   npm run fuzz                                  # a random seed, printed; >= 1,000,000 inputs
 *   npm run fuzz -- --seed 12345                  # the same inputs again
 *   npm run fuzz -- --scale 4                     # four times the inputs per property
 *   npm run fuzz -- --runs 5000 --only dsn        # exactly 5000 inputs, one target
 *   npm run fuzz -- --only headers:crlf --seed 12345 --path "9:3:1"   # replay a failure (the
 *                                                 # failing test prints this command)
 *
 * Options: --seed N · --runs N (numRuns of every property) · --scale F (default 1) ·
 * --only TARGET[:PROPERTY] (headers, config, payload, dsn, submission, smtp) · --path P
 * (fast-check's counterexample path; with --only and --seed) · --smtp-seeds N (SMTP fuzzer
 * seeds, default 16 × 300 sessions; with --seed they are seed, seed+1, …).
 * Exit: jest's (0 when every property held).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const FILES = {
  headers: 'test/fuzz/headers.test.ts',
  config: 'test/fuzz/config.test.ts',
  payload: 'test/fuzz/http-payload.test.ts',
  dsn: 'test/fuzz/dsn.test.ts',
  submission: 'test/fuzz/submission.test.ts',
  smtp: 'test/integration/reliability/fuzz.test.ts',
};

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    runs: { type: 'string' },
    scale: { type: 'string', default: '1' },
    only: { type: 'string', default: '' },
    path: { type: 'string', default: '' },
    'smtp-seeds': { type: 'string', default: '16' },
  },
});
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isSafeInteger(seed)) {
  console.error(`--seed: expected an integer, got ${values.seed}`);
  process.exit(2);
}
const target = values.only.split(':')[0];
if (target !== '' && !(target in FILES)) {
  console.error(`--only: expected one of ${Object.keys(FILES).join(', ')} (optionally :property), got ${values.only}`);
  process.exit(2);
}
const scale = Number(values.scale);
const smtpSeeds = Math.max(1, Math.round(Number(values['smtp-seeds']) * (values.only === '' ? scale : 1)));

const dir = mkdtempSync(join(tmpdir(), 'onward-fuzz-run-'));
const reportFile = join(dir, 'report.jsonl');
const env = {
  ...process.env,
  FUZZ_FULL: '1',
  FUZZ_SEED: String(seed),
  FUZZ_SCALE: String(scale),
  FUZZ_ONLY: values.only,
  FUZZ_PATH: values.path,
  FUZZ_REPORT: reportFile,
  ...(values.runs !== undefined ? { FUZZ_RUNS: values.runs } : {}),
  // The SMTP fuzzer: its own seeds (derived from ours), 300 sessions each.
  ONWARD_FUZZ_SEEDS: Array.from({ length: target === 'smtp' && values.seed !== undefined && values['smtp-seeds'] === '16' ? 1 : smtpSeeds }, (_, i) => seed + i).join(','),
};
const files = target === '' ? Object.values(FILES) : [FILES[target]];
console.log(`npm run fuzz: seed ${seed}${values.only ? `, only ${values.only}` : ''}${values.path ? `, path ${values.path}` : ''} — replay with: npm run fuzz -- --seed ${seed}`);
const started = Date.now();
const jest = spawnSync(
  process.execPath,
  ['--experimental-vm-modules', 'node_modules/jest/bin/jest.js', '-c', 'jest.fuzz.config.js', '--maxWorkers=2', ...files],
  { stdio: 'inherit', env },
);
const wall = (Date.now() - started) / 1000;

let rows = [];
try {
  rows = readFileSync(reportFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
} catch {
  // no report: jest failed before any property ran
}
rmSync(dir, { recursive: true, force: true });
const pad = (s, n) => String(s).padEnd(n);
const num = (n) => n.toLocaleString('en-US');
console.log('\nfuzz results');
console.log(`${pad('property', 22)} ${pad('inputs', 11)} ${pad('time', 8)} ${pad('failures', 9)} seed`);
let total = 0;
let failures = 0;
for (const r of rows) {
  total += r.inputs;
  failures += r.failures;
  const path = r.failures > 0 && r.path ? ` path ${r.path}` : '';
  console.log(`${pad(r.target, 22)} ${pad(num(r.inputs), 11)} ${pad(`${(r.ms / 1000).toFixed(1)}s`, 8)} ${pad(r.failures, 9)} ${r.seed}${path}${r.note ? `  (${r.note})` : ''}`);
}
console.log(`${pad('total', 22)} ${pad(num(total), 11)} ${pad(`${wall.toFixed(0)}s`, 8)} ${pad(failures, 9)} ${seed} (wall clock, 2 jest workers)`);
process.exit(jest.status ?? 1);
