/**
 * `onward spool migrate`: creates or upgrades a shared spool's schema (SPEC 9) without
 * starting a node, so an operator can prepare the database (or check it) before a rollout.
 * Exit 0 done or nothing to do · 1 the schema is newer than this onward · 2 the database
 * cannot be used. The password never reaches the output: every URL and driver message is redacted.
 */
import type { CommandModule } from 'yargs';
import type { Config } from '../config/index.js';
import { isRelayError } from '../errors.js';
import { EXIT, loadConfigOrExit, type GlobalArgs } from './common.js';

export const migrateCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'migrate',
  describe: "create or upgrade a shared (postgres) spool's schema",
  handler: async (args) => {
    const config = loadConfigOrExit(args);
    const { code, text } = await migrateSpool(config);
    (code === EXIT.ok ? process.stdout : process.stderr).write(`${code === EXIT.ok ? '' : 'onward: '}${text}\n`);
    process.exitCode = code;
  },
};

async function migrateSpool(config: Config): Promise<{ code: number; text: string }> {
  const { spool } = config;
  if (spool.backend === 'level' || spool.url === null) {
    return { code: EXIT.ok, text: `the level backend (${spool.path}) has no schema to migrate; nothing to do` };
  }
  const url = spool.url;
  // Loaded only here: every other command starts without the PostgreSQL driver.
  const { checkServer, createPool, migrate, redactText, redactUrl, schemaVersion, SCHEMA_VERSION } = await import('../spool/postgres/index.js');
  // One connection: the migration is one transaction.
  const pool = createPool({ url, pool: 1, applicationName: 'onward spool migrate' });
  try {
    await checkServer(pool, url);
    // Asked first so that a newer schema is a user error (upgrade onward), not an outage.
    const found = await schemaVersion(pool, spool.schema);
    if (found > SCHEMA_VERSION) {
      return {
        code: EXIT.user,
        text: `schema ${spool.schema} at ${redactUrl(url)} is at version ${found}, newer than this onward's ${SCHEMA_VERSION}: upgrade onward to migrate it`,
      };
    }
    const result = await migrate(pool, spool.schema);
    const text =
      result.applied.length === 0
        ? `schema ${spool.schema}: already at version ${result.to}`
        : `schema ${spool.schema}: version ${result.from} → ${result.to} (applied ${result.applied.join(', ')})`;
    return { code: EXIT.ok, text };
  } catch (err) {
    const message = redactText(err instanceof Error ? err.message : String(err), url);
    if (isRelayError(err)) return { code: err.exit, text: message };
    // A driver error (permission denied, connection lost mid-way): the database is not usable as configured.
    return { code: EXIT.unavailable, text: `PostgreSQL spool at ${redactUrl(url)}: migration failed: ${message}` };
  } finally {
    await pool.end().catch(() => undefined);
  }
}
