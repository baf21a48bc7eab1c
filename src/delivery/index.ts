export type * from './types.js';
export { TransportHost } from './transport-host.js';
export { DeliveryScheduler, type EventReporter, type FailureReporter, type FailureReport, type SchedulerEvents } from './scheduler.js';
export type { AttemptOutcome, RecipientOutcome } from './attempt.js';
export { nextAttemptAt, isExpired } from './retry.js';
export { classifyHttpStatus, classifySmtpCode } from './classify.js';
export { localReply } from './results.js';
