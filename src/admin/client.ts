import { RelayError, isErrorCode } from '../errors.js';
import type { AdminConfig } from '../config/types.js';
import { listArgsToQuery, type ListArgs } from './list-args.js';
import type { BulkRequest, BulkResult } from './bulk.js';
import type { ActionResult, SpoolAction, SpoolAdmin } from './spool-admin.js';
import type { ListEntry, NodeView, ShowView, StatsView } from './views.js';
import type { CheckReport } from '../spool/index.js';

const PROBE_TIMEOUT_MS = 1500;

/**
 * The CLI's view of a running relay: the same SpoolAdmin, over the admin API.
 * Errors come back typed (the API sends `{ error: { code, message } }`).
 */
export class RemoteSpoolAdmin implements SpoolAdmin {
  private readonly base: string;

  constructor(private readonly config: AdminConfig) {
    const host = config.host.includes(':') ? `[${config.host}]` : config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
    this.base = `http://${host}:${config.port}`;
  }

  /** True when a relay answers on the admin address. */
  async reachable(): Promise<boolean> {
    try {
      const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      await res.arrayBuffer();
      return res.ok;
    } catch {
      return false;
    }
  }

  stats(): Promise<StatsView> {
    return this.json<StatsView>('GET', '/api/spool/stats');
  }

  /** Streams the listing as the relay writes it (NDJSON). */
  async *list(args: ListArgs): AsyncIterable<ListEntry> {
    const res = await this.request('GET', `/api/spool/messages?${listArgsToQuery(args).toString()}`);
    if (!res.body) return;
    let pending = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line) yield JSON.parse(line) as ListEntry;
      }
    }
  }

  show(id: string): Promise<ShowView> {
    return this.json<ShowView>('GET', `/api/spool/messages/${encodeURIComponent(id)}`);
  }

  async body(id: string): Promise<Buffer> {
    const res = await this.request('GET', `/api/spool/messages/${encodeURIComponent(id)}/body`);
    return Buffer.from(await res.arrayBuffer());
  }

  act(action: SpoolAction, id: string): Promise<ActionResult> {
    return this.json<ActionResult>('POST', `/api/spool/messages/${encodeURIComponent(id)}/${action}`);
  }

  check(repair: boolean): Promise<CheckReport> {
    return this.json<CheckReport>('POST', `/api/spool/check${repair ? '?repair=1' : ''}`);
  }

  bulk(request: BulkRequest): Promise<BulkResult> {
    return this.json<BulkResult>('POST', '/api/spool/actions', request);
  }

  retryAll(target: string | undefined): Promise<{ count: number }> {
    const q = target === undefined ? '' : `?target=${encodeURIComponent(target)}`;
    return this.json<{ count: number }>('POST', `/api/spool/retry-all${q}`);
  }

  async nodes(): Promise<NodeView[] | null> {
    return (await this.json<{ nodes: NodeView[] | null }>('GET', '/api/spool/nodes')).nodes;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    return (await res.json()) as T;
  }

  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { 'x-onward-actor': 'cli' };
    if (this.config.token !== null) headers.authorization = `Bearer ${this.config.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    } catch (err) {
      throw new RelayError('ONWARD_ERR_ADMIN_UNREACHABLE', `relay admin API at ${this.base} is unreachable: ${String(err)}`, { cause: err });
    }
    if (res.ok) return res;
    const answer = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
    // A code this CLI does not know (a newer relay) still fails, as an internal error.
    const code = isErrorCode(answer?.error?.code) ? answer.error.code : 'ONWARD_ERR_INTERNAL';
    throw new RelayError(code, answer?.error?.message ?? `admin API answered HTTP ${res.status}`);
  }
}
