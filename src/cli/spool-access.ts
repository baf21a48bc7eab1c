import { RemoteSpoolAdmin } from '../admin/client.js';
import type { SpoolAdmin } from '../admin/spool-admin.js';
import type { Config } from '../config/types.js';
import { RelayError, isRelayError } from '../errors.js';

/** A CLI waits this long at most for another offline command to release the spool. */
const LOCK_WAIT_LIMIT_MS = 10 * 60_000;

/**
 * Online when a relay answers on the admin address (never touch its LevelDB then);
 * otherwise open the spool directory directly. LevelDB's lock guarantees one writer:
 * if the relay starts meanwhile, it waits for us to close.
 */
export async function openSpoolAdmin(config: Config): Promise<{ admin: SpoolAdmin; online: boolean }> {
  const remote = new RemoteSpoolAdmin(config.admin);
  if (await remote.reachable()) return { admin: remote, online: true };
  // Loaded only for a stopped spool: keeps the online CLI quick to start.
  const [{ LocalSpoolAdmin }, { BounceReporter }, { EventBuilder }, { createLogger }, { createRouter }, { openSpool }] = await Promise.all([
    import('../admin/spool-admin.js'),
    import('../bounce/index.js'),
    import('../events/index.js'),
    import('../log.js'),
    import('../routing/index.js'),
    import('../app/spool.js'),
  ]);
  const deadline = Date.now() + LOCK_WAIT_LIMIT_MS;
  let told = false;
  for (;;) {
    try {
      const spool = await openSpool(config, { role: 'cli' });
      // Offline actions are logged to stderr, like the relay's own log lines.
      const logger = createLogger('info', process.stderr).child({ component: 'spool-admin' });
      const reporter = new BounceReporter({ config, route: createRouter(config.routes, config.targets), logger });
      const events = new EventBuilder(config); // an offline operator bounce reports `failed` events too
      const admin = new LocalSpoolAdmin({ spool, reporter, events, logger, targetNames: () => Object.keys(config.targets), targetStatus: null, closeSpool: true });
      return { admin, online: false };
    } catch (err) {
      if (isRelayError(err, 'ONWARD_ERR_SPOOL_UNAVAILABLE')) {
        throw new RelayError(
          'ONWARD_ERR_SPOOL_UNAVAILABLE',
          `no relay answers on the admin API at ${config.admin.host}:${config.admin.port}, and ${err.message}`,
          { cause: err },
        );
      }
      if (!isRelayError(err, 'ONWARD_ERR_SPOOL_LOCKED')) throw err;
      // Another process holds the spool: a relay that is starting (use its API once it
      // answers) or another offline command (wait our turn; never a lock error).
      if (await remote.reachable()) return { admin: remote, online: true };
      if (Date.now() > deadline) {
        throw new RelayError('ONWARD_ERR_SPOOL_LOCKED', `spool ${config.spool.path} stayed in use by another process for ${LOCK_WAIT_LIMIT_MS / 60_000} minutes`, { cause: err });
      }
      if (!told) process.stderr.write(`onward: the spool is in use by another onward command; waiting for it…\n`);
      told = true;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
