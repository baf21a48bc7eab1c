import { RelayError } from '../errors.js';
import { isQueueId } from '../spool/ids.js';

/** Ids are checked before any lookup, so a typo is "invalid id", not a scan. */
export function checkId(id: string): void {
  if (!isQueueId(id)) throw new RelayError('ONWARD_ERR_BAD_ID', `invalid message id "${id}" (expected 15 characters 0-9A-Z)`);
}
