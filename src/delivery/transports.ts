/**
 * One factory for every target type, so the composition root never switches on `type` itself.
 */
import type { TargetConfig } from '../config/types.js';
import { createFileTransport } from './file.js';
import { createHttpTransport } from './http.js';
import { createMxTransport } from './mx/transport.js';
import { createSmtpTransport, type SmtpTransportOptions } from './smtp.js';
import type { Transport } from './types.js';

export type TransportOptions = SmtpTransportOptions;

/** Makes a target's transport: in this thread (createTransport) or on the delivery thread. */
export type TransportFactory = (target: TargetConfig, options: TransportOptions) => Transport;

/** The transport for a target; `options` only matter for SMTP and mx targets. */
export function createTransport(target: TargetConfig, options: TransportOptions = {}): Transport {
  switch (target.type) {
    case 'http':
      return createHttpTransport(target);
    case 'smtp':
      return createSmtpTransport(target, options);
    case 'file':
      return createFileTransport(target);
    case 'mx':
      return createMxTransport(target, options);
  }
}
