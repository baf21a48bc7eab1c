export type * from './types.js';
export { LevelSpool, type LevelSpoolOptions } from './level-spool.js';
export { newQueueId, isQueueId, queueIdOfDelivery } from './ids.js';
export { SpoolCapacity, type CapacityVerdict } from './capacity.js';
export { laneOf } from './keys.js';
export type { CheckReport, CheckProblem, ProblemKind } from './check.js';
