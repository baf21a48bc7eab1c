/** The human listing and stats of mx deliveries name the recipient domain (SPEC 13). */
import { describe, expect, it } from '@jest/globals';
import type { ListEntry, StatsView } from '../../../src/admin/index.js';
import { listRow, statsText } from '../../../src/cli/format.js';

const NOW = Date.parse('2026-12-05T12:00:00.000Z');
const ZERO = { queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 };

describe('mx deliveries in the CLI tables', () => {
  it('lists each recipient with its target and domain', () => {
    const entry: ListEntry = {
      id: '0MX9QS2BZFWA9Q5',
      state: 'deferred',
      messageId: 'order-1@client.test',
      sender: 'app@client.test',
      recipients: [
        { address: 'a@example.com', state: 'deferred', target: 'internet', domain: 'example.com', lastError: '421 4.7.0 try later' },
        { address: 'b@hooks.test', state: 'delivered', target: 'hooks', lastError: null },
      ],
      size: 4096,
      receivedAt: new Date(NOW - 60_000).toISOString(),
      nextAttemptAt: new Date(NOW + 300_000).toISOString(),
    };
    const lines = listRow(entry, NOW).split('\n');
    expect(lines[1]).toBe('    -> a@example.com  deferred via internet (example.com)  (421 4.7.0 try later)');
    expect(lines[2]).toBe('    -> b@hooks.test  delivered via hooks');
  });

  it('prints the busiest domains of an mx target with their live window and circuit', () => {
    const stats: StatsView = {
      states: { ...ZERO, deferred: 2 },
      events: ZERO,
      targets: { internet: { queued: 0, deferred: 2, up: true, concurrency: 100 } },
      oldestQueuedAgeSeconds: 60,
      spoolBytes: 1024,
      source: 'relay',
      domains: { internet: { 'example.com': { up: false, concurrency: 1, inFlight: 0 }, 'example.org': { up: true, concurrency: 4, inFlight: 3 } } },
    };
    const lines = statsText(stats).split('\n');
    const at = lines.findIndex((l) => l.startsWith('DOMAIN (internet)'));
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]?.split(/\s{2,}/)).toEqual(['example.com', '0', 'DOWN', '1']);
    expect(lines[at + 2]?.split(/\s{2,}/)).toEqual(['example.org', '3', 'yes', '4']);
    expect(lines.some((l) => l.startsWith('events'))).toBe(false);
  });
});
