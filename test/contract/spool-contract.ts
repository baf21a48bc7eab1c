/**
 * The behaviours every spool backend keeps, as one suite each backend runs under the same
 * test names (as abstract-level's shared tests): `describeSpoolContract('level', harness)`.
 *
 * Backend-neutral by rule: no storage keys or SQL, no `now` option (a shared backend judges
 * due times by the database's clock), real short windows awaited with waitFor, "not due" as
 * `Date.now() + LATER` and "due" as `Date.now()`.
 */
import { afterEach, beforeEach, describe } from '@jest/globals';
import { acceptContract } from './accept.contract.js';
import { adminContract } from './admin.contract.js';
import { attemptContract } from './attempts.contract.js';
import { eventsContract } from './events.contract.js';
import type { OpenSpool, SpoolHarness, SpoolHarnessFactory } from './harness.js';
import { lifecycleContract } from './lifecycle.contract.js';
import { laneContract } from './lanes.contract.js';
import { queryContract } from './queries.contract.js';

export type { ContractSpoolOptions, SpoolHarness, SpoolHarnessFactory } from './harness.js';

export function describeSpoolContract(backend: string, harness: SpoolHarnessFactory): void {
  describe(`spool contract (${backend})`, () => {
    let current: SpoolHarness | null = null;
    beforeEach(() => {
      current = harness();
    });
    afterEach(async () => {
      await current?.dispose();
      current = null;
    });
    const open: OpenSpool = (options) => {
      if (current === null) throw new Error('no spool harness (used outside a test?)');
      return current.open(options);
    };
    describe('accept', () => acceptContract(open));
    describe('claims and attempts', () => attemptContract(open));
    describe('operator actions', () => adminContract(open));
    describe('listing and counts', () => queryContract(open));
    describe('restart and housekeeping', () => lifecycleContract(open));
    describe('delivery events', () => eventsContract(open));
    describe('per-domain lanes (mx)', () => laneContract(open));
  });
}
