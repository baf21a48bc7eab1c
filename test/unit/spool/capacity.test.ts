/**
 * SpoolCapacity's verdicts: an unavailable store first (SPEC 9: new messages get 451 at
 * once), then the queue bound, then free disk; each re-evaluated on every call.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { SpoolCapacity } from '../../../src/spool/index.js';

const dir = mkdtempSync(join(tmpdir(), 'onward-capacity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SpoolCapacity', () => {
  it('says unavailable while the store does not answer, and ok again once it does', () => {
    let available = false;
    const capacity = new SpoolCapacity({ diskPath: null, minFreeDiskBytes: 0, maxQueued: 10, unfinished: () => 0, available: () => available });
    expect(capacity.check()).toBe('unavailable');
    available = true;
    expect(capacity.check()).toBe('ok');
  });

  it('puts an unavailable store before a full queue (the count of a dead store is stale)', () => {
    const capacity = new SpoolCapacity({ diskPath: null, minFreeDiskBytes: 0, maxQueued: 10, unfinished: () => 10, available: () => false });
    expect(capacity.check()).toBe('unavailable');
  });

  it('says queue-full at maxQueued unfinished messages on an available store', () => {
    let unfinished = 9;
    const capacity = new SpoolCapacity({ diskPath: null, minFreeDiskBytes: 0, maxQueued: 10, unfinished: () => unfinished, available: () => true });
    expect(capacity.check()).toBe('ok');
    unfinished = 10;
    expect(capacity.check()).toBe('queue-full');
  });

  it('says disk-low when the local spool disk has less free space than the floor', () => {
    const low = new SpoolCapacity({ diskPath: dir, minFreeDiskBytes: Number.MAX_SAFE_INTEGER, maxQueued: 10, unfinished: () => 0, available: () => true });
    expect(low.check()).toBe('disk-low');
    const fine = new SpoolCapacity({ diskPath: dir, minFreeDiskBytes: 1, maxQueued: 10, unfinished: () => 0, available: () => true });
    expect(fine.check()).toBe('ok');
  });
});
