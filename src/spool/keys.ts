/**
 * Kept so existing imports of `spool/keys.js` (test/unit/spool/keys.test.ts) still resolve:
 * the LevelDB key layout lives in level/keys.ts, `laneOf` (backend-neutral) in ids.ts.
 */
export * from './level/keys.js';
export { laneOf } from './ids.js';
