/**
 * `onward spool transfer --to OTHER.yaml [--dry-run] [--json]` (SPEC 9): moves the unfinished
 * messages of this config's spool into the other config's spool. Both are opened directly
 * (offline); the loop is `transferQueue` (src/spool/transfer.ts).
 */
import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadConfig, type Config } from '../config/index.js';
import { RelayError, isRelayError } from '../errors.js';
import type { Spool } from '../spool/index.js';
import { transferQueue, type TransferProgress } from '../spool/transfer.js';
import { EXIT, exitCodeFor, fail, loadConfigOrExit, type GlobalArgs } from './common.js';

interface TransferArgs extends GlobalArgs {
  readonly to?: string;
  readonly 'dry-run'?: boolean;
  readonly json?: boolean;
}

/** Progress on stderr every this many messages. */
const PROGRESS_EVERY = 100;

/** Where a config's spool lives, comparable across two configs (a postgres URL without its password). */
function spoolIdentity(config: Config): string {
  if (config.spool.backend === 'level') {
    const path = resolve(config.spool.path);
    try {
      return `level:${realpathSync(path)}`;
    } catch {
      return `level:${path}`; // not created yet
    }
  }
  try {
    const u = new URL(config.spool.url ?? '');
    return `postgres:${u.hostname}:${u.port || '5432'}${u.pathname}#${config.spool.schema}`;
  } catch {
    return `postgres:${config.spool.url ?? ''}#${config.spool.schema}`;
  }
}

function where(config: Config): string {
  return config.spool.backend === 'level' ? `spool ${config.spool.path}` : `postgres spool (schema ${config.spool.schema})`;
}

/** A level spool that does not exist yet (a dry run into it has nothing to compare with). */
function levelSpoolMissing(config: Config): boolean {
  return config.spool.backend === 'level' && !existsSync(join(resolve(config.spool.path), 'CURRENT'));
}

/** Opens one side offline (a target is created when missing); a level spool a relay holds is refused with what to do instead. */
async function openSide(config: Config, side: 'source' | 'target', create: boolean): Promise<Spool> {
  const { openSpool } = await import('../app/spool.js');
  try {
    return await openSpool(config, { role: 'cli', create });
  } catch (err) {
    if (!isRelayError(err, 'ONWARD_ERR_SPOOL_LOCKED')) throw err;
    const instead = side === 'source' ? 'or move from a postgres spool, which running nodes share' : 'or move into a postgres spool';
    throw new RelayError(
      'ONWARD_ERR_SPOOL_LOCKED',
      `the ${side} ${where(config)} is in use by another process (a running relay?): stop it for the transfer, ${instead}`,
      { cause: err },
    );
  }
}

function summary(p: TransferProgress, dryRun: boolean): string {
  const n = `${p.moved} message${p.moved === 1 ? '' : 's'}`;
  return `${dryRun ? 'would move' : 'moved'} ${n} (${p.alreadyThere} already there, ${p.inFlightSkipped} in flight skipped)`;
}

export const transferCommand: CommandModule<GlobalArgs, TransferArgs> = {
  command: 'transfer',
  describe: "move the unfinished messages to another config's spool (level or postgres)",
  builder: (y) =>
    y.options({
      to: { type: 'string', demandOption: true, describe: 'the config file of the target spool' },
      'dry-run': { type: 'boolean', default: false, describe: 'count what would move; change nothing' },
      json: { type: 'boolean', default: false, describe: 'one JSON document for scripts' },
    }),
  handler: async (args) => {
    const source = loadConfigOrExit(args);
    const toPath = String(args.to);
    let target: Config;
    try {
      target = loadConfig(toPath);
    } catch (err) {
      fail(`--to ${toPath}: ${err instanceof Error ? err.message : String(err)}`, EXIT.user);
    }
    if (spoolIdentity(source) === spoolIdentity(target)) {
      fail(`--to ${toPath} names the same spool as the source (${where(source)}): nothing to move`, EXIT.user);
    }
    const dryRun = args['dry-run'] ?? false;
    const opened: Spool[] = [];
    try {
      const from = await openSide(source, 'source', false);
      opened.push(from);
      const to = dryRun && levelSpoolMissing(target) ? null : await openSide(target, 'target', !dryRun);
      if (to) opened.push(to);
      if (!args.json) process.stderr.write(`${dryRun ? 'counting' : 'moving'} the unfinished messages of the ${where(source)} to the ${where(target)}…\n`);
      const result = await transferQueue(from, to, {
        dryRun,
        progressEvery: PROGRESS_EVERY,
        onProgress: (p) => process.stderr.write(`  ${summary(p, dryRun)}\n`),
      });
      process.stdout.write(args.json ? JSON.stringify({ ...result, dryRun }) + '\n' : summary(result, dryRun) + '\n');
      process.exitCode = EXIT.ok;
    } catch (err) {
      process.stderr.write(`onward: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = exitCodeFor(err);
    } finally {
      await Promise.all(opened.map((s) => s.close()));
    }
  },
};
