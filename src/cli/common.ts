import { loadConfig, resolveConfigPath, type Config } from '../config/index.js';
import { isRelayError } from '../errors.js';

export interface GlobalArgs {
  readonly config?: string | undefined;
}

/** Exit codes of SPEC section 1. */
export const EXIT = { ok: 0, user: 1, unavailable: 2 } as const;

/** Loads the config or exits 1 with the problems, one per line. */
export function loadConfigOrExit(args: GlobalArgs): Config {
  const path = resolveConfigPath(args.config);
  try {
    return loadConfig(path);
  } catch (err) {
    fail(`invalid config ${path}:\n${err instanceof Error ? err.message : String(err)}`, EXIT.user);
  }
}

export function fail(message: string, code: number): never {
  process.stderr.write(`onward: ${message}\n`);
  process.exit(code);
}

/** Maps a typed error to the exit code SPEC section 1 gives it. */
export function exitCodeFor(err: unknown): number {
  const unavailable = ['ONWARD_ERR_SPOOL_UNAVAILABLE', 'ONWARD_ERR_SPOOL_LOCKED', 'ONWARD_ERR_ADMIN_UNREACHABLE', 'ONWARD_ERR_INTERNAL'];
  return isRelayError(err) && unavailable.includes(err.code) ? EXIT.unavailable : EXIT.user;
}
