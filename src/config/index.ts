/** The config module's public surface: load, validate and describe `onward.yaml`. */
export type * from './types.js';
export { DEFAULT_CONFIG_PATH, isLoopback, loadConfig, parseConfig, resolveConfigPath } from './load.js';
export { checkTlsMaterial, readTlsMaterial, type TlsMaterial } from './tls.js';
export { describeConfig } from './describe.js';
export { configJsonSchema } from './json-schema.js';
export { parseDuration, parseSize } from './units.js';
