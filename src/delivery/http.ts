/**
 * HTTP (webhook) target: one POST per delivery over a keep-alive connection pool (SPEC
 * section 4). undici's `request` rather than `fetch`: the same client without the WHATWG
 * stream and Headers layers, about half the CPU per request.
 */
import { STATUS_CODES } from 'node:http';
import { Pool } from 'undici';
import type { HttpTargetConfig } from '../config/types.js';
import {
  classifyHttpStatus,
  errorReply,
  isContentionError,
  isContentionStatus,
} from './classify.js';
import { buildJsonPayload } from './http-payload.js';
import { SIGNATURE_HEADERS, signatureHeaders } from './signing.js';
import type { DeliveryJob, Outcome, Reply, Transport, TransportResult } from './types.js';

/** Enough of an error page for nobody; reading past it only keeps a slow server's socket busy. */
const MAX_DRAIN_BYTES = 64 * 1024;

/**
 * POSTs each delivery to `target.url`: `raw` sends the stored bytes as `message/rfc822`, `json`
 * the JsonPayload. Headers: `Idempotency-Key` (delivery id), `X-Onward-Queue-Id`,
 * `X-Onward-Attempt`, `X-Onward-Envelope-From` (`<>` for the null sender), `X-Onward-Envelope-To`
 * (`a@x, b@y`), the configured headers (which cannot override these), and with signing secrets
 * the signature headers of the target's `signing` scheme (signing.ts).
 * Every recipient gets the same result; `deliver` never rejects.
 */
export function createHttpTransport(target: HttpTargetConfig): Transport {
  const url = new URL(target.url);
  // One pool per target: as many connections as the target may have requests in flight.
  const pool = new Pool(url.origin, { connections: target.concurrency });
  let closed = false;
  return {
    deliver: (job) => deliverHttp(target, pool, `${url.pathname}${url.search}`, job),
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.close().catch(() => undefined);
    },
  };
}

async function deliverHttp(target: HttpTargetConfig, pool: Pool, path: string, job: DeliveryJob): Promise<TransportResult> {
  const startedAt = performance.now();
  const finish = (outcome: Outcome, reply: Reply, retryAfterMs: number | null, contention: boolean): TransportResult => ({
    recipients: job.envelope.to.map((address) => ({ address, outcome, reply })),
    durationMs: Math.round(performance.now() - startedAt),
    retryAfterMs,
    contention,
  });

  let request: { body: Buffer; headers: Record<string, string> };
  try {
    request = await buildRequest(target, job);
  } catch (err) {
    // Our side failed (unparseable message, bad configured header): unknown, so ERROR.
    return finish('error', errorReply('x-onward', err), null, false);
  }

  try {
    // Redirects are not followed (a redirected POST may lose its body): the status speaks.
    const response = await pool.request({
      path,
      method: 'POST',
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(target.timeoutMs),
    });
    // Read (and forget) a bounded amount of the body so the connection can be reused.
    await response.body.dump({ limit: MAX_DRAIN_BYTES }).catch(() => undefined);
    const status = response.statusCode;
    const reply: Reply = {
      kind: 'http',
      code: status,
      enhancedStatus: null,
      text: `HTTP ${String(status)} ${STATUS_CODES[status] ?? ''}`.trim(),
    };
    const contention = isContentionStatus(status);
    const retryAfter = response.headers['retry-after'];
    const retryAfterMs = contention ? parseRetryAfter(Array.isArray(retryAfter) ? (retryAfter[0] ?? null) : (retryAfter ?? null), Date.now()) : null;
    return finish(classifyHttpStatus(status), reply, retryAfterMs, contention);
  } catch (err) {
    return finish('error', errorReply('http', err, target.timeoutMs), null, isContentionError(err));
  }
}

async function buildRequest(
  target: HttpTargetConfig,
  job: DeliveryJob,
): Promise<{ body: Buffer; headers: Record<string, string> }> {
  const json = target.format === 'json';
  const event = job.event ?? null; // a delivery event: its stored JSON, as is
  const body = event ? job.body : json ? Buffer.from(JSON.stringify(await buildJsonPayload(job)), 'utf8') : job.body;
  // Configured headers first so that nothing configured can forge the protocol headers.
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(target.headers)) {
    if (!PROTOCOL_HEADERS.has(name.toLowerCase())) headers[name] = value;
  }
  // An event's id is its idempotency key (and its `webhook-id`); a delivery's is the delivery id.
  const idempotencyKey = event?.id ?? job.deliveryId;
  Object.assign(headers, {
    'Content-Type': json || event ? 'application/json' : 'message/rfc822',
    'Idempotency-Key': idempotencyKey,
    'X-Onward-Queue-Id': job.queueId,
    'X-Onward-Attempt': String(job.attempt),
    'X-Onward-Envelope-From': headerValue(job.envelope.from === '' ? '<>' : job.envelope.from),
    'X-Onward-Envelope-To': headerValue(job.envelope.to.join(', ')),
  });
  Object.assign(headers, signatureHeaders(target, idempotencyKey, Math.floor(Date.now() / 1000), body));
  return { body, headers };
}

const PROTOCOL_HEADERS = new Set([
  'content-type',
  'idempotency-key',
  'x-onward-queue-id',
  'x-onward-attempt',
  'x-onward-envelope-from',
  'x-onward-envelope-to',
  ...SIGNATURE_HEADERS,
]);

/**
 * Milliseconds from `nowMs` that a `Retry-After` value (delta-seconds or HTTP-date) asks for;
 * null when absent or unparseable. A date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Date.parse accepts bare numbers like "-5" as years; an HTTP-date always names day and month.
  if (!/[A-Za-z]/.test(trimmed)) return null;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}

/** SMTPUTF8 addresses: HTTP header values are bytes, so send UTF-8 bytes rather than Latin-1 mojibake. */
function headerValue(value: string): string {
  return Buffer.from(value, 'utf8').toString('latin1');
}
