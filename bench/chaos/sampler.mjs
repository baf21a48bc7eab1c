// The soak sampler: each relay process's RSS (/proc/PID/status VmRSS) and open fds
// (/proc/PID/fd) every 5 s, with the run's running totals (accepted, delivered) at each tick;
// then per node a growth verdict over its last process life and a table per 5-minute window.
// Every figure is per process (per node with --backend postgres), never summed over nodes: a
// leak is a property of one process, and a sum would hide one node's growth in the others' noise.
import { readdirSync, readFileSync } from 'node:fs';

/** The first minutes of a life are not judged: memtable, V8 heaps, malloc arenas and pools fill up. */
export const SOAK_WARMUP_MS = 3 * 60_000;
/** Rows of the per-window table. */
export const WINDOW_MS = 5 * 60_000;
/** The low-water line is fitted through one floor (minimum) per minute. */
const FLOOR_BUCKET_MS = 60_000;
/** A low-water slope below this (MB/min) is negligible whatever its significance: 0.1 MB/min is 6 MB an hour. */
const NEGLIGIBLE_MB_PER_MIN = 0.1;
const MB = 1024 * 1024;

/** One sample of a live process, or null (gone, or exiting: a zombie has no memory to speak of). */
function procSample(pid) {
  if (pid === null) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
    if (!Number.isFinite(rssKb)) return null;
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return { at: Date.now(), pid, rss: rssKb * 1024, fds };
  } catch {
    return null;
  }
}

const avg = (a) => a.reduce((x, y) => x + y, 0) / a.length;

/** Least-squares slope of points [x, y] and its standard error (null with fewer than 3 points). */
export function fitSlope(points) {
  if (points.length < 2) return { slope: 0, se: null };
  const mx = avg(points.map(([x]) => x));
  const my = avg(points.map(([, y]) => y));
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  if (sxx === 0) return { slope: 0, se: null };
  const slope = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
  if (points.length < 3) return { slope, se: null };
  const residual = points.reduce((a, [x, y]) => a + (y - my - slope * (x - mx)) ** 2, 0);
  return { slope, se: Math.sqrt(residual / (points.length - 2) / sxx) };
}

/** One floor (minimum RSS) per minute of `samples` from `from` to `until`: the low-water line, as [minutes, MB]. */
export function floorsPerMinute(samples, from, until = Infinity) {
  const buckets = new Map();
  for (const s of samples) {
    if (s.at < from || s.at > until) continue;
    const k = Math.floor((s.at - from) / FLOOR_BUCKET_MS);
    const b = buckets.get(k) ?? { n: 0, rss: Infinity };
    buckets.set(k, { n: b.n + 1, rss: Math.min(b.rss, s.rss) });
  }
  // A minute with few samples (the last, cut short) has no floor to speak of, only a point of the saw-tooth.
  const full = Math.max(0, ...[...buckets.values()].map((b) => b.n));
  return [...buckets]
    .filter(([, b]) => b.n * 2 >= full)
    .sort((a, b) => a[0] - b[0])
    .map(([k, b]) => [k + 0.5, b.rss / MB]);
}

/** Rises by more than noise and more than a negligible amount: slope − 2·SE above the floor of concern. */
const rising = ({ slope, se }) => se !== null && slope - 2 * se > 0 && slope > NEGLIGIBLE_MB_PER_MIN;

/**
 * The RSS low-water line of one process life after the warm-up and up to `until` (the end of
 * the load: the drain is another regime): its slope (MB/min, with a standard error) and a verdict. RSS saw-tooths with GC and load, so the line goes through the
 * floor of each minute. `flat`: no rise beyond noise (slope − 2·SE ≤ 0) or a negligible one;
 * `levels off`: it rose, but the second half of the judged span does not, and clearly less than
 * the whole (a bound being reached: a cache or a heap filling to its size); `grows`: anything
 * else that rises. Null with fewer than 6 minutes to judge.
 */
