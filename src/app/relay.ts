import type { AddressInfo } from 'node:net';
import type { Config } from '../config/types.js';
import { BounceReporter } from '../bounce/index.js';
import { DeliveryScheduler } from '../delivery/index.js';
import type { Logger } from '../log.js';
import { createRouter } from '../routing/index.js';
import { SmtpIngress } from '../smtp/index.js';
import { LevelSpool, SpoolCapacity } from '../spool/index.js';

export interface Relay {
  readonly config: Config;
  readonly spool: LevelSpool;
  readonly ingress: SmtpIngress;
  readonly scheduler: DeliveryScheduler;
  /** Bound SMTP listener addresses, in config order (port 0 resolves here). */
  readonly smtpAddresses: readonly AddressInfo[];
  /** Graceful stop: ingress, then deliveries (up to shutdownGrace), then the spool. Idempotent. */
  close(): Promise<void>;
}

/** The composition root: builds every component from the config and starts them. */
export async function startRelay(config: Config, logger: Logger): Promise<Relay> {
  const spool = await LevelSpool.open({
    path: config.spool.path,
    dedupWindowMs: config.dedup.windowMs,
    retainFinishedMs: config.spool.retainFinishedMs,
    groupCommit: config.spool.groupCommit,
  });
  const capacity = new SpoolCapacity({
    path: config.spool.path,
    minFreeDiskBytes: config.spool.minFreeDiskBytes,
    maxQueued: config.spool.maxQueued,
    unfinished: () => spool.unfinishedCount(),
  });
  const router = createRouter(config.routes);
  const ingress = new SmtpIngress({ config, spool, capacity, router, logger });
  const reporter = new BounceReporter({ config, route: router, logger });
  const scheduler = new DeliveryScheduler({ config, spool, logger, reporter });
  let smtpAddresses: AddressInfo[];
  try {
    await scheduler.start();
    smtpAddresses = await ingress.start();
  } catch (err) {
    await ingress.close(0);
    await scheduler.stop(0);
    await spool.close();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    config,
    spool,
    ingress,
    scheduler,
    smtpAddresses,
    close() {
      closing ??= (async () => {
        const deadline = Date.now() + config.shutdownGraceMs;
        await ingress.close(config.shutdownGraceMs);
        await scheduler.stop(Math.max(0, deadline - Date.now()));
        await spool.close();
      })();
      return closing;
    },
  };
}
