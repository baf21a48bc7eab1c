import { parseDuration } from '../config/index.js';
import { RelayError } from '../errors.js';
import { isQueueId, type ListFilter, type MessageState } from '../spool/index.js';

const STATES: readonly MessageState[] = ['queued', 'deferred', 'held', 'delivered', 'bounced', 'deleted'];

/** The listing options as strings (CLI flags or query parameters). */
export interface ListArgs {
  readonly state?: string | undefined;
  readonly target?: string | undefined;
  readonly sender?: string | undefined;
  readonly recipient?: string | undefined;
  readonly olderThan?: string | undefined;
  readonly messageId?: string | undefined;
  /** The cursor: a queue id, only messages listed after it. */
  readonly after?: string | undefined;
  readonly limit?: string | number | undefined;
  /** `true`: list delivery events instead of messages (SPEC 11); default messages only. */
  readonly events?: string | boolean | undefined;
}

/** The listing options that select messages (what a bulk action's filter may hold). */
export const FILTER_KEYS = ['state', 'target', 'sender', 'recipient', 'olderThan', 'messageId'] as const;

/** Validates listing options; a bad one is ONWARD_ERR_BAD_ARGS naming the option. */
export function parseListArgs(args: ListArgs): ListFilter {
  const filter: { -readonly [K in keyof ListFilter]: ListFilter[K] } = {};
  if (args.state !== undefined && args.state !== '') {
    const states = args.state.split(',').map((s) => s.trim());
    for (const s of states) {
      if (s !== 'all' && !STATES.includes(s as MessageState)) {
        throw new RelayError('ONWARD_ERR_BAD_ARGS', `--state: unknown state "${s}" (expected ${STATES.join(', ')} or all)`);
      }
    }
    filter.states = states.includes('all') ? STATES : (states as MessageState[]);
  }
  if (args.target) filter.target = args.target;
  if (args.sender) filter.sender = args.sender;
  if (args.recipient) filter.recipient = args.recipient;
  if (args.messageId) filter.messageId = args.messageId.replace(/^<(.*)>$/, '$1');
  if (args.after) {
    if (!isQueueId(args.after)) throw new RelayError('ONWARD_ERR_BAD_ARGS', `--after: "${args.after}" is not a queue id`);
    filter.after = args.after;
  }
  if (args.olderThan) {
    try {
      filter.olderThanMs = parseDuration(args.olderThan);
    } catch (err) {
      throw new RelayError('ONWARD_ERR_BAD_ARGS', `--older-than: ${(err as Error).message}`);
    }
  }
  if (args.events !== undefined && args.events !== '' && args.events !== false && args.events !== 'false') {
    if (args.events !== true && args.events !== 'true') throw new RelayError('ONWARD_ERR_BAD_ARGS', `--events: expected true or false, got "${String(args.events)}"`);
    filter.events = true;
  }
  if (args.limit !== undefined && args.limit !== '') {
    const limit = Number(args.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new RelayError('ONWARD_ERR_BAD_ARGS', `--limit: expected a positive whole number, got "${args.limit}"`);
    filter.limit = limit;
  }
  return filter;
}

/** The same options as query parameters, for the admin API client. */
export function listArgsToQuery(args: ListArgs): URLSearchParams {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(args)) if (v !== undefined && v !== '') q.set(k, String(v));
  return q;
}
