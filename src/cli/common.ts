import { loadConfig, resolveConfigPath, type Config } from '../config/index.js';
import { EXIT, isRelayError } from '../errors.js';

export interface GlobalArgs {
  readonly config?: string | undefined;
}

export { EXIT };

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

/** The exit code the error table gives a typed error; anything else is a user error. */
export function exitCodeFor(err: unknown): number {
  return isRelayError(err) ? err.exit : EXIT.user;
}
