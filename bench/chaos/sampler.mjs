// The soak sampler: the relay processes' RSS (/proc/PID/status VmRSS) and open fds
// (/proc/PID/fd) every 5 s, and per process life a start / end / max and growth verdict.
import { readdirSync, readFileSync } from 'node:fs';

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

/**
 * Start / end / max and a growth verdict for a series of samples of one process. Both series
 * are noisy (GC saw-tooth, connections coming and going), so the verdict compares the floor
 * (minimum) of the last third of the samples after the warm-up with the floor of the first
 * third: a leak raises the floor, load swings do not.
 */
function growth(samples, field, warmupMs) {
  if (samples.length === 0) return null;
  const first = samples[0].at;
  const usable = samples.filter((s) => s.at - first >= warmupMs);
  const series = usable.length >= 6 ? usable : samples;
  const values = series.map((s) => s[field]);
  const third = Math.max(1, Math.floor(values.length / 3));
  const avg = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const earlyFloor = Math.min(...values.slice(0, third));
  const lateFloor = Math.min(...values.slice(-third));
  // Least-squares slope per minute.
  const xs = series.map((s) => (s.at - series[0].at) / 60_000);
  const mx = avg(xs);
  const my = avg(values);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const slope = den === 0 ? 0 : xs.reduce((a, x, k) => a + (x - mx) * (values[k] - my), 0) / den;
  // Too few samples after the warm-up (a short run, or a kill late in it): no verdict.
  const grows =
    usable.length < 6
      ? null
      : field === 'rss'
      ? lateFloor > earlyFloor * 1.2 && lateFloor - earlyFloor > 20 * 1024 * 1024
      : lateFloor - earlyFloor > 10;
  return {
    start: samples[0][field],
    end: samples.at(-1)[field],
    max: Math.max(...samples.map((s) => s[field])),
    earlyFloor,
    lateFloor,
    earlyAvg: Math.round(avg(values.slice(0, third))),
    lateAvg: Math.round(avg(values.slice(-third))),
    slopePerMinute: Math.round(slope),
    samples: samples.length,
    grows,
  };
}

/** Samples every node of `cluster` on a timer; `samples` is one series over all nodes and lives. */
export class Sampler {
  constructor(cluster, everyMs = 5000) {
    this.cluster = cluster;
    this.everyMs = everyMs;
    this.samples = [];
    this.timer = null;
  }

  start() {
    this.timer = setInterval(() => this.take(), this.everyMs);
    this.take();
  }

  stop() {
    clearInterval(this.timer);
  }

  take() {
    for (const node of this.cluster.nodes) {
      const s = procSample(node.pid);
      if (s) this.samples.push(s);
    }
  }

  latest() {
    return this.samples.at(-1);
  }

  /** The memory section of the report. Growth only means something within one process life: the last one. */
  memory(soak) {
    const samples = this.samples;
    const lastPid = samples.at(-1)?.pid;
    const lifeSamples = samples.filter((s) => s.pid === lastPid);
    return {
      rss: growth(lifeSamples, 'rss', soak ? 60_000 : 0),
      fds: growth(lifeSamples, 'fds', soak ? 60_000 : 0),
      maxRssAllLives: samples.length ? Math.max(...samples.map((s) => s.rss)) : null,
      maxFdsAllLives: samples.length ? Math.max(...samples.map((s) => s.fds)) : null,
      lives: new Set(samples.map((s) => s.pid)).size,
    };
  }
}
