/** SPEC 12: the dashboard's event stream and the history ring behind it. */
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { QueueHistory, type Tick } from '../../../src/dashboard/index.js';
import { queuedId, sendRaw, waitUntil } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { sampleMessage, useTestRelays } from '../../helpers/relay.js';

const TOKEN = 'dashboard-token-for-tests-0123456789';

interface SseEvent {
  readonly event: string;
  readonly data: unknown;
}

/** Reads the stream in the background, collecting parsed events. */
function collect(body: ReadableStream<Uint8Array>): { events: SseEvent[]; stop: () => Promise<void> } {
  const events: SseEvent[] = [];
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const pump = (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) as unknown });
      }
    }
  })();
  return {
    events,
    stop: async () => {
      await reader.cancel().catch(() => undefined);
      await pump;
    },
  };
}

describe('dashboard events', () => {
  const start = useTestRelays();

  it('refuses without the bearer; sends history first, then ticks whose counts, rates and changed move after mail arrives', async () => {
    const t = await start(`admin: { token: ${TOKEN} }`);
    const url = `http://127.0.0.1:${t.relay.adminAddress.port}/api/dashboard/events`;
    const refused = await fetch(url);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('ONWARD_ERR_UNAUTHORIZED');

    const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const stream = collect(res.body!);
    try {
      await waitUntil('the history event', () => stream.events.length > 0, 5000);
      expect(stream.events[0]?.event).toBe('history');
      expect(stream.events[0]?.data).toMatchObject({ intervalMs: 2000 });
      const first = (await waitUntil('a tick', () => stream.events.find((e) => e.event === 'tick'), 10_000)).data as Tick;
      expect(first.targets.map((r) => r.name)).toContain('outbox');
      for (let i = 0; i < 3; i += 1) queuedId(await sendRaw(t.port, { from: 'a@client.test', to: ['b@x.test'] }, sampleMessage()));
      const moved = await waitUntil(
        'a tick with received > 0',
        () => stream.events.map((e) => e.data as Tick).find((d) => d.sample?.received > 0),
        15_000,
      );
      expect(moved.changed).toBeGreaterThan(first.changed);
    } finally {
      await stream.stop();
    }
  }, 40_000);

  it('shows a target answering 503 with its last error and the message deferred', async () => {
    const sink = await startHttpSink({ respond: () => ({ status: 503, body: 'busy now' }) });
    try {
      const t = await start(
        `retry: { schedule: [1h], jitter: 0 }\n` +
          `targets:\n  hooks: { type: http, url: "${sink.url}", format: raw, circuit: { failures: 1000, probe: 1s } }\n` +
          `routes: [{ match: "*", target: hooks }]\n`,
      );
      queuedId(await sendRaw(t.port, { from: 'a@client.test', to: ['b@x.test'] }, sampleMessage()));
      const res = await fetch(`http://127.0.0.1:${t.relay.adminAddress.port}/api/dashboard/events`);
      const stream = collect(res.body!);
      try {
        const row = await waitUntil(
          'a tick with the hooks target deferred and its last error',
          () =>
            stream.events
              .filter((e) => e.event === 'tick')
              .map((e) => (e.data as Tick).targets.find((r) => r.name === 'hooks'))
              .find((r) => r !== undefined && r.deferred === 1 && r.lastError !== null),
          15_000,
        );
        expect(row.lastError?.text).toMatch(/503/);
        expect(Number.isNaN(Date.parse(row.lastError?.at ?? ''))).toBe(false);
        expect(row.up).toBe(true);
      } finally {
        await stream.stop();
      }
    } finally {
      await sink.close();
    }
  }, 30_000);

  it('keeps the ring bounded at its capacity', async () => {
    const t = await start();
    const history = new QueueHistory({ spool: t.relay.spool, activity: () => t.relay.metrics.activity(), logger: pino({ level: 'silent' }), capacity: 3, intervalMs: 20 });
    let samples = 0;
    history.on('sample', () => (samples += 1));
    history.start();
    try {
      await waitUntil('ten samples', () => samples >= 10, 10_000);
      const ring = history.samples();
      expect(ring).toHaveLength(3);
      expect(ring[0]!.t).toBeLessThanOrEqual(ring[1]!.t);
      expect(ring[1]!.t).toBeLessThanOrEqual(ring[2]!.t);
      expect(ring[2]).toEqual(history.latest()?.sample);
    } finally {
      history.stop();
    }
  });
});
