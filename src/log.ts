import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * The one root logger: JSON lines on stdout. Components take `logger.child({ component })`.
 * Secrets are redacted by path wherever they could appear.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'onward' },
    redact: { paths: ['password', 'pass', 'token', '*.password', '*.pass', '*.token', 'auth.*'], censor: '***' },
  };
  return destination ? pino(options, destination) : pino(options);
}
