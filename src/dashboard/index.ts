export { DashboardAssets, DASHBOARD_CSP, DASHBOARD_DIR } from './assets.js';
export { DashboardEvents, type DashboardEventsDeps, type LiveTargetStatus, type TargetRow, type Tick } from './events.js';
export { QueueHistory, HISTORY_CAPACITY, HISTORY_INTERVAL_MS, type QueueHistoryDeps, type Sample, type SampleTaken } from './history.js';
export { Dashboard, type DashboardHttp } from './http.js';
