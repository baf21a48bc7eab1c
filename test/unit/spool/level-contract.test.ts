/** The spool contract (test/contract) on the LevelDB backend in a temp directory. */
import { LevelSpool, type Spool } from '../../../src/spool/index.js';
import { describeSpoolContract, type SpoolHarness } from '../../contract/spool-contract.js';
import { Teardown } from '../../helpers/common.js';

const DAY = 86_400_000;

function levelHarness(): SpoolHarness {
  const teardown = new Teardown();
  const dir = teardown.tempDir('spool-contract');
  return {
    async open(options = {}): Promise<Spool> {
      const spool = await LevelSpool.open({
        path: dir,
        dedupWindowMs: options.dedupWindowMs ?? DAY,
        retainFinishedMs: options.retainFinishedMs ?? 7 * DAY,
        // Housekeeping only when the test sweeps (leases are recovered at open: leaseMs has no meaning here).
        janitorIntervalMs: DAY,
      });
      teardown.add(() => spool.close()); // closing twice is harmless
      return spool;
    },
    dispose: () => teardown.run(),
  };
}

describeSpoolContract('level', levelHarness);
