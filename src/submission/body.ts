/** Reading a submission's body: streamed, cut off at the limit, held against the shared memory budget. */
import type http from 'node:http';
import type { DataBudget } from '../accept/index.js';
import { refuse } from './refusals.js';

/** After a refused upload, how long the rest may still trickle in (discarded) before the socket is cut. */
const DRAIN_MS = 2000;

/**
 * The body, up to `bodyLimit` bytes, each chunk taken from the shared data budget. On success the
 * caller holds the body's length of the budget and gives it back; on any failure it is given
 * back here.
 */
export async function readBody(req: http.IncomingMessage, bodyLimit: number, limit: number, budget: DataBudget): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const fail = (err: Error): void => {
      cleanup();
      chunks.length = 0;
      budget.give(size);
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (size + chunk.length > bodyLimit) {
        req.pause();
        fail(refuse.tooLarge(limit));
        return;
      }
      if (!budget.take(chunk.length)) {
        // Every front door together holds limits.maxDataMemory: try again when uploads have drained.
        req.pause();
        fail(refuse.spoolFull());
        return;
      }
      size += chunk.length;
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => fail(err);
    const onAborted = (): void => fail(new Error('client went away during the upload'));
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onClose = (): void => {
      if (!req.complete) onAborted();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** After an early answer: let what is in flight arrive and drop it (no RST over the answer), then cut the socket. */
export function discardRest(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.on('data', () => undefined);
  req.on('error', () => undefined);
  req.resume();
  res.on('finish', () => {
    const timer = setTimeout(() => req.socket.destroy(), DRAIN_MS);
    timer.unref();
    req.socket.once('close', () => clearTimeout(timer));
  });
}
