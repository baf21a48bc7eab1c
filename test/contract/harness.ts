/** What a spool backend gives the contract suite: a fresh empty store per test, opened (and reopened) as a Spool. */
import type { Spool } from '../../src/spool/index.js';

export interface ContractSpoolOptions {
  /** Default one day. */
  readonly dedupWindowMs?: number;
  /** Default seven days. */
  readonly retainFinishedMs?: number;
  /**
   * How long a claim lasts without renewal, where leases expire (a shared backend); default
   * 30 s. A backend that recovers its leases at open ignores it.
   */
  readonly leaseMs?: number;
}

export interface SpoolHarness {
  /**
   * Opens a Spool on this test's store: empty at the first open, as the last spool left it at
   * the next (close first: a restart). Housekeeping should not run on its own during a test
   * where the backend allows turning it down, so that `sweep()` is what the sweep test sees.
   */
  open(options?: ContractSpoolOptions): Promise<Spool>;
  /** Closes every spool still open and removes the store. */
  dispose(): Promise<void>;
}

/** Called once per test (in beforeEach). */
export type SpoolHarnessFactory = () => SpoolHarness;

/** The open function of the current test's harness, as the contract groups use it. */
export type OpenSpool = (options?: ContractSpoolOptions) => Promise<Spool>;
