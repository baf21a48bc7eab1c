import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminConfig } from '../config/types.js';
import type { DashboardHttp } from '../dashboard/http.js';
import { ERROR_CODES, RelayError, isRelayError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { parseBulkRequest } from './bulk.js';
import { parseListArgs } from './list-args.js';
import type { RelayMetrics } from './metrics.js';
import { SPOOL_ACTIONS, type SpoolAction, type SpoolAdmin } from './spool-admin.js';

export interface AdminServerDeps {
  readonly config: AdminConfig;
  readonly admin: SpoolAdmin;
  readonly metrics: RelayMetrics;
  readonly ready: () => boolean;
  readonly logger: Logger;
  /** The page and its assets (open) and its event stream (behind the token); absent: no dashboard. */
  readonly dashboard?: DashboardHttp;
}

/** A bulk request is a filter, not data: anything bigger is a mistake. */
const MAX_JSON_BODY = 64 * 1024;

/** The request's JSON body (ONWARD_ERR_BAD_ARGS when it is too big or not JSON). */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BODY) throw new RelayError('ONWARD_ERR_BAD_ARGS', `the request body is over ${MAX_JSON_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new RelayError('ONWARD_ERR_BAD_ARGS', 'the request body is not JSON (expected { "action": …, "filter": { … } })');
  }
}

/** Probes that must answer without a token (container and orchestrator health checks). */
const OPEN_PATHS = new Set(['/healthz', '/readyz']);

/**
 * The admin HTTP API: health, metrics, and the JSON endpoints behind `onward spool …`.
 * Routes: GET /api/spool/stats · GET /api/spool/messages (NDJSON stream) ·
 * GET /api/spool/messages/:id · GET /api/spool/messages/:id/body ·
 * POST /api/spool/messages/:id/{retry,hold,release,delete,bounce} · POST /api/spool/retry-all ·
 * POST /api/spool/actions ({ action, filter, dryRun? } → { matched, changed }) ·
 * POST /api/spool/check[?repair=1] · GET /api/spool/nodes (`{ nodes }`, null for a level spool) ·
 * GET / and GET /dashboard/<file> (the dashboard, no token) · GET /api/dashboard/events (SSE)
 */
export class AdminServer {
  private readonly server: Server;
  private readonly log: Logger;

  constructor(private readonly deps: AdminServerDeps) {
    this.log = deps.logger.child({ component: 'admin' });
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.sendError(res, err));
    });
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.deps.config.port, this.deps.config.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  close(): Promise<void> {
    this.deps.dashboard?.close();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private authorised(req: IncomingMessage): boolean {
    const token = this.deps.config.token;
    if (token === null) return true;
    const given = Buffer.from(req.headers.authorization ?? '');
    const wanted = Buffer.from(`Bearer ${token}`);
    return given.length === wanted.length && timingSafeEqual(given, wanted);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const { dashboard } = this.deps;
    if (dashboard?.isAsset(req.method, path)) {
      if (dashboard.serveAsset(req, res, path)) return;
      return this.sendCode(res, 'ONWARD_ERR_NOT_FOUND', `no dashboard file ${path}`);
    }
    if (!OPEN_PATHS.has(path) && !this.authorised(req)) {
      return this.sendCode(res, 'ONWARD_ERR_UNAUTHORIZED', 'missing or wrong bearer token');
    }
    const { admin } = this.deps;
    const actor = `admin-api${req.headers['x-onward-actor'] ? ` (${String(req.headers['x-onward-actor'])})` : ''}`;
    if (req.method === 'GET' && path === '/healthz') return this.json(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz') {
      const ready = this.deps.ready();
      return this.json(res, ready ? 200 : 503, { ready });
    }
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': this.deps.metrics.registry.contentType });
      res.end(await this.deps.metrics.registry.metrics());
      return;
    }
    if (req.method === 'GET' && path === '/api/dashboard/events' && dashboard) return dashboard.events(req, res);
    if (req.method === 'GET' && path === '/api/spool/stats') return this.json(res, 200, await admin.stats());
    if (req.method === 'GET' && path === '/api/spool/nodes') return this.json(res, 200, { nodes: await admin.nodes() });
    if (req.method === 'GET' && path === '/api/spool/messages') return this.streamList(res, url.searchParams);
    if (req.method === 'POST' && path === '/api/spool/check') {
      return this.json(res, 200, await admin.check(url.searchParams.get('repair') === '1'));
    }
    if (req.method === 'POST' && path === '/api/spool/actions') {
      return this.json(res, 200, await admin.bulk(parseBulkRequest(await readJson(req)), actor));
    }
    if (req.method === 'POST' && path === '/api/spool/retry-all') {
      return this.json(res, 200, await admin.retryAll(url.searchParams.get('target') ?? undefined, actor));
    }
    const m = /^\/api\/spool\/messages\/([^/]+)(?:\/([a-z]+))?$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1] ?? '');
      const sub = m[2];
      if (req.method === 'GET' && sub === undefined) return this.json(res, 200, await admin.show(id));
      if (req.method === 'GET' && sub === 'body') {
        const body = await admin.body(id);
        res.writeHead(200, { 'content-type': 'message/rfc822', 'content-length': body.length });
        res.end(body);
        return;
      }
      if (req.method === 'POST' && sub !== undefined && (SPOOL_ACTIONS as readonly string[]).includes(sub)) {
        return this.json(res, 200, await admin.act(sub as SpoolAction, id, actor));
      }
    }
    this.sendCode(res, 'ONWARD_ERR_NOT_FOUND', `no route ${req.method ?? ''} ${path}`);
  }

  /** One JSON object per line, written as the spool is read: bounded memory at any spool size. */
  private async streamList(res: ServerResponse, query: URLSearchParams): Promise<void> {
    const args = {
      state: query.get('state') ?? undefined,
      target: query.get('target') ?? undefined,
      sender: query.get('sender') ?? undefined,
      recipient: query.get('recipient') ?? undefined,
      olderThan: query.get('olderThan') ?? undefined,
      messageId: query.get('messageId') ?? undefined,
      after: query.get('after') ?? undefined,
      limit: query.get('limit') ?? undefined,
      events: query.get('events') ?? undefined,
    };
    parseListArgs(args); // reject bad options with a 400 before the stream starts
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for await (const entry of this.deps.admin.list(args)) {
      if (res.destroyed) return;
      if (!res.write(JSON.stringify(entry) + '\n')) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  /** Answers with the code's HTTP status from the error table. */
  private sendCode(res: ServerResponse, code: ErrorCode, message: string): void {
    this.json(res, ERROR_CODES[code].status, { error: { code, message } });
  }

  private sendError(res: ServerResponse, err: unknown): void {
    const relayErr = isRelayError(err) ? err : undefined;
    if (relayErr === undefined || relayErr.status >= 500) this.log.error({ err }, 'admin request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.sendCode(res, relayErr?.code ?? 'ONWARD_ERR_INTERNAL', err instanceof Error ? err.message : String(err));
  }
}

