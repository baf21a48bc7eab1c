/**
 * Bulk actions (SPEC 12): one action on every message a listing filter matches, for the
 * dashboard, `POST /api/spool/actions` and `onward spool hold --recipient …`. The spool is read
 * a page at a time (a cursor, never the whole queue in memory) and each message is changed by
 * its own atomic spool write, so an interrupted run leaves every message valid and running it
 * again finishes the job (what is already done is matched, not changed).
 */
import { RelayError } from '../errors.js';
import type { MessageRecord, Spool } from '../spool/index.js';
import { FILTER_KEYS, parseListArgs, type ListArgs } from './list-args.js';
import { SPOOL_ACTIONS, type SpoolAction } from './spool-actions.js';

/** The filter of a bulk action: listing options (at least one), or `all` for the whole queue. */
export type BulkFilter = Pick<ListArgs, (typeof FILTER_KEYS)[number]> & { readonly all?: boolean };

export interface BulkRequest {
  readonly action: SpoolAction;
  readonly filter: BulkFilter;
  /** Count what matches, change nothing. */
  readonly dryRun: boolean;
}

export interface BulkResult {
  readonly matched: number;
  readonly changed: number;
  readonly dryRun?: true;
}

const PAGE = 500;
/** Messages of a page acted on at once: their writes share a group commit. */
const PARALLEL = 16;

/** Validates a bulk request from JSON or flags; a bad one is ONWARD_ERR_BAD_ARGS naming what is wrong. */
export function parseBulkRequest(body: unknown): BulkRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object { action, filter }');
  const { action, filter, dryRun, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw bad(`unknown field "${extra[0] ?? ''}" (expected action, filter, dryRun)`);
  if (typeof action !== 'string' || !(SPOOL_ACTIONS as readonly string[]).includes(action)) {
    throw bad(`action: expected one of ${SPOOL_ACTIONS.join(', ')}, got ${JSON.stringify(action ?? null)}`);
  }
  if (dryRun !== undefined && typeof dryRun !== 'boolean') throw bad('dryRun: expected true or false');
  return { action: action as SpoolAction, filter: parseBulkFilter(filter), dryRun: dryRun === true };
}

function parseBulkFilter(filter: unknown): BulkFilter {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) throw bad('filter: expected an object such as { "recipient": "*@example.org" } or { "all": true }');
  const out: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(filter as Record<string, unknown>)) {
    if (key === 'all') {
      if (typeof value !== 'boolean') throw bad('filter.all: expected true or false');
      out.all = value;
    } else if ((FILTER_KEYS as readonly string[]).includes(key)) {
      if (typeof value !== 'string') throw bad(`filter.${key}: expected a string`);
      if (value !== '') out[key] = value;
    } else {
      throw bad(`filter: unknown key "${key}" (expected ${FILTER_KEYS.join(', ')} or all)`);
    }
  }
  const result = out as BulkFilter;
  if (result.all !== true && !FILTER_KEYS.some((k) => result[k] !== undefined)) {
    throw bad('filter: name at least one of state, target, sender, recipient, olderThan, messageId — or { "all": true } for the whole queue');
  }
  parseListArgs(result); // bad globs, states or durations are refused before anything changes
  return result;
}

/**
 * Runs a bulk action. `apply` changes one message (the single-message action, without its
 * log line) and returns it afterwards; a message gone meanwhile (swept, deleted) is skipped.
 */
export async function runBulk(
  spool: Spool,
  request: BulkRequest,
  apply: (id: string) => Promise<MessageRecord>,
  onProgress?: (done: { matched: number; changed: number }) => void,
): Promise<BulkResult> {
  const base = parseListArgs(request.filter);
  let matched = 0;
  let changed = 0;
  let after: string | undefined;
  for (;;) {
    const page: { message: MessageRecord; dueAts: (number | null)[] }[] = [];
    for await (const { message, deliveries } of spool.list({ ...base, limit: PAGE, ...(after === undefined ? {} : { after }) })) {
      page.push({ message, dueAts: deliveries.map((d) => d.dueAt) });
    }
    const last = page[page.length - 1];
    if (last === undefined) break;
    after = last.message.id;
    matched += page.length;
    if (!request.dryRun) {
      for (let i = 0; i < page.length; i += PARALLEL) {
        const results = await Promise.all(page.slice(i, i + PARALLEL).map((entry) => changedBy(spool, request.action, entry, apply)));
        changed += results.filter(Boolean).length;
      }
    }
    onProgress?.({ matched, changed });
    if (page.length < PAGE) break;
  }
  return request.dryRun ? { matched, changed: 0, dryRun: true } : { matched, changed };
}

/** Whether the action moved the message: its state, a delivery's state, or (retry) a due time. */
async function changedBy(
  spool: Spool,
  action: SpoolAction,
  before: { message: MessageRecord; dueAts: (number | null)[] },
  apply: (id: string) => Promise<MessageRecord>,
): Promise<boolean> {
  let after: MessageRecord;
  try {
    after = await apply(before.message.id);
  } catch (err) {
    if (err instanceof RelayError && err.code === 'ONWARD_ERR_NOT_FOUND') return false;
    throw err;
  }
  if (after.state !== before.message.state) return true;
  if (JSON.stringify(after.deliveries) !== JSON.stringify(before.message.deliveries)) return true;
  if (action !== 'retry') return false;
  const dueAts = (await spool.getDeliveries(after.id)).map((d) => d.dueAt);
  return dueAts.some((at, i) => at !== before.dueAts[i]);
}

function bad(message: string): RelayError {
  return new RelayError('ONWARD_ERR_BAD_ARGS', message);
}
