export { checkServer, createPool, databaseNow, redactText, redactUrl, type PgConnectionOptions, type Queryable, type ServerFacts } from './connection.js';
export { MIGRATIONS, SCHEMA_VERSION, migrate, quoteSchema, requireCurrentSchema, schemaVersion, type MigrateResult, type Migration } from './migrations.js';
export { PostgresSpool, type PostgresSpoolOptions } from './postgres-spool.js';
