/** The human `spool nodes` table: a header, one line per node with ages, and a count. */
import { describe, expect, it } from '@jest/globals';
import type { NodeView } from '../../../src/admin/index.js';
import { NODES_HEADER, nodesText } from '../../../src/cli/format.js';

const NOW = Date.parse('2026-12-01T12:00:00.000Z');

function view(id: string, alive: boolean, lastSeenAgoMs: number, inFlight: number): NodeView {
  return {
    id,
    host: `${id}.internal`,
    pid: 4121,
    version: '0.1.0',
    startedAt: new Date(NOW - 7_500_000).toISOString(),
    lastSeenAt: new Date(NOW - lastSeenAgoMs).toISOString(),
    alive,
    inFlight,
    targets: {},
  };
}

describe('nodesText', () => {
  it('prints id, host, pid, version, started, last seen, alive and in flight per node', () => {
    const lines = nodesText([view('relay-a', true, 2000, 12), view('relay-b', false, 600_000, 0)], NOW).split('\n');
    expect(lines[0]).toBe(NODES_HEADER);
    expect(lines[0]).toMatch(/^ID\s+HOST\s+PID\s+VERSION\s+STARTED\s+LAST SEEN\s+ALIVE\s+IN FLIGHT$/);
    expect(lines[1]?.split(/\s{2,}/)).toEqual(['relay-a', 'relay-a.internal', '4121', '0.1.0', '2h05m ago', '2s ago', 'yes', '12']);
    expect(lines[2]?.split(/\s{2,}/)).toEqual(['relay-b', 'relay-b.internal', '4121', '0.1.0', '2h05m ago', '10m00s ago', 'NO', '0']);
    expect(lines[3]).toBe('-- 2 nodes, 1 alive');
  });

  it('prints only the header and the count when the database knows no node', () => {
    expect(nodesText([], NOW)).toBe(`${NODES_HEADER}\n-- 0 nodes, 0 alive`);
  });
});
