// @ts-check
// The two time series (uPlot): queue depth by state, and traffic per second. They hold the
// ring the relay keeps (an hour of samples) and append one sample per tick.

const COLORS = { queued: '#2563eb', deferred: '#d97706', held: '#6b7280', received: '#7c3aed', delivered: '#16a34a', failed: '#dc2626' };
const HOUR_S = 3600;

/**
 * @param {HTMLElement} el @param {string[]} names @param {string} unit
 * @returns {uPlot}
 */
function makePlot(el, names, unit) {
  /** @type {uPlot.Series[]} */
  const series = [{}];
  for (const name of names) {
    const stroke = COLORS[/** @type {keyof typeof COLORS} */ (name)];
    series.push({ label: name, stroke, width: 2, fill: `${stroke}14`, points: { show: false } });
  }
  const opts = {
    width: Math.max(320, el.clientWidth),
    height: 220,
    series,
    axes: [{}, { label: unit, size: 60 }],
    scales: { x: { time: true } },
    legend: { live: true },
  };
  return new uPlot(opts, [[], ...names.map(() => [])], el);
}

export class Plots {
  /** @param {HTMLElement} depthEl @param {HTMLElement} rateEl */
  constructor(depthEl, rateEl) {
    this.depth = makePlot(depthEl, ['queued', 'deferred', 'held'], 'messages');
    this.rates = makePlot(rateEl, ['received', 'delivered', 'failed'], 'per second');
    /** @type {import('./types.js').Sample[]} */
    this.samples = [];
    window.addEventListener('resize', () => {
      this.depth.setSize({ width: Math.max(320, depthEl.clientWidth), height: 220 });
      this.rates.setSize({ width: Math.max(320, rateEl.clientWidth), height: 220 });
    });
  }

  /** @param {import('./types.js').Sample[]} samples */
  reset(samples) {
    this.samples = samples.slice();
    this.draw();
  }

  /** @param {import('./types.js').Sample} sample */
  add(sample) {
    this.samples.push(sample);
    const since = sample.t - HOUR_S * 1000;
    while (this.samples.length > 0 && (this.samples[0]?.t ?? 0) < since) this.samples.shift();
    this.draw();
  }

  draw() {
    const s = this.samples;
    const t = s.map((x) => x.t / 1000);
    this.depth.setData([t, s.map((x) => x.queued), s.map((x) => x.deferred), s.map((x) => x.held)]);
    this.rates.setData([t, s.map((x) => x.received), s.map((x) => x.delivered), s.map((x) => x.failed)]);
  }
}
