import { describe, expect, it } from '@jest/globals';
import type { HttpTargetConfig } from '../../../src/config/types.js';
import { TargetState } from '../../../src/delivery/target-state.js';

const T0 = 1_700_000_000_000;

function target(concurrency: number, failures = 3, probeMs = 1_000): HttpTargetConfig {
  return {
    name: 'hooks',
    type: 'http',
    url: 'http://127.0.0.1:1/hook',
    format: 'json',
    headers: {},
    signing: 'onward',
    signingSecrets: [],
    timeoutMs: 1_000,
    concurrency,
    circuit: { failures, probeMs },
  };
}

/** Runs one attempt from taking its slot to its end. */
function attempt(state: TargetState, now: number, result: 'ok' | 'error' | 'contention'): void {
  state.take(now, 1);
  state.end(now, result === 'ok', result === 'contention');
}

describe('TargetState: adaptive concurrency', () => {
  it('starts at the configured bound and counts attempts in flight', () => {
    const state = new TargetState(target(8));
    expect(state.limit).toBe(8);
    expect(state.available(T0)).toBe(8);
    expect(state.take(T0, 2)).toBe(2);
    expect(state.inFlight).toBe(2);
    expect(state.available(T0)).toBe(6);
    state.end(T0, true, false);
    expect(state.available(T0)).toBe(7);
  });

  it('halves the limit on each contention signal, never below 1', () => {
    const state = new TargetState(target(8, 1000));
    const limits: number[] = [];
    for (let i = 0; i < 5; i++) {
      attempt(state, T0, 'contention');
      limits.push(state.limit);
    }
    expect(limits).toEqual([4, 2, 1, 1, 1]);
    expect(state.available(T0)).toBe(1);
  });

  it('rounds an odd limit down when halving', () => {
    const state = new TargetState(target(7, 1000));
    attempt(state, T0, 'contention');
    expect(state.limit).toBe(3);
  });

  it('leaves the limit alone on an ERROR that is not contention', () => {
    const state = new TargetState(target(8, 1000));
    attempt(state, T0, 'error');
    expect(state.limit).toBe(8);
  });

  it('raises the limit by one per success, up to the configured bound', () => {
    const state = new TargetState(target(4, 1000));
    attempt(state, T0, 'contention');
    attempt(state, T0, 'contention');
    expect(state.limit).toBe(1);
    const limits: number[] = [];
    for (let i = 0; i < 5; i++) {
      attempt(state, T0, 'ok');
      limits.push(state.limit);
    }
    expect(limits).toEqual([2, 3, 4, 4, 4]);
  });

  it('never offers negative room when more are in flight than a halved limit allows', () => {
    const state = new TargetState(target(8, 1000));
    expect(state.take(T0, 8)).toBe(8);
    state.end(T0, false, true); // limit 4, 7 in flight
    expect(state.available(T0)).toBe(0);
  });
});

describe('TargetState: circuit breaker', () => {
  it('stays up below the failure threshold and a success resets the count', () => {
    const state = new TargetState(target(4, 3));
    attempt(state, T0, 'error');
    attempt(state, T0, 'error');
    attempt(state, T0, 'ok');
    attempt(state, T0, 'error');
    attempt(state, T0, 'error');
    expect(state.up).toBe(true);
    expect(state.nextProbeAt).toBeNull();
  });

  it('opens after N consecutive ERRORs and offers nothing until the probe is due', () => {
    const state = new TargetState(target(4, 3, 1_000));
    attempt(state, T0, 'error');
    attempt(state, T0, 'error');
    expect(state.up).toBe(true);
    attempt(state, T0 + 10, 'error');
    expect(state.up).toBe(false);
    expect(state.nextProbeAt).toBe(T0 + 10 + 1_000);
    expect(state.available(T0 + 10)).toBe(0);
    expect(state.available(T0 + 1_009)).toBe(0);
  });

  it('lets exactly one probe through when it is due', () => {
    const state = new TargetState(target(4, 2, 1_000));
    attempt(state, T0, 'error');
    attempt(state, T0, 'error');
    const due = T0 + 1_000;
    expect(state.available(due)).toBe(1);
    expect(state.take(due, 5)).toBe(1); // this attempt is the probe, and only it
    expect(state.available(due)).toBe(0);
    expect(state.available(due + 5_000)).toBe(0); // still only the one probe while it runs
  });

  it('keeps the circuit open after a failed probe and schedules the next one a probe interval later', () => {
    const state = new TargetState(target(4, 2, 1_000));
    attempt(state, T0, 'error');
    attempt(state, T0, 'error');
    const due = T0 + 1_000;
    state.take(due, 1);
    state.end(due + 50, false, false);
    expect(state.up).toBe(false);
    expect(state.nextProbeAt).toBe(due + 50 + 1_000);
    expect(state.available(due + 500)).toBe(0);
    expect(state.available(due + 1_050)).toBe(1);
  });

  it('closes the circuit on a successful probe', () => {
    const state = new TargetState(target(4, 2, 1_000));
    attempt(state, T0, 'contention');
    attempt(state, T0, 'contention');
    expect(state.up).toBe(false);
    const due = T0 + 1_000;
    expect(state.take(due, 1)).toBe(1);
    state.end(due, true, false);
    expect(state.up).toBe(true);
    expect(state.nextProbeAt).toBeNull();
    expect(state.limit).toBe(2); // 4 → 2 → 1, then +1 for the success
    expect(state.available(due)).toBe(2);
  });

  it('never takes more slots than the live limit, and gives back unused ones', () => {
    const state = new TargetState(target(4, 2, 1_000));
    expect(state.take(T0, 10)).toBe(4);
    expect(state.take(T0, 1)).toBe(0);
    state.release(3);
    expect(state.available(T0)).toBe(3);
  });
});
