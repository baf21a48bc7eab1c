/**
 * `npm run fuzz` (bench/fuzz.mjs runs jest with this config): the fuzz targets of test/fuzz/
 * at their full counts (FUZZ_FULL=1) and the SMTP front-door fuzzer of
 * test/integration/reliability/fuzz.test.ts with more seeds. `npm test` runs the same files
 * with jest.config.js, as a small slice. No globalSetup: nothing here spawns bin/onward.
 */
import base from './jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  globalSetup: undefined,
  testMatch: ['<rootDir>/test/fuzz/**/*.test.ts', '<rootDir>/test/integration/reliability/fuzz.test.ts'],
  testTimeout: 15 * 60 * 1000,
};
