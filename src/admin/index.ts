export { AdminServer, type AdminServerDeps } from './server.js';
export { RelayMetrics } from './metrics.js';
export { checkId } from './check-id.js';
export { LocalSpoolAdmin, SPOOL_ACTIONS, type SpoolAdmin, type SpoolAction, type ActionResult } from './spool-admin.js';
export { RemoteSpoolAdmin } from './client.js';
export { parseListArgs, type ListArgs } from './list-args.js';
export type { ListEntry, NodeView, ShowView, StatsView } from './views.js';
