export type * from './types.js';
export { LevelSpool, type LevelSpoolOptions } from './level/level-spool.js';
export type { PostgresSpoolOptions } from './postgres/postgres-spool.js';
export { openPostgresSpool } from './postgres/lazy.js';
export { newQueueId, isQueueId, queueIdOfDelivery, laneOf, parseLane, recipientDomain } from './ids.js';
export { SpoolCapacity, type CapacityVerdict } from './capacity.js';
export type { ProblemKind } from './level/check.js';
