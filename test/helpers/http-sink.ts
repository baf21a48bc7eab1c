/**
 * A real HTTP server on 127.0.0.1 (port 0) that records every request and answers as scripted.
 * For webhook tests: no mocks, the transport under test talks to a socket.
 *
 * ```ts
 * const sink = await startHttpSink();
 * afterEach(() => sink.close());            // or: await using sink = await startHttpSink();
 * sink.respond(() => ({ status: 503, headers: { 'Retry-After': '7' } }));
 * // ... deliver to sink.url ...
 * const [request] = await sink.waitFor(1);
 * request.headers['idempotency-key'];       // header names are lower-case (node:http)
 * ```
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitForCount } from './common.js';

/** One request as the sink received it. */
export interface HttpSinkRequest {
  readonly method: string;
  /** Path and query, e.g. `/hook?x=1`. */
  readonly url: string;
  /** Lower-case names, as node:http gives them. */
  readonly headers: IncomingHttpHeaders;
  /** The complete request body. */
  readonly body: Buffer;
  readonly receivedAt: Date;
}

/** How the sink answers one request. */
export interface HttpSinkResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Response body; default empty. */
  readonly body?: string | Buffer;
  /** Wait this long before answering (after the request body arrived): for timeout tests. */
  readonly delayMs?: number;
}

/** Decides the answer for each request; `index` counts from 0 in arrival order. */
export type HttpSinkResponder = (
  request: HttpSinkRequest,
  index: number,
) => HttpSinkResponse | Promise<HttpSinkResponse>;

export interface HttpSinkOptions {
  /** Initial responder. Default: `200 OK` with an empty body. */
  readonly respond?: HttpSinkResponder;
}

export interface HttpSink {
  /** `http://127.0.0.1:<port>/hook`. */
  readonly url: string;
  readonly port: number;
  /** Every request so far, in arrival order (recorded before the response is sent). */
  readonly requests: HttpSinkRequest[];
  /** Replaces the responder for requests from now on. */
  respond(responder: HttpSinkResponder): void;
  /** Resolves with `requests` once at least `count` have arrived; rejects after `timeoutMs` (default 5000). */
  waitFor(count: number, timeoutMs?: number): Promise<HttpSinkRequest[]>;
  /** Stops the server, dropping open connections and pending delayed answers. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const OK: HttpSinkResponder = () => ({ status: 200 });

export async function startHttpSink(options: HttpSinkOptions = {}): Promise<HttpSink> {
  let responder = options.respond ?? OK;
  const requests: HttpSinkRequest[] = [];
  const waiters = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: HttpSinkRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        receivedAt: new Date(),
      };
      const index = requests.push(request) - 1;
      for (const wake of waiters) wake();
      Promise.resolve(responder(request, index)).then(
        (answer) => reply(res, answer),
        (err: unknown) => reply(res, { status: 500, body: String(err) }),
      );
    });
  });

  const reply = (res: ServerResponse, answer: HttpSinkResponse): void => {
    const send = (): void => {
      if (res.destroyed) return;
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body ?? '');
    };
    if (answer.delayMs === undefined || answer.delayMs <= 0) return send();
    const timer = setTimeout(() => {
      timers.delete(timer);
      send();
    }, answer.delayMs);
    timers.add(timer);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };

  return {
    url: `http://127.0.0.1:${String(port)}/hook`,
    port,
    requests,
    respond: (next) => {
      responder = next;
    },
    waitFor: (count, timeoutMs = 5000) => waitForCount(requests, waiters, count, timeoutMs, { who: 'http sink', things: 'requests' }),
    close,
    [Symbol.asyncDispose]: close,
  };
}
