import { RemoteSpoolAdmin } from '../admin/client.js';
import type { SpoolAdmin } from '../admin/spool-admin.js';
import type { Config } from '../config/types.js';
import { RelayError, isRelayError } from '../errors.js';

/**
 * Online when a relay answers on the admin address (never touch its LevelDB then);
 * otherwise open the spool directory directly. LevelDB's lock guarantees one writer:
 * if the relay starts meanwhile, it waits for us to close.
 */
export async function openSpoolAdmin(config: Config): Promise<{ admin: SpoolAdmin; online: boolean }> {
  const remote = new RemoteSpoolAdmin(config.admin);
  if (await remote.reachable()) return { admin: remote, online: true };
  try {
    // Loaded only for a stopped spool: keeps the online CLI quick to start.
    const [{ LocalSpoolAdmin }, { BounceReporter }, { createLogger }, { createRouter }, { LevelSpool }] = await Promise.all([
      import('../admin/spool-admin.js'),
      import('../bounce/index.js'),
      import('../log.js'),
      import('../routing/index.js'),
      import('../spool/index.js'),
    ]);
    const spool = await LevelSpool.open({
      path: config.spool.path,
      dedupWindowMs: config.dedup.windowMs,
      retainFinishedMs: config.spool.retainFinishedMs,
      create: false,
      lockWaitMs: 2000,
    });
    // Offline actions are logged to stderr, like the relay's own log lines.
    const logger = createLogger('info', process.stderr).child({ component: 'spool-admin' });
    const reporter = new BounceReporter({ config, route: createRouter(config.routes), logger });
    return { admin: new LocalSpoolAdmin(spool, reporter, logger, null, true), online: false };
  } catch (err) {
    if (isRelayError(err, 'ONWARD_ERR_SPOOL_LOCKED') && (await remote.reachable())) return { admin: remote, online: true };
    if (isRelayError(err, 'ONWARD_ERR_SPOOL_LOCKED')) {
      throw new RelayError(
        'ONWARD_ERR_SPOOL_LOCKED',
        `spool ${config.spool.path} is in use by another process, and no relay answers on the admin API at ${config.admin.host}:${config.admin.port}`,
        { cause: err },
      );
    }
    if (isRelayError(err, 'ONWARD_ERR_SPOOL_UNAVAILABLE')) {
      throw new RelayError(
        'ONWARD_ERR_SPOOL_UNAVAILABLE',
        `no relay answers on the admin API at ${config.admin.host}:${config.admin.port}, and ${err.message}`,
        { cause: err },
      );
    }
    throw err;
  }
}
