// PLACEHOLDER until the read path lands (helper pg-read replaces this whole file).
import { RelayError } from '../../errors.js';
import type { NodeRecord, TargetReport } from '../types.js';
import type { PgContext } from './context.js';

/** A node is alive while its heartbeat is younger than this. */
export const NODE_ALIVE_MS = 15_000;
export const HEARTBEAT_INTERVAL_MS = 5000;
export const registerNode = (_ctx: PgContext, _facts: { host: string; pid: number; version: string }): Promise<void> => Promise.resolve();
export const heartbeat = (_ctx: PgContext, _targets: Readonly<Record<string, TargetReport>>): Promise<void> => Promise.resolve();
export const listNodes = (_ctx: PgContext): Promise<NodeRecord[]> => Promise.reject(new RelayError('ONWARD_ERR_INTERNAL', 'postgres spool: nodes is not built yet'));
