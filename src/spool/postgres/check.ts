// PLACEHOLDER until the read path lands (helper pg-read replaces this whole file).
import { RelayError } from '../../errors.js';
import type { CheckReport } from '../types.js';
import type { PgContext } from './context.js';

export const checkSpool = (_ctx: PgContext, _repair: boolean, _onProgress?: (scanned: number) => void): Promise<CheckReport> =>
  Promise.reject(new RelayError('ONWARD_ERR_INTERNAL', 'postgres spool: check is not built yet'));
