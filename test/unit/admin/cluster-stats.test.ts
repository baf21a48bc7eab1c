/**
 * SPEC 9: on a shared spool, `spool stats` gives the cluster's target state from the nodes'
 * heartbeats: `up` when any live node has the target up, `concurrency` summed over the live
 * nodes, null when no live node runs it; `nodes` counts the live nodes. Pure functions.
 */
import { describe, expect, it } from '@jest/globals';
import { clusterTargets, nodeView, statsView } from '../../../src/admin/views.js';
import type { NodeRecord, SpoolStats, TargetReport } from '../../../src/spool/index.js';

const NOW = Date.parse('2026-12-01T12:00:00.000Z');

function node(id: string, alive: boolean, targets: Record<string, TargetReport>, inFlight = 0): NodeRecord {
  return { id, host: `${id}.internal`, pid: 100, version: '0.1.0', startedAt: NOW - 3_600_000, lastSeenAt: NOW - 2000, alive, inFlight, targets };
}

const STATS: SpoolStats = {
  states: { queued: 3, deferred: 2, held: 0, delivered: 7, bounced: 1, deleted: 0 },
  events: { queued: 1, deferred: 0, held: 0, delivered: 4, bounced: 0, deleted: 0 },
  targets: { hook: { queued: 2, deferred: 1 }, mx: { queued: 1, deferred: 1 } },
  oldestQueuedAt: NOW - 90_000,
  spoolBytes: 4096,
};

describe('clusterTargets', () => {
  it('sums concurrency over live nodes and calls a target up when any live node has it up', () => {
    const merged = clusterTargets([
      node('a', true, { hook: { up: false, concurrency: 4 }, mx: { up: true, concurrency: 2 } }),
      node('b', true, { hook: { up: true, concurrency: 6 }, mx: { up: true, concurrency: 3 } }),
    ]);
    expect(merged.sort((x, y) => x.name.localeCompare(y.name))).toEqual([
      { name: 'hook', up: true, concurrency: 10 },
      { name: 'mx', up: true, concurrency: 5 },
    ]);
  });

  it('calls a target down when every live node has it down', () => {
    const merged = clusterTargets([node('a', true, { hook: { up: false, concurrency: 1 } }), node('b', true, { hook: { up: false, concurrency: 1 } })]);
    expect(merged).toEqual([{ name: 'hook', up: false, concurrency: 2 }]);
  });

  it('ignores dead nodes, even when their last heartbeat had the target up', () => {
    const merged = clusterTargets([node('dead', false, { hook: { up: true, concurrency: 50 } }), node('live', true, { hook: { up: false, concurrency: 3 } })]);
    expect(merged).toEqual([{ name: 'hook', up: false, concurrency: 3 }]);
  });

  it('reports nothing when no node is alive', () => {
    expect(clusterTargets([node('dead', false, { hook: { up: true, concurrency: 5 } })])).toEqual([]);
    expect(clusterTargets([])).toEqual([]);
  });
});

describe('statsView with the nodes of a shared spool', () => {
  it('adds the live node count and takes target state from the live nodes, not this relay', () => {
    const nodes = [
      node('a', true, { hook: { up: true, concurrency: 4 } }),
      node('b', true, { hook: { up: false, concurrency: 4 }, mx: { up: false, concurrency: 2 } }),
      node('c', false, { hook: { up: true, concurrency: 9 }, mx: { up: true, concurrency: 9 } }),
    ];
    const ownState = [{ name: 'hook', up: false, concurrency: 1 }];
    const view = statsView(STATS, ['hook', 'mx', 'idle'], ownState, NOW, nodes);
    expect(view.nodes).toBe(2);
    expect(view.targets).toEqual({
      hook: { queued: 2, deferred: 1, up: true, concurrency: 8 },
      mx: { queued: 1, deferred: 1, up: false, concurrency: 2 },
      idle: { queued: 0, deferred: 0, up: null, concurrency: null },
    });
    expect(view.source).toBe('relay');
    expect(view.oldestQueuedAgeSeconds).toBe(90);
  });

  it('gives null up and concurrency for every target, and nodes 0, when no node runs', () => {
    const view = statsView(STATS, ['hook', 'mx'], null, NOW, [node('gone', false, { hook: { up: true, concurrency: 3 } })]);
    expect(view.nodes).toBe(0);
    expect(view.source).toBe('spool');
    expect(view.targets['hook']).toEqual({ queued: 2, deferred: 1, up: null, concurrency: null });
    expect(view.targets['mx']).toEqual({ queued: 1, deferred: 1, up: null, concurrency: null });
  });

  it('is unchanged for a level spool: no nodes field, target state from this relay', () => {
    const view = statsView(STATS, ['hook', 'mx'], [{ name: 'hook', up: false, concurrency: 7 }], NOW, null);
    expect('nodes' in view).toBe(false);
    expect(view.targets['hook']).toEqual({ queued: 2, deferred: 1, up: false, concurrency: 7 });
    expect(view.targets['mx']).toEqual({ queued: 1, deferred: 1, up: null, concurrency: null });
  });
});

describe('nodeView', () => {
  it('prints the SPEC 9 fields with ISO times', () => {
    const view = nodeView(node('relay-a', true, { hook: { up: true, concurrency: 4 } }, 3));
    expect(view).toMatchObject({
      id: 'relay-a',
      host: 'relay-a.internal',
      pid: 100,
      version: '0.1.0',
      startedAt: '2026-12-01T11:00:00.000Z',
      lastSeenAt: '2026-12-01T11:59:58.000Z',
      alive: true,
      inFlight: 3,
    });
  });
});
