/** The `events` section (SPEC 11): an http target with format json, types a subset (default all three). */
import { describe, expect, it } from '@jest/globals';
import { describeConfig, parseConfig } from '../../../src/config/index.js';
import { RelayError, isRelayError } from '../../../src/errors.js';

const BASE = `
targets:
  outbox: { type: file, path: ./out }
  appEvents: { type: http, url: "http://127.0.0.1:8080/events" }
  rawHook: { type: http, url: "http://127.0.0.1:8080/raw", format: raw }
routes:
  - { match: "*", target: outbox }
`;

function problemsOf(yaml: string): string[] {
  try {
    parseConfig(yaml, {});
  } catch (err) {
    expect(isRelayError(err, 'ONWARD_ERR_CONFIG_INVALID')).toBe(true);
    return (err as RelayError).message.split('\n');
  }
  throw new Error('expected the config to be rejected');
}

describe('events config', () => {
  it('is off by default', () => {
    expect(parseConfig(BASE, {}).events).toBeNull();
  });

  it('takes an http json target (json is the default format) and all three types by default', () => {
    const config = parseConfig(`${BASE}events: { target: appEvents }\n`, {});
    expect(config.events).toEqual({ target: 'appEvents', types: ['delivered', 'deferred', 'failed'] });
    expect(describeConfig(config)).toContain('events: delivered, deferred, failed to appEvents');
  });

  it('takes a subset of types', () => {
    expect(parseConfig(`${BASE}events: { target: appEvents, types: [failed] }\n`, {}).events).toEqual({ target: 'appEvents', types: ['failed'] });
  });

  it('refuses an unknown target, a non-http target, a raw http target, unknown or no types', () => {
    expect(problemsOf(`${BASE}events: { target: nowhere }\n`)).toEqual(['events.target: unknown target "nowhere"']);
    expect(problemsOf(`${BASE}events: { target: outbox }\n`)).toEqual([expect.stringContaining('events.target: target "outbox" must be an http target with format: json')]);
    expect(problemsOf(`${BASE}events: { target: rawHook }\n`)).toEqual([expect.stringContaining('events.target: target "rawHook" must be an http target with format: json')]);
    expect(problemsOf(`${BASE}events: { target: appEvents, types: [bounced] }\n`)).toEqual([expect.stringContaining('events.types')]);
    expect(problemsOf(`${BASE}events: { target: appEvents, types: [] }\n`)).toEqual([expect.stringContaining('events.types')]);
    expect(problemsOf(`${BASE}events: { types: [failed] }\n`)).toEqual([expect.stringContaining('events.target')]);
  });
});
