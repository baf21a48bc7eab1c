export { startRelay, type Relay } from './relay.js';