export function lowWater(samples, warmupMs, until = Infinity) {
  if (samples.length === 0) return null;
  const from = samples[0].at + warmupMs;
  const floors = floorsPerMinute(samples, from, until);
  const whole = fitSlope(floors);
  const half = floors.slice(Math.floor(floors.length / 2));
  const late = fitSlope(half);
  const judged = floors.length >= 6;
  let verdict = null;
  // Levelling off needs evidence: the second half does not rise, and clearly less than the whole.
  const levels = !rising(late) && late.se !== null && late.slope + 2 * late.se < whole.slope;
  if (judged) verdict = !rising(whole) ? 'flat' : levels ? 'levels off' : 'grows';
  const round = (x) => (x === null ? null : Number(x.toFixed(3)));
  return {
    warmupSeconds: warmupMs / 1000,
    minutesJudged: floors.length,
    slopeMBPerMin: round(whole.slope),
    slopeStdErr: round(whole.se),
    lateSlopeMBPerMin: round(late.slope),
    lateSlopeStdErr: round(late.se),
    firstFloorMB: floors.length ? round(floors[0][1]) : null,
    lastFloorMB: floors.length ? round(floors.at(-1)[1]) : null,
    verdict,
  };
}

/**
 * Start / end / max of a series of one process life, the floors (minima) of its first and last
 * thirds after the warm-up, and for fds a verdict from those floors (a leaked fd raises the floor,
 * connections coming and going do not).
 */
function growth(samples, field, warmupMs) {
  if (samples.length === 0) return null;
  const first = samples[0].at;
  const usable = samples.filter((s) => s.at - first >= warmupMs);
  const series = usable.length >= 6 ? usable : samples;
  const values = series.map((s) => s[field]);
  const third = Math.max(1, Math.floor(values.length / 3));
  const earlyFloor = Math.min(...values.slice(0, third));
  const lateFloor = Math.min(...values.slice(-third));
  return {
    start: samples[0][field],
    end: samples.at(-1)[field],
    max: Math.max(...samples.map((s) => s[field])),
    earlyFloor,
    lateFloor,
    earlyAvg: Math.round(avg(values.slice(0, third))),
    lateAvg: Math.round(avg(values.slice(-third))),
    samples: samples.length,
  };
}

/** Per `WINDOW_MS` from `startedAt`, per node: RSS low-water / max, fds range, and the run's accepted / delivered in the window. */
export function windows(samples, ticks, startedAt, nodeNames) {
  if (ticks.length === 0) return [];
  const end = ticks.at(-1).at;
  const totalsAt = (t) => {
    let last = { accepted: 0, delivered: 0 };
    for (const tick of ticks) {
      if (tick.at > t) break;
      last = tick;
    }
    return last;
  };
  const rows = [];
  for (let from = startedAt; from < end; from += WINDOW_MS) {
    // A remainder under a minute (the drain after the load) joins the window before it.
    const to = end - (from + WINDOW_MS) < 60_000 ? end : from + WINDOW_MS;
    const [a, b] = [totalsAt(from), totalsAt(to)];
    for (const node of nodeNames) {
      const inWindow = samples.filter((s) => s.node === node && s.at >= from && s.at < (to === end ? to + 1 : to));
      rows.push({
        node,
        fromMinute: Number(((from - startedAt) / 60_000).toFixed(2)),
        toMinute: Number(((to - startedAt) / 60_000).toFixed(2)),
        partial: to - from !== WINDOW_MS,
        samples: inWindow.length,
        lives: new Set(inWindow.map((s) => s.pid)).size,
        rssLowBytes: inWindow.length ? Math.min(...inWindow.map((s) => s.rss)) : null,
        rssMaxBytes: inWindow.length ? Math.max(...inWindow.map((s) => s.rss)) : null,
        fdsMin: inWindow.length ? Math.min(...inWindow.map((s) => s.fds)) : null,
        fdsMax: inWindow.length ? Math.max(...inWindow.map((s) => s.fds)) : null,
        // The whole run's, not the node's: the harness cannot tell which node delivered a copy.
        accepted: b.accepted - a.accepted,
        delivered: b.delivered - a.delivered,
      });
    }
    if (to === end) break;
  }
  return rows;
}

