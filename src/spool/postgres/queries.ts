// PLACEHOLDER until the read path lands (helper pg-read replaces this whole file).
import { RelayError } from '../../errors.js';
import type { DeliveryRecord, ListFilter, MessageRecord, MessageState, SpoolStats } from '../types.js';
import type { PgContext } from './context.js';

const todo = (what: string): never => {
  throw new RelayError('ONWARD_ERR_INTERNAL', `postgres spool: ${what} is not built yet`);
};
export const getMessage = (_ctx: PgContext, _queueId: string): Promise<MessageRecord | null> => todo('getMessage');
export const getDeliveries = (_ctx: PgContext, _queueId: string): Promise<DeliveryRecord[]> => todo('getDeliveries');
export const getBody = (_ctx: PgContext, _queueId: string): Promise<Buffer | null> => todo('getBody');
export const list = (_ctx: PgContext, _filter: ListFilter): AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }> => todo('list');
export const stats = (_ctx: PgContext): Promise<SpoolStats> => todo('stats');
export const countsByState = (_ctx: PgContext): Promise<Record<MessageState, number>> => todo('countsByState');
/** Messages not finished, counted in the database (index-only on messages_unfinished). */
export const countUnfinished = (_ctx: PgContext): Promise<number> => todo('countUnfinished');
/** Milliseconds from the database's now until the lane's earliest due delivery (<= 0: due), or null when none waits. */
export const nextDueIn = (_ctx: PgContext, _lane: string): Promise<number | null> => todo('nextDueIn');
export const lanes = (_ctx: PgContext): Promise<string[]> => todo('lanes');
