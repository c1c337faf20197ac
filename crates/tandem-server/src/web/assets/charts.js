// Line charts on <canvas> for the dashboard, and the arithmetic behind them: rates from
// counters and quantiles from histogram buckets, both over the difference of two readings
// (what Prometheus's rate() and histogram_quantile() do).

/**
 * The q-quantile (0..1) of a histogram, interpolating linearly inside the bucket where it
 * falls. `counts[i]` observations are at or below `bounds[i]` (and above `bounds[i-1]`);
 * the last count is above every bound, where the highest bound is returned. `null` without
 * observations.
 */
export function quantile(bounds, counts, q) {
  const total = counts.reduce((sum, c) => sum + c, 0);
  if (!total) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i += 1) {
    if (below + counts[i] >= rank && counts[i] > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - below) / counts[i]);
    }
    below += counts[i];
  }
  return bounds[bounds.length - 1];
}

/** Bucket counts observed between two readings (zeros if the later one was reset). */
export function difference(later, earlier) {
  const out = later.map((c, i) => c - (earlier[i] ?? 0));
  return out.some((c) => c < 0) ? later.map(() => 0) : out;
}

/** Per-second rate of a counter between two readings; 0 across a reset. */
export function rate(later, earlier, seconds) {
  if (seconds <= 0) return 0;
  const delta = later - earlier;
  return delta < 0 ? 0 : delta / seconds;
}

/** A compact number: 0.5, 12, 1.2k, 3.4M. */
export function compact(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(abs >= 1e7 ? 0 : 1)}M`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(abs >= 1e4 ? 0 : 1)}k`;
  if (abs >= 10 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(abs >= 1 ? 1 : 2);
}

/** A duration in seconds, shown in µs, ms or s. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds === 0) return '0';
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${(seconds * 1e3).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  return `${seconds.toFixed(2)} s`;
}

/** Colours for series that have no colour of their own. */
export const PALETTE = ['#5b4cf0', '#e8590c', '#2b8a3e', '#d6336c', '#1c7ed6', '#f59f00', '#868e96', '#0ca678'];

/**
 * A time-series line chart over a fixed window ending now. The legend (with each series'
 * latest value) is HTML next to the canvas, so it reads without the picture.
 */
export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} legend
   * @param {object} options
   * @param {(v: number) => string} options.format  axis and legend labels
   * @param {number} options.windowMs                the span of the x axis
   * @param {boolean} options.integers               whether values are counts (whole steps)
   */
  constructor(canvas, legend, { format = compact, windowMs = 300_000, integers = false } = {}) {
    this.canvas = canvas;
    this.integers = integers;
    this.legend = legend;
    this.format = format;
    this.windowMs = windowMs;
    this.last = null;
    new ResizeObserver(() => this.last && this.draw(...this.last)).observe(canvas);
  }

  /**
   * @param {number} now                   the right edge, ms since the epoch
   * @param {number[]} times               sample times, ascending
   * @param {{label: string, color?: string, values: (number|null)[]}[]} series
   */
  draw(now, times, series) {
    this.last = [now, times, series];
    const ratio = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (!width || !height) return;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    const g = this.canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);

    const style = getComputedStyle(document.documentElement);
    const muted = style.getPropertyValue('--muted').trim() || '#888';
    const grid = style.getPropertyValue('--border').trim() || '#ddd';
    const font = style.getPropertyValue('--font').trim() || 'sans-serif';

    let max = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
    const { step, top } = axis(max, this.integers);
    g.font = `11px ${font}`;
    const ticks = [];
    for (let value = 0; value <= top + step / 2; value += step) ticks.push(value);
    const left = 10 + Math.max(...ticks.map((v) => g.measureText(this.format(v)).width));
    const right = 10;
    const topPad = 10;
    const bottom = 22;
    const plotW = width - left - right;
    const plotH = height - topPad - bottom;
    const x = (t) => left + plotW * (1 - (now - t) / this.windowMs);
    const y = (v) => topPad + plotH * (1 - v / top);

    g.lineWidth = 1;
    g.fillStyle = muted;
    g.strokeStyle = grid;
    g.textBaseline = 'middle';
    g.textAlign = 'right';
    for (const value of ticks) {
      const py = Math.round(y(value)) + 0.5;
      g.beginPath();
      g.moveTo(left, py);
      g.lineTo(width - right, py);
      g.stroke();
      g.fillText(this.format(value), left - 6, py);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const minutes = Math.round(this.windowMs / 60_000);
    for (let m = 0; m <= minutes; m += 1) {
      const px = x(now - m * 60_000);
      g.fillText(m === 0 ? 'now' : `−${m}m`, Math.min(Math.max(px, left + 12), width - right - 12), height - bottom + 6);
    }

    g.save();
    g.beginPath();
    g.rect(left, topPad - 2, plotW, plotH + 4);
    g.clip();
    series.forEach((s, index) => {
      g.strokeStyle = s.color ?? PALETTE[index % PALETTE.length];
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.beginPath();
      let drawing = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) {
          drawing = false;
          return;
        }
        if (drawing) g.lineTo(x(times[i]), y(v));
        else g.moveTo(x(times[i]), y(v));
        drawing = true;
      });
      g.stroke();
    });
    g.restore();

    this.renderLegend(series);
  }

  renderLegend(series) {
    const items = series.map((s, index) => {
      const item = document.createElement('li');
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      // CSSOM, not a style attribute: allowed under the page's CSP.
      swatch.style.backgroundColor = s.color ?? PALETTE[index % PALETTE.length];
      const latest = s.values[s.values.length - 1];
      const value = document.createElement('strong');
      value.textContent = latest === null || latest === undefined ? '–' : this.format(latest);
      item.append(swatch, `${s.label} `, value);
      return item;
    });
    this.legend.replaceChildren(...items);
  }
}

/**
 * The y axis for values up to `max`: a round step (1, 2, 2.5 or 5 × 10^n) giving at most
 * five intervals, and the top, a whole number of steps a little above `max`.
 */
export function axis(max, integers = false) {
  if (!(max > 0)) return { step: 1, top: 1 };
  const headroom = max * 1.05;
  const rough = headroom / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
  if (integers) step = Math.max(1, Math.ceil(step));
  return { step, top: step * Math.ceil(headroom / step) };
}
