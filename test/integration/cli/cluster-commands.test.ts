/**
 * The operator side of the shared spool (SPEC 1, 9): `onward spool migrate` against a real
 * PostgreSQL (fresh schema, nothing to do, a newer schema, an unreachable server), `spool
 * nodes` on a level spool online and offline, and the database password (from
 * `${PGPASSWORD}`) never printed by check-config or any error of these commands.
 * Every command is the real `bin/onward` as a child process.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { closedPort } from '../../helpers/common.js';
import { adminRequest, makeCliEnv, runCli, startServe, useCliTeardown, type CliEnv, type CliResult } from '../../helpers/cli.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { MIGRATIONS } from '../../../src/spool/postgres/migrations.js';

/** The schema version this onward migrates to. */
const LATEST = Math.max(...MIGRATIONS.map((m) => m.version));

describe('spool nodes and spool migrate on a level spool', () => {
  const cleanup = useCliTeardown();
  let env: CliEnv;

  beforeAll(async () => {
    env = await makeCliEnv();
    cleanup.add(() => env.remove());
    env.writeConfig({ targets: { outbox: { type: 'file', path: join(env.dir, 'outbox') } }, routes: [{ match: '*', target: 'outbox' }] });
  });

  it('says a running level relay is not a shared spool, and prints [] with --json', async () => {
    const relay = await startServe(env);
    cleanup.add(() => relay.kill());
    const human = await runCli(env, ['spool', 'nodes']);
    expect(human).toMatchObject({ code: 0, stderr: '' });
    expect(human.stdout).toBe(`the spool is a level spool (${env.spoolPath}), not a shared spool: it has no nodes\n`);
    const json = await runCli(env, ['spool', 'nodes', '--json']);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(json.stdout)).toEqual([]);
    // The route behind it: null nodes for a spool only one process opens.
    const api = await adminRequest(env, '/api/spool/nodes');
    expect(api.status).toBe(200);
    expect(JSON.parse(api.text)).toEqual({ nodes: null });
    // No `nodes` field in stats for a level spool.
    const stats = JSON.parse((await runCli(env, ['spool', 'stats', '--json'])).stdout) as Record<string, unknown>;
    expect(stats['source']).toBe('relay');
    expect('nodes' in stats).toBe(false);
    expect(await relay.stop()).toBe(0);
  });

  it('gives the same answers on the stopped spool', async () => {
    const human = await runCli(env, ['spool', 'nodes']);
    expect(human).toMatchObject({ code: 0, stdout: `the spool is a level spool (${env.spoolPath}), not a shared spool: it has no nodes\n` });
    const json = await runCli(env, ['spool', 'nodes', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([]);
  });

  it('has no schema to migrate: says so and exits 0', async () => {
    const r = await runCli(env, ['spool', 'migrate']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`the level backend (${env.spoolPath}) has no schema to migrate; nothing to do\n`);
  });
});

describePg('spool migrate and check-config with a postgres spool', () => {
  const pg = usePostgres();
  const cleanup = useCliTeardown();
  let env: CliEnv;

  beforeAll(async () => {
    env = await makeCliEnv();
    cleanup.add(() => env.remove());
  });

  /** Writes a postgres config whose URL takes the password from ${PGPASSWORD}. */
  function writePgConfig(options: { port?: number; schema?: string } = {}): void {
    const doc = {
      listen: [{ host: '127.0.0.1', port: env.smtpPort }],
      admin: { host: '127.0.0.1', port: env.adminPort },
      log: { level: 'warn' },
      spool: {
        backend: 'postgres',
        url: `postgres://onward:\${PGPASSWORD}@127.0.0.1:${options.port ?? pg().port}/${pg().database}`,
        schema: options.schema ?? 'onward',
      },
      nodeId: 'relay-test',
      targets: { outbox: { type: 'file', path: join(env.dir, 'outbox') } },
      routes: [{ match: '*', target: 'outbox' }],
    };
    writeFileSync(env.configPath, stringify(doc));
  }

  const withPassword = (password: string = pg().password): { env: NodeJS.ProcessEnv } => ({ env: { PGPASSWORD: password } });

  function expectNoSecret(r: CliResult, secret: string): void {
    expect(r.stdout).not.toContain(secret);
    expect(r.stderr).not.toContain(secret);
  }

  it('creates the schema from nothing, then finds it current', async () => {
    writePgConfig({ schema: 'onward' });
    const first = await runCli(env, ['spool', 'migrate'], withPassword());
    expect(first).toMatchObject({ code: 0, stderr: '', stdout: `schema onward: version 0 → ${String(LATEST)} (applied ${MIGRATIONS.map((m) => m.version).join(', ')})\n` });
    const tables = await pg().sql(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'onward'`);
    expect((tables.rows[0] as { n: number }).n).toBeGreaterThan(1);
    const again = await runCli(env, ['spool', 'migrate'], withPassword());
    expect(again).toMatchObject({ code: 0, stderr: '', stdout: `schema onward: already at version ${String(LATEST)}\n` });
    expectNoSecret(first, pg().password);
  });

  it('refuses a schema newer than this onward with exit 1, naming both versions', async () => {
    writePgConfig({ schema: 'future' });
    expect((await runCli(env, ['spool', 'migrate'], withPassword())).code).toBe(0);
    await pg().sql(`INSERT INTO future.onward_schema (version, name) VALUES (${String(LATEST + 1)}, 'from a newer onward')`);
    const r = await runCli(env, ['spool', 'migrate'], withPassword());
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`schema future .* is at version ${String(LATEST + 1)}, newer than this onward's ${String(LATEST)}`));
    expectNoSecret(r, pg().password);
    // A node refuses to start on it too: exit 1 (a config problem, not an outage).
    const serve = await runCli(env, ['serve'], withPassword());
    expect(serve.code).toBe(1);
    expect(serve.stdout + serve.stderr).toContain('newer than this onward knows');
    expectNoSecret(serve, pg().password);
    // Nothing was changed: still the newer version.
    const v = await pg().sql('SELECT max(version) AS v FROM future.onward_schema');
    expect((v.rows[0] as { v: number }).v).toBe(LATEST + 1);
  });

  it('exits 2 when the database is unreachable, naming the server but never the password', async () => {
    const port = await closedPort();
    writePgConfig({ port });
    const r = await runCli(env, ['spool', 'migrate'], withPassword());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`postgres://onward:***@127.0.0.1:${port}/${pg().database}`);
    expectNoSecret(r, pg().password);
  });

  it('exits 2 on a wrong password without printing it', async () => {
    writePgConfig();
    const wrong = 'not-the-password-51e7';
    const r = await runCli(env, ['spool', 'migrate'], withPassword(wrong));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/password authentication failed/);
    expectNoSecret(r, wrong);
  });

  it('check-config prints the spool URL with the password masked', async () => {
    writePgConfig();
    const r = await runCli(env, ['check-config'], withPassword());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`postgres://onward:***@127.0.0.1:${pg().port}/${pg().database}`);
    expect(r.stdout).toContain('node relay-test');
    expectNoSecret(r, pg().password);
  });
});
