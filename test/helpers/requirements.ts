/**
 * Suites that need a Debian package the machine may lack (PostgreSQL, chromium): without it they
 * skip with one line for the whole run; under `CI=true` they fail instead (CI installs them).
 */
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from '@jest/globals';

/** `describe` when `missing` is null; else skipped with the line `missing` once per run (a failing test under CI). */
export function describeRequiring(what: string, missing: string | null, name: string, body: () => void): void {
  if (missing === null) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it(`has ${what} installed (required under CI)`, () => {
        throw new Error(missing);
      });
    });
  } else {
    sayOnce(what, missing);
    describe.skip(name, body);
  }
}

function sayOnce(what: string, line: string): void {
  // Workers are children of the jest process; in-band, jest is this process.
  const runId = process.env.JEST_WORKER_ID ? process.ppid : process.pid;
  try {
    closeSync(openSync(join(tmpdir(), `onward-missing-${what.replace(/\W+/g, '-')}-${String(runId)}`), 'wx'));
  } catch {
    return; // another suite of this run said it already
  }
  process.stderr.write(`${line}\n`);
}
