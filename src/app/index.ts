export { startRelay, type Relay } from './relay.js';
export { openSpool, nodeIdOf, spoolCapacity, type OpenSpoolOptions } from './spool.js';
