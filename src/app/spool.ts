/**
 * Which spool backend a config names, opened for the relay or for an offline CLI command.
 * The only place outside `src/spool/` that knows the backends exist.
 */
import os from 'node:os';
import type { Config } from '../config/types.js';
import { RelayError } from '../errors.js';
import type { Logger } from '../log.js';
import { LevelSpool, openPostgresSpool, SpoolCapacity, type Spool } from '../spool/index.js';

export interface OpenSpoolOptions {
  /** `relay`: the serving process (creates the store, runs housekeeping); `cli`: an operator command on a stopped spool. */
  readonly role: 'relay' | 'cli';
  /** level, with role `cli`: create the directory when missing (`spool transfer`'s target). The relay always does. */
  readonly create?: boolean;
  readonly logger?: Logger;
  /** level: how long to wait for another process to let go of the directory. */
  readonly lockWaitMs?: number;
  readonly onLockWait?: () => void;
}

/** This process's name in a cluster: `nodeId`, or `<hostname>-<pid>`. */
export function nodeIdOf(config: Config): string {
  return config.nodeId ?? `${os.hostname()}-${process.pid}`;
}

export async function openSpool(config: Config, options: OpenSpoolOptions): Promise<Spool> {
  switch (config.spool.backend) {
    case 'level':
      return LevelSpool.open({
        path: config.spool.path,
        dedupWindowMs: config.dedup.windowMs,
        retainFinishedMs: config.spool.retainFinishedMs,
        groupCommit: config.spool.groupCommit,
        ...(options.role === 'cli' && options.create !== true ? { create: false } : {}),
        ...(options.lockWaitMs !== undefined ? { lockWaitMs: options.lockWaitMs } : {}),
        ...(options.onLockWait ? { onLockWait: options.onLockWait } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
      });
    case 'postgres':
      if (config.spool.url === null) throw new RelayError('ONWARD_ERR_CONFIG_INVALID', 'spool.url is required with spool.backend: postgres');
      return openPostgresSpool({
        url: config.spool.url,
        schema: config.spool.schema,
        pool: config.spool.pool,
        leaseMs: config.spool.leaseMs,
        groupCommit: config.spool.groupCommit,
        nodeId: nodeIdOf(config),
        exclusiveNodeId: config.nodeId !== null,
        dedupWindowMs: config.dedup.windowMs,
        retainFinishedMs: config.spool.retainFinishedMs,
        role: options.role,
        ...(options.logger ? { logger: options.logger } : {}),
      });
  }
}

/** What may refuse a new message before it is written: an unavailable store, the queue bound, and free disk for a local spool. */
export function spoolCapacity(config: Config, spool: Spool): SpoolCapacity {
  return new SpoolCapacity({
    diskPath: config.spool.backend === 'level' ? config.spool.path : null,
    minFreeDiskBytes: config.spool.minFreeDiskBytes,
    maxQueued: config.spool.maxQueued,
    unfinished: () => spool.unfinishedCount(),
    available: () => spool.available(),
  });
}
