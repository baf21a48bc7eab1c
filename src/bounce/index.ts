export { buildDsn, dsnStatusFor } from './dsn.js';
export type { DsnInput, DsnRecipient } from './dsn.js';
export { BounceReporter, type BounceReporterDeps } from './reporter.js';
