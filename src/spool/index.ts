export type * from './types.js';
export { LevelSpool, type LevelSpoolOptions } from './level/level-spool.js';
export { PostgresSpool, type PostgresSpoolOptions } from './postgres/postgres-spool.js';
export { newQueueId, isQueueId, queueIdOfDelivery, laneOf, parseLane, recipientDomain } from './ids.js';
export { SpoolCapacity, type CapacityVerdict } from './capacity.js';
export type { ProblemKind } from './level/check.js';
