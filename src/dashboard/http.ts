import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DashboardAssets } from './assets.js';
import type { DashboardEvents } from './events.js';

/** What the admin listener asks of the dashboard. */
export interface DashboardHttp {
  /** GET / and GET /dashboard/*: answered before the token check (they hold no data). */
  isAsset(method: string | undefined, path: string): boolean;
  /** Serves the asset; false when there is no such file. */
  serveAsset(req: IncomingMessage, res: ServerResponse, path: string): boolean;
  /** GET /api/dashboard/events (behind the token like every API route). */
  events(req: IncomingMessage, res: ServerResponse): void;
  close(): void;
}

export class Dashboard implements DashboardHttp {
  constructor(
    private readonly assets: DashboardAssets,
    private readonly stream: DashboardEvents,
  ) {}

  isAsset(method: string | undefined, path: string): boolean {
    return (method === 'GET' || method === 'HEAD') && (path === '/' || path.startsWith('/dashboard/'));
  }

  serveAsset(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    return this.assets.serve(req, res, path);
  }

  events(req: IncomingMessage, res: ServerResponse): void {
    this.stream.open(req, res);
  }

  close(): void {
    this.stream.close();
  }
}
