/**
 * The admin token never reaches the relay's log, at the most verbose level, whatever the
 * requests carry: right or wrong bearers on the API, the event stream, bulk actions, errors.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { loopbackConfig, makeTempDir, outboxRoute, removeDir, startRelayWith, waitForValue, type StartedRelay } from '../../helpers/common.js';

const TOKEN = 'log-test-token-5d1e0c77';

describe('the admin token and the log', () => {
  let dir: string;
  let started: StartedRelay;
  let log = '';

  beforeAll(async () => {
    dir = await makeTempDir('onward-token-log-');
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        log += chunk.toString();
        done();
      },
    });
    started = await startRelayWith({ ...loopbackConfig(dir), ...outboxRoute(dir), admin: { host: '127.0.0.1', port: 0, token: TOKEN }, log: { level: 'trace' } }, pino({ level: 'trace' }, sink));
  });
  afterAll(async () => {
    await started?.relay.close();
    await removeDir(dir);
  });

  it('appears in no log line', async () => {
    const base = `http://127.0.0.1:${String(started.relay.adminAddress.port)}`;
    const asked = async (path: string, init: RequestInit = {}): Promise<number> => (await fetch(base + path, init)).status;
    const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}`, 'content-type': 'application/json' });
    expect(await asked('/api/spool/stats', { headers: bearer(TOKEN) })).toBe(200);
    expect(await asked('/api/spool/stats', { headers: bearer(`${TOKEN}x`) })).toBe(401);
    expect(await asked('/api/spool/messages/NOPE', { headers: bearer(TOKEN) })).toBe(400);
    expect(await asked('/api/spool/actions', { method: 'POST', headers: bearer(TOKEN), body: JSON.stringify({ action: 'hold', filter: { all: true } }) })).toBe(200);
    expect(await asked('/api/spool/actions', { method: 'POST', headers: bearer(TOKEN), body: `{"token":"${TOKEN}"` })).toBe(400);
    const events = await fetch(`${base}/api/dashboard/events`, { headers: bearer(TOKEN) });
    expect(events.status).toBe(200);
    await events.body?.cancel();
    // The bulk run logs one line: wait for it, so the log holds the requests' traces.
    await waitForValue(() => log, (text) => text.includes('(bulk)'), 5000, 'the bulk log line');
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain(TOKEN);
  });
});
