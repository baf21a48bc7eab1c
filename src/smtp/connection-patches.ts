/**
 * The two places where onward changes smtp-server's behaviour, installed once when this
 * module is loaded. Both are small, and both are covered by tests (the reply table and
 * the greeting timing in test/integration/ingress-replies.test.ts).
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

/*
 * 1. Enhanced status codes. smtp-server prefixes every reply with an enhanced status code
 * it derives from the reply code alone (452 -> 4.2.2, 550 -> 5.1.1, DATA 250 -> 2.6.0),
 * which contradicts the codes SPEC section 3 fixes. Our own reply texts carry their
 * enhanced code, so for a text that already starts with one the automatic prefix is
 * switched off; smtp-server's own replies keep theirs.
 */
// eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with .call below
const originalSend = SMTPConnection.prototype.send;
SMTPConnection.prototype.send = function send(this: SMTPConnection, code, data, context) {
  const own = typeof data === 'string' && ENHANCED_PREFIX.test(data);
  originalSend.call(this, code, data, own ? false : context);
};

/*
 * 2. Greeting delay. smtp-server waits a fixed 100 ms before its 220 greeting to catch
 * clients that talk too soon (a spam-trap heuristic). For a smarthost that applications
 * submit to, that is 100 ms of dead time per connection: with one message per connection
 * it caps 20 sessions at ~190 messages/s. The wait is the server option
 * `greetingDelayMs` here (`smtp.greetingDelay` in the config, default 0); talking before
 * the greeting is still refused.
 */
interface GreetingOptions {
  greetingDelayMs?: number;
}
SMTPConnection.prototype.init = function init(this: SMTPConnection) {
  this._setListeners(() => {
    const options = this._server.options as typeof this._server.options & GreetingOptions;
    if (options.maxClients && this._server.connections.size > options.maxClients) {
      this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      return;
    }
    const timer = setTimeout(() => this.connectionReady(), options.greetingDelayMs ?? 100);
    timer.unref();
  });
};
