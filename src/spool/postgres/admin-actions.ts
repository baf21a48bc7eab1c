// PLACEHOLDER until the read path lands (helper pg-read replaces this whole file).
import type { Reply } from '../../delivery/types.js';
import { RelayError } from '../../errors.js';
import type { AdminAction, MessageRecord, NewMessage, RecipientRecord } from '../types.js';
import type { PgContext } from './context.js';

const todo = (what: string): never => {
  throw new RelayError('ONWARD_ERR_INTERNAL', `postgres spool: ${what} is not built yet`);
};
export const act = (_ctx: PgContext, _queueId: string, _action: AdminAction): Promise<MessageRecord> => todo('act');
export const giveUp = (
  _ctx: PgContext,
  _queueId: string,
  _reason: Reply,
  _report: (message: MessageRecord, failed: readonly RecipientRecord[], body: Buffer | null) => Promise<NewMessage | null>,
): Promise<MessageRecord> => todo('giveUp');
