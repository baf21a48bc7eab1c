/**
 * Entry point of the delivery thread (see transport-host.ts): holds the transports the
 * host opened and runs their deliveries.
 */
import { parentPort } from 'node:worker_threads';
import type { ThreadReply, ThreadRequest } from './transport-host.js';
import { createTransport } from './transports.js';
import type { Transport } from './types.js';

const port = parentPort;
if (!port) throw new Error('transport-worker.js runs only as a worker thread');

const transports = new Map<number, Transport>();
const answer = (reply: ThreadReply): void => port.postMessage(reply);

port.on('message', (request: ThreadRequest) => {
  switch (request.kind) {
    case 'open':
      // A transport that cannot be made answers each of its deliveries with the reason.
      transports.set(request.id, createTransport(request.target, request.options));
      return;
    case 'deliver': {
      const transport = transports.get(request.id);
      if (!transport) {
        return answer({ call: request.call, result: null, error: `no transport ${request.id} on the delivery thread` });
      }
      // Structured cloning turns the Buffer into a plain Uint8Array: view it as a Buffer again.
      const { body } = request.job;
      const job = { ...request.job, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
      // Through a promise so that a transport that throws outright answers too (not kills the thread).
      Promise.resolve()
        .then(() => transport.deliver(job))
        .then(
          (result) => answer({ call: request.call, result, error: null }),
          (err: unknown) => answer({ call: request.call, result: null, error: `transport failed: ${String(err)}` }),
        );
      return;
    }
    case 'close': {
      const transport = transports.get(request.id);
      transports.delete(request.id);
      void (transport?.close() ?? Promise.resolve()).finally(() => answer({ call: request.call, result: null, error: null }));
      return;
    }
  }
});
