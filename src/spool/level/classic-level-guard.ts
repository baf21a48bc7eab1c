/**
 * SpoolWriter calls classic-level's private `_batch` (see writer.ts for why). A private
 * method can change in any release, so the relay runs only on the exact classic-level
 * version onward pins, and only when `_batch` still has the shape writer.ts relies on.
 */
import { createRequire } from 'node:module';
import { ClassicLevel } from 'classic-level';
import { RelayError } from '../../errors.js';

export interface ClassicLevelFound {
  /** `dependencies['classic-level']` of onward's package.json (an exact version; ^/~ is stripped). */
  readonly pinned: string | undefined;
  /** `version` of the installed classic-level/package.json. */
  readonly installed: string | undefined;
  /** The database object whose `_batch` the writer will call. */
  readonly db: object;
}

/** abstract-level's default `_batch`: a no-op that would drop every write. */
const ABSTRACT_BATCH = (Object.getPrototypeOf(ClassicLevel.prototype) as { _batch?: unknown } | null)?._batch;

/** What writer.ts calls: `_batch(operations, options)`, classic-level's own method. */
function batchShape(db: object): string | null {
  const batch = (db as { _batch?: unknown })._batch;
  if (typeof batch !== 'function') return `no _batch method (found ${typeof batch})`;
  if (batch.length !== 2) return `_batch takes ${String(batch.length)} arguments, not 2 (operations, options)`;
  return batch === ABSTRACT_BATCH ? "_batch is abstract-level's no-op default, not classic-level's own" : null;
}

/** The reason the installed classic-level cannot be used, as one RelayError; null when it matches. */
export function classicLevelMismatch(found: ClassicLevelFound): RelayError | null {
  const pinned = found.pinned?.replace(/^[\^~]/, '');
  const problems: string[] = [];
  if (pinned === undefined || pinned !== found.installed) {
    problems.push(`onward's package.json pins classic-level ${found.pinned ?? '(nothing)'}, but ${found.installed ?? 'no version'} is installed`);
  }
  const shape = batchShape(found.db);
  if (shape !== null) problems.push(`classic-level's private batch method differs: ${shape}`);
  if (problems.length === 0) return null;
  return new RelayError(
    'ONWARD_ERR_DEPENDENCY_MISMATCH',
    `refusing to open the spool: ${problems.join('; ')}. The spool writes through classic-level's private _batch, ` +
      'checked against the pinned version only: reinstall the pinned version (npm ci), or update the pin after checking src/spool/level/writer.ts against the new release.',
  );
}

/** The versions as installed: onward's package.json pin and classic-level's own package.json. */
export function installedClassicLevel(): { pinned: string | undefined; installed: string | undefined } {
  const require = createRequire(import.meta.url);
  const onward = require('../../../package.json') as { dependencies?: Record<string, string> };
  const classic = require('classic-level/package.json') as { version?: string };
  return { pinned: onward.dependencies?.['classic-level'], installed: classic.version };
}
