/**
 * What every spool command does, independent of transport: the admin API serves it from
 * the running relay, and the CLI uses it directly on a stopped spool — one implementation,
 * so online and offline answers are the same.
 */
import type { BounceReporter } from '../bounce/index.js';
import { dsnStatusFor } from '../bounce/index.js';
import { localReply } from '../delivery/index.js';
import { RelayError } from '../errors.js';
import type { EventBuilder } from '../events/index.js';
import type { Logger } from '../log.js';
import { headerEnd, headerFields } from '../message/headers.js';
import { parseListArgs, type ListArgs } from './list-args.js';
import { checkId } from './check-id.js';
import { type CheckReport, type MessageRecord, type MessageState, type Spool } from '../spool/index.js';
import { domainsView, listEntry, nodeView, showView, statsView, type DomainStatus, type ListEntry, type NodeView, type ShowView, type StatsView, type TargetStatus } from './views.js';

import { runBulk, type BulkRequest, type BulkResult } from './bulk.js';
import type { SpoolAction } from './spool-actions.js';

export { SPOOL_ACTIONS, type SpoolAction } from './spool-actions.js';

export interface ActionResult {
  readonly id: string;
  readonly state: MessageState;
}

export interface SpoolAdmin {
  stats(): Promise<StatsView>;
  /** Listing options are validated here (ONWARD_ERR_BAD_ARGS names the bad one). */
  list(args: ListArgs): AsyncIterable<ListEntry>;
  show(id: string): Promise<ShowView>;
  body(id: string): Promise<Buffer>;
  /** Applies one action to one message; unknown ids are ONWARD_ERR_NOT_FOUND. */
  act(action: SpoolAction, id: string, actor: string): Promise<ActionResult>;
  /** `spool check [--repair]`: the spool's invariants (repair only on a stopped spool). */
  check(repair: boolean, onProgress?: (scanned: number) => void): Promise<CheckReport>;
  /** `retry --all [--target T]`: every waiting message (of that target) due now. */
  retryAll(target: string | undefined, actor: string): Promise<{ count: number }>;
  /** One action on every message the filter matches (SPEC 12), a page at a time; validated by parseBulkRequest. */
  bulk(request: BulkRequest, actor: string): Promise<BulkResult>;
  /** `spool nodes`: the nodes of a shared spool; null for a spool only one process opens (level). */
  nodes(): Promise<NodeView[] | null>;
  close(): Promise<void>;
}

const OPERATOR_BOUNCE = localReply('bounced by the operator');


export interface LocalSpoolAdminDeps {
  readonly spool: Spool;
  readonly reporter: BounceReporter;
  /** Builds the `failed` events (reason `operator`) an operator bounce writes with it; absent: none. */
  readonly events?: Pick<EventBuilder, 'forGiveUp'> | null;
  readonly logger: Logger;
  /** Every configured target, so stats name the idle ones too. */
  /** The configured targets now (a reload may add or remove some). */
  readonly targetNames: () => readonly string[];
  /** Live target state when the relay runs; null for a stopped spool. */
  readonly targetStatus: (() => readonly TargetStatus[]) | null;
  /** mx targets' per-domain live state (the running relay only). */
  readonly domainStatus?: () => readonly DomainStatus[];
  /** Close the spool with the admin (the CLI's own spool), not when the relay owns it. */
  readonly closeSpool: boolean;
  /** Told of every DSN an operator bounce queues (metrics). */
  readonly onDsn?: (action: 'failed') => void;
}

export class LocalSpoolAdmin implements SpoolAdmin {
  private readonly spool: Spool;
  private readonly reporter: BounceReporter;
  private readonly logger: Logger;
  private readonly targetStatus: (() => readonly TargetStatus[]) | null;

  constructor(private readonly deps: LocalSpoolAdminDeps) {
    this.spool = deps.spool;
    this.reporter = deps.reporter;
    this.logger = deps.logger;
    this.targetStatus = deps.targetStatus;
  }

  async stats(): Promise<StatsView> {
    const [stats, nodes] = await Promise.all([this.spool.stats(), this.spool.nodes()]);
    const view = statsView(stats, this.deps.targetNames(), this.targetStatus?.() ?? null, Date.now(), nodes);
    const domains = this.deps.domainStatus?.() ?? [];
    return domains.length > 0 ? { ...view, domains: domainsView(domains) } : view;
  }

