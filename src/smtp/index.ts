export { SmtpIngress, type IngressDeps, type IngressEvents, type ReceiveResult } from './server.js';
export { assertSmtpServerPatchable } from './connection-patches.js';
