/**
 * The two places where onward changes smtp-server's behaviour, installed once when this
 * module is loaded. Both are small, and both are covered by tests (the reply table and
 * the greeting timing in test/integration/ingress-replies.test.ts, and
 * test/integration/connection-patches.test.ts). They lean on private members, so the relay
 * refuses to start (`assertSmtpServerPatchable`) unless smtp-server is exactly the version
 * onward pins and those members are there.
 */
import { createRequire } from 'node:module';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { RelayError } from '../errors.js';

/** SMTPConnection.prototype members the patches below and session-guard.ts call or replace. */
export const PATCHED_MEMBERS = ['send', 'init', '_setListeners', 'connectionReady', 'close'] as const;

/** What the prototype held before patching: the check must see smtp-server's own shape. */
const originalShape: Readonly<Record<string, unknown>> = Object.fromEntries(
  PATCHED_MEMBERS.map((name) => [name, (SMTPConnection.prototype as unknown as Record<string, unknown>)[name]]),
);

/**
 * Why the installed smtp-server cannot take the patches, or null when it can: `pinned` is
 * onward's package.json range for it (a leading ^ or ~ is ignored), `found` the installed
 * version, `prototype` SMTPConnection.prototype as smtp-server shipped it.
 */
export function smtpServerMismatch(pinned: string, found: string, prototype: Readonly<Record<string, unknown>>): string | null {
  const expected = pinned.trim().replace(/^[\^~]/, '');
  if (found !== expected) {
    return (
      `smtp-server ${found} is installed, but onward is pinned to ${expected} (package.json dependencies). ` +
      'onward patches private parts of smtp-server (src/smtp/connection-patches.ts) that are only known to work with that version: ' +
      'reinstall with `npm ci`, or re-check the patches against the new version and change the pin.'
    );
  }
  const missing = PATCHED_MEMBERS.filter((name) => typeof prototype[name] !== 'function');
  if (missing.length > 0) {
    return (
      `smtp-server ${found} has no ${missing.map((m) => `SMTPConnection.prototype.${m}()`).join(', ')}, which onward patches ` +
      '(src/smtp/connection-patches.ts): the installed package is damaged or not the pinned one; reinstall with `npm ci`.'
    );
  }
  return null;
}

/** Throws ONWARD_ERR_DEPENDENCY_MISMATCH (the relay refuses to start) when `smtpServerMismatch` finds a problem. */
export function assertSmtpServerPatchable(): void {
  const require = createRequire(import.meta.url);
  const own = require('../../package.json') as { dependencies?: Record<string, string> };
  const installed = require('smtp-server/package.json') as { version?: string };
  const problem = smtpServerMismatch(own.dependencies?.['smtp-server'] ?? '(none)', installed.version ?? '(unknown)', originalShape);
  if (problem !== null) throw new RelayError('ONWARD_ERR_DEPENDENCY_MISMATCH', problem);
}

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
