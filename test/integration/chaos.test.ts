/**
 * The reliability harness in a small configuration (issue 7): `bench/chaos.mjs` runs the built
 * relay (`dist/`, built by jest's globalSetup) against faulty HTTP and SMTP sinks, SIGKILLs it three
 * times (a spool check on each dead spool), lets the queue drain and checks its ledger. The
 * harness decides pass/fail; this test asserts that it passed and lost nothing.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ensureBuilt, REPO_ROOT as ROOT } from '../helpers/common.js';

const CHAOS = join(ROOT, 'bench', 'chaos.mjs');
/** The harness bounds itself; this is the backstop for a hung child. */
const CHILD_LIMIT_MS = 150_000;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runChaos(args: readonly string[]): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CHAOS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // SIGTERM lets the harness SIGKILL the relay it spawned before it exits.
    const timer = setTimeout(() => child.kill('SIGTERM'), CHILD_LIMIT_MS);
    child.once('error', fail);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr });
    });
  });
}

describe('chaos harness (bench/chaos.mjs)', () => {
  beforeAll(() => ensureBuilt());

  it(
    'loses nothing acknowledged across 3 SIGKILLs with failing downstreams, and every spool check is clean',
    async () => {
      const run = await runChaos(['--messages', '1000', '--connections', '10', '--kills', '3', '--seed', '1', '--fail', '0.1', '--quiet']);
      const report = `exit ${String(run.code)} ${String(run.signal)}\n${run.stdout}\n${run.stderr.slice(-4000)}`;
      expect({ code: run.code, report }).toEqual({ code: 0, report });
      expect(run.stdout).toMatch(/\blost = 0\b/);
      expect(run.stdout).toMatch(/spool-check problems = 0\b/);
      expect(run.stdout).toMatch(/^PASS:/m);
    },
    CHILD_LIMIT_MS + 10_000,
  );
});