/**
 * Samples every node of `cluster` on a timer; `samples` is one series over all nodes and lives
 * (each sample names its node), `ticks` the running totals from `totals()` at each round.
 */
export class Sampler {
  constructor(cluster, { everyMs = 5000, totals = () => ({ accepted: 0, delivered: 0 }) } = {}) {
    this.cluster = cluster;
    this.everyMs = everyMs;
    this.totals = totals;
    this.samples = [];
    this.ticks = [];
    this.startedAt = null;
    this.loadEndedAt = null;
    this.timer = null;
  }

  /** The load is over: the low-water line ends here (a drained relay frees memory; that is no trend). */
  loadEnded() {
    this.loadEndedAt ??= Date.now();
  }

  start() {
    this.startedAt = Date.now();
    this.timer = setInterval(() => this.take(), this.everyMs);
    this.take();
  }

  stop() {
    clearInterval(this.timer);
  }

  take() {
    this.ticks.push({ at: Date.now(), ...this.totals() });
    for (const [k, node] of this.cluster.nodes.entries()) {
      const s = procSample(node.pid);
      if (s) this.samples.push({ ...s, node: nodeName(node, k) });
    }
  }

  latest() {
    return this.samples.at(-1);
  }

  /**
   * The memory section of the report. Growth only means something within one process life: per
   * node, its last one. `rss` / `fds` / `lowWater` at the top are the node whose low-water line
   * rises fastest (the only node with level), so a single figure never averages a leak away.
   */
  memory(soak) {
    const warmupMs = soak ? SOAK_WARMUP_MS : 0;
    const names = this.cluster.nodes.map(nodeName);
    const nodes = names.map((node) => {
      const all = this.samples.filter((s) => s.node === node);
      const lastPid = all.at(-1)?.pid;
      const life = all.filter((s) => s.pid === lastPid);
      return {
        node,
        lives: new Set(all.map((s) => s.pid)).size,
        rss: growth(life, 'rss', warmupMs),
        fds: { ...growth(life, 'fds', warmupMs), grows: fdsGrow(life, warmupMs) },
        lowWater: soak ? lowWater(life, warmupMs, this.loadEndedAt ?? Infinity) : null,
      };
    });
    const worst = nodes.reduce((w, n) => ((n.lowWater?.slopeMBPerMin ?? -Infinity) > (w?.lowWater?.slopeMBPerMin ?? -Infinity) ? n : w), nodes[0] ?? null);
    const samples = this.samples;
    return {
      perProcess: true,
      worstNode: worst?.node ?? null,
      rss: worst?.rss ?? null,
      fds: worst?.fds ?? null,
      lowWater: worst?.lowWater ?? null,
      nodes,
      windowMinutes: WINDOW_MS / 60_000,
      windows: soak && this.startedAt !== null ? windows(samples, this.ticks, this.startedAt, names) : [],
      maxRssAllLives: samples.length ? Math.max(...samples.map((s) => s.rss)) : null,
      maxFdsAllLives: samples.length ? Math.max(...samples.map((s) => s.fds)) : null,
      lives: new Set(samples.map((s) => s.pid)).size,
    };
  }
}

/** A leaked fd raises the floor of the series; connections coming and going do not. Null: too few samples. */
function fdsGrow(life, warmupMs) {
  if (life.length === 0) return null;
  const usable = life.filter((s) => s.at - life[0].at >= warmupMs);
  if (usable.length < 6) return null;
  const third = Math.floor(usable.length / 3);
  return Math.min(...usable.slice(-third).map((s) => s.fds)) - Math.min(...usable.slice(0, third).map((s) => s.fds)) > 10;
}

function nodeName(node, k) {
  return node.nodeId ?? (k === 0 ? 'relay' : `relay-${k + 1}`);
}
