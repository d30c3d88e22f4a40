// Small statistics helpers: medians of repeated runs and latency percentiles.
import { readFileSync, existsSync } from 'node:fs';

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Nearest-rank percentile of an ascending array. */
export function pct(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export function summarize(samples) {
  const s = Float64Array.from(samples).sort();
  if (s.length === 0) return { count: 0 };
  let sum = 0;
  for (const x of s) sum += x;
  const r3 = (x) => Number(x.toFixed(3));
  return { count: s.length, p50: r3(pct(s, 0.5)), p90: r3(pct(s, 0.9)), p99: r3(pct(s, 0.99)), p999: r3(pct(s, 0.999)), max: r3(s[s.length - 1]), mean: r3(sum / s.length) };
}

/** rdkafka_performance -A file: one latency in microseconds per line. Returns milliseconds. */
export function readLatencyFile(path, dropFirst = 0) {
  if (!existsSync(path)) return [];
  const out = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const v = Number(lines[i]);
    if (lines[i] !== '' && Number.isFinite(v)) out.push(v / 1000);
  }
  return out.slice(Math.min(dropFirst, Math.floor(out.length / 2)));
}

/** Prometheus text format -> { 'name{labels}': value } for counters and gauges. */
export function parseMetrics(text) {
  const m = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const v = Number(line.slice(i + 1));
    if (Number.isFinite(v)) m[line.slice(0, i)] = v;
  }
  return m;
}

export function metricsDelta(before, after, names) {
  const out = {};
  for (const [k, v] of Object.entries(after)) {
    if (!names.some((n) => k.startsWith(n))) continue;
    out[k] = v - (before[k] ?? 0);
  }
  return out;
}

export const fmt = {
  n(x, d = 0) {
    if (!Number.isFinite(x)) return '–';
    return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  },
  mb(bytes) {
    return Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : '–';
  },
  ratio(x) {
    if (!Number.isFinite(x)) return '–';
    return x >= 10 ? `${x.toFixed(0)}×` : `${x.toFixed(2)}×`;
  },
  pct(x) {
    return Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '–';
  },
};
