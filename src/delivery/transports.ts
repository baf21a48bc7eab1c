/**
 * One factory for every target type, so the composition root never switches on `type` itself.
 *
 * Each transport's module (and what it pulls in: undici, nodemailer, mailparser, the DKIM
 * signer) is loaded on first use, in the thread that delivers: a relay with one SMTP target
 * does not carry an HTTP client in its heaps, and the main thread, which only hands
 * deliveries to the delivery thread, carries none (issue 17: ~20–30 MB RSS per package).
 */
import type { TargetConfig } from '../config/types.js';
import type { SmtpTransportOptions } from './smtp.js';
import type { DeliveryJob, Transport, TransportResult } from './types.js';

export type TransportOptions = SmtpTransportOptions;

/** Makes a target's transport: in this thread (createTransport) or on the delivery thread. */
export type TransportFactory = (target: TargetConfig, options: TransportOptions) => Transport;

/**
 * One module load at a time: the loads share dependencies, and jest's ESM loader (the test
 * suites) cannot link one module for two dynamic imports at once ("not in cache").
 */
let loading: Promise<unknown> = Promise.resolve();

/** Loads the module of `target`'s type and makes its transport. */
function loadTransport(target: TargetConfig, options: TransportOptions): Promise<Transport> {
  const made = loading.then(() => importTransport(target, options));
  loading = made.catch(() => undefined);
  return made;
}

async function importTransport(target: TargetConfig, options: TransportOptions): Promise<Transport> {
  switch (target.type) {
    case 'http':
      return (await import('./http.js')).createHttpTransport(target);
    case 'smtp':
      return (await import('./smtp.js')).createSmtpTransport(target, options);
    case 'file':
      return (await import('./file.js')).createFileTransport(target);
    case 'mx':
      return (await import('./mx/transport.js')).createMxTransport(target, options);
  }
}

/**
 * The transport for a target; `options` only matter for SMTP and mx targets. A transport
 * that cannot be made (a bad key, say) rejects each delivery with the reason; the attempt
 * records that as an ERROR like any other transport failure.
 */
export function createTransport(target: TargetConfig, options: TransportOptions = {}): Transport {
  const made = loadTransport(target, options).catch((err: unknown) => {
    throw new Error(`cannot create the transport for target "${target.name}": ${String(err)}`);
  });
  // Nobody may be waiting yet: a failure is reported by deliver(), not as an unhandled rejection.
  made.catch(() => undefined);
  return {
    deliver: (job: DeliveryJob): Promise<TransportResult> => made.then((transport) => transport.deliver(job)),
    close: (): Promise<void> => made.then(
      (transport) => transport.close(),
      () => undefined,
    ),
  };
}