  async nodes(): Promise<NodeView[] | null> {
    const nodes = await this.spool.nodes();
    return nodes === null ? null : nodes.map(nodeView);
  }

  async *list(args: ListArgs): AsyncIterable<ListEntry> {
    for await (const { message, deliveries } of this.spool.list(parseListArgs(args))) yield listEntry(message, deliveries);
  }

  async show(id: string): Promise<ShowView> {
    checkId(id);
    const message = await this.spool.getMessage(id);
    if (!message) throw notFound(id);
    const body = await this.spool.getBody(id);
    // An event's body is its JSON, not a mail: no header section.
    const headers = body && message.eventOf === null ? headerFields(body.subarray(0, headerEnd(body)).toString('utf8')) : [];
    return showView(message, await this.spool.getDeliveries(id), headers);
  }

  async body(id: string): Promise<Buffer> {
    checkId(id);
    const body = await this.spool.getBody(id);
    if (body) return body;
    const message = await this.spool.getMessage(id);
    throw message
      ? new RelayError('ONWARD_ERR_NOT_FOUND', `message ${id} is ${message.state}; its body is no longer kept`)
      : notFound(id);
  }

  async act(action: SpoolAction, id: string, actor: string): Promise<ActionResult> {
    checkId(id);
    const message = await this.apply(action, id);
    this.logger.info({ queueId: id, action, actor, state: message.state }, `spool ${action}`);
    return { id, state: message.state };
  }

  async bulk(request: BulkRequest, actor: string): Promise<BulkResult> {
    const result = await runBulk(this.spool, request, (id) => this.apply(request.action, id));
    this.logger.info({ action: request.action, filter: request.filter, dryRun: request.dryRun, matched: result.matched, changed: result.changed, actor }, `spool ${request.action} (bulk)`);
    return result;
  }

  /** One action on one message, returning it afterwards (act logs it; a bulk run logs once). */
  private async apply(action: SpoolAction, id: string): Promise<MessageRecord> {
    let dsnQueued = false;
    const message =
      action === 'bounce'
        ? await this.spool.giveUp(id, OPERATOR_BOUNCE, async (m, failed, body, given) => {
            // Written in the bounce's own batch: the events can neither be lost nor outlive it.
            const events = this.deps.events?.forGiveUp(m, given, OPERATOR_BOUNCE, Date.now()) ?? [];
            if (m.sender === '') return { dsn: null, events };
            const dsn = await this.reporter.buildMessage(
                  m.id,
                  m.sender,
                  m.receivedAt,
                  body ?? Buffer.alloc(0),
                  failed.map((r) => ({
                    address: r.address,
                    action: 'failed' as const,
                    status: dsnStatusFor('expired', r.lastReply),
                    reply: r.lastReply,
                    lastAttemptAt: null,
                  })),
                  Date.now(),
                );
            dsnQueued = dsn !== null;
            return { dsn, events };
          })
        : await this.spool.act(id, action);
    if (action === 'bounce' && dsnQueued) this.deps.onDsn?.('failed');
    return message;
  }

  async check(repair: boolean, onProgress?: (scanned: number) => void): Promise<CheckReport> {
    if (repair && this.targetStatus !== null) {
      throw new RelayError('ONWARD_ERR_BAD_ARGS', 'spool check --repair needs the relay stopped (it would race live writes); run it again once onward serve has exited');
    }
    const report = await this.spool.check(repair, onProgress);
    if (repair) this.logger.info({ action: 'check', repair, counts: report.counts }, 'spool check --repair');
    return report;
  }

  async retryAll(target: string | undefined, actor: string): Promise<{ count: number }> {
    const { matched } = await this.bulk({ action: 'retry', filter: { state: 'queued,deferred', ...(target === undefined ? {} : { target }) }, dryRun: false }, actor);
    return { count: matched };
  }

  async close(): Promise<void> {
    if (this.deps.closeSpool) await this.spool.close();
  }
}

function notFound(id: string): RelayError {
  return new RelayError('ONWARD_ERR_NOT_FOUND', `no message with id ${id}`);
}
