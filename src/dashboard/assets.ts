/**
 * The dashboard's static files, read once at start into memory: every file of the package's
 * web/dashboard/ folder plus uPlot's script and style from node_modules. A fixed set, so a
 * request can only name one of them (no path from a URL ever reaches the file system).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** The package root: two levels up from src/dashboard/ (ts-jest) and from dist/dashboard/. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DASHBOARD_DIR = join(PACKAGE_ROOT, 'web', 'dashboard');
/** Files of the uplot package served under /dashboard/ by their own names. */
const UPLOT_FILES = ['uPlot.iife.min.js', 'uPlot.min.css'] as const;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
};

/** Nothing the page loads may come from elsewhere, nor may it be framed. */
export const DASHBOARD_CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; connect-src 'self'; frame-ancestors 'none'";

interface Asset {
  readonly body: Buffer;
  /** Null when compressing does not pay (already compressed formats, tiny files). */
  readonly gzip: Buffer | null;
  readonly type: string;
  /** Per representation: a cache holding the gzip copy must not revalidate the plain one. */
  readonly etag: string;
  readonly gzipEtag: string;
  readonly html: boolean;
}

function asset(name: string, body: Buffer): Asset {
  const ext = extname(name).toLowerCase();
  const compressed = ext === '.png' ? null : gzipSync(body, { level: 9 });
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 27);
  return {
    body,
    gzip: compressed !== null && compressed.length < body.length ? compressed : null,
    type: CONTENT_TYPES[ext] ?? 'application/octet-stream',
    etag: `"${hash}"`,
    gzipEtag: `"${hash}-gz"`,
    html: ext === '.html',
  };
}

/** Whether the client takes gzip (a `gzip` coding whose q is not 0). */
function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().split(';');
    if (coding?.trim().toLowerCase() !== 'gzip' && coding?.trim() !== '*') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

export class DashboardAssets {
  private readonly files = new Map<string, Asset>();

  /** Reads the folder and uPlot now; a missing web/ folder fails the start, not the first request. */
  constructor(dir: string = DASHBOARD_DIR) {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isFile()) this.files.set(entry.name, asset(entry.name, readFileSync(join(dir, entry.name))));
    }
    const require = createRequire(import.meta.url);
    for (const name of UPLOT_FILES) this.files.set(name, asset(name, readFileSync(require.resolve(`uplot/dist/${name}`))));
  }

  /** The names served under /dashboard/. */
  names(): string[] {
    return [...this.files.keys()];
  }

  /** Answers GET / and GET /dashboard/<name>; false when no such file (the caller sends its 404). */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const name = path === '/' ? 'index.html' : path.slice('/dashboard/'.length);
    const file = this.files.get(name);
    if (file === undefined) return false;
    const gzip = file.gzip !== null && acceptsGzip(req.headers['accept-encoding']) ? file.gzip : null;
    const etag = gzip === null ? file.etag : file.gzipEtag;
    const headers: Record<string, string | number> = {
      'content-type': file.type,
      'cache-control': 'no-cache',
      etag,
      vary: 'accept-encoding',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (file.html) headers['content-security-policy'] = DASHBOARD_CSP;
    if (req.headers['if-none-match']?.split(',').some((tag) => tag.trim() === etag || tag.trim() === `W/${etag}`)) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    const body = gzip ?? file.body;
    if (gzip !== null) headers['content-encoding'] = 'gzip';
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
}
