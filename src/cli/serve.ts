import type { CommandModule } from 'yargs';
import type { Relay } from '../app/index.js';
import { loadConfig, resolveConfigPath } from '../config/index.js';
import { exitCodeFor, fail, loadConfigOrExit, type GlobalArgs } from './common.js';

/**
 * Runs the relay until SIGTERM/SIGINT (SIGHUP reloads the config). The first signal shuts down gracefully; a second
 * exits at once, which loses nothing acknowledged (every 250 was synced; in-flight
 * deliveries are leased and come back due on the next start).
 */
export const serveCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'serve',
  describe: 'run the relay (SMTP listeners, delivery, admin API)',
  handler: async (args) => {
    const config = loadConfigOrExit(args);
    const [{ startRelay, nodeIdOf }, { createLogger }] = await Promise.all([import('../app/index.js'), import('../log.js')]);
    // Every line names this node (SPEC 9): in a cluster, logs from many nodes land in one place.
    const logger = createLogger(config.log.level).child({ node: nodeIdOf(config) });
    // Handlers go in before anything listens: a signal during start-up is honoured once the
    // relay is up (graceful stop) instead of killing the process with the default action.
    let relay: Relay | null = null;
    let stopRequested: NodeJS.Signals | null = null;
    let signals = 0;
    const stop = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      if (!relay) {
        stopRequested = signal;
        return;
      }
      logger.info({ signal }, 'shutting down');
      relay.close().then(
        () => {
          logger.info('stopped');
          logger.flush();
          process.exitCode = 0;
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exitCode = 1;
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // SIGHUP: re-read the file; a config that does not validate is refused and the running one stays.
    process.on('SIGHUP', () => {
      if (!relay) return;
      const path = resolveConfigPath(args.config);
      try {
        const restartKeys = relay.reload(loadConfig(path));
        // Changes left unapplied are a warning: the operator has to act on them.
        if (restartKeys.length > 0) logger.warn({ config: path, needsRestart: restartKeys }, 'config reloaded; some changes need a restart');
        else logger.info({ config: path }, 'config reloaded');
      } catch (err) {
        logger.error({ config: path, err: { message: err instanceof Error ? err.message : String(err) } }, 'config reload rejected; the running config stays in force');
      }
    });
    try {
      relay = await startRelay(config, logger);
    } catch (err) {
      logger.fatal({ err }, 'cannot start');
      fail(err instanceof Error ? err.message : String(err), exitCodeFor(err));
    }
    const listening = relay.smtpAddresses.map((a) => `${a.address}:${a.port}`).join(', ');
    const spool = config.spool.backend === 'level' ? config.spool.path : `postgres schema ${config.spool.schema}`;
    const submission = relay.submissionAddress ? `${relay.submissionAddress.address}:${relay.submissionAddress.port}` : null;
    logger.info({ smtp: listening, ...(submission ? { submission } : {}), spool }, 'onward ready');
    if (stopRequested) {
      signals -= 1;
      stop(stopRequested);
    }
  },
};
