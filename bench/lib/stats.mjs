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

/**
 * A Prometheus histogram out of parsed metrics (for a window, pass a metricsDelta): its count,
 * mean and, for each quantile, the upper bound of the bucket that holds it (Infinity when it
 * is past the last finite bound). `labels` picks one series, e.g. { stage: 'write' }.
 */
export function histogram(m, name, labels = {}) {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const matches = (key) => {
    const i = key.indexOf('{');
    const labelText = i < 0 ? '' : key.slice(i);
    return want.every((w) => labelText.includes(w));
  };
  const buckets = [];
  let count = 0;
  let sum = 0;
  for (const [key, v] of Object.entries(m)) {
    if (!matches(key)) continue;
    if (key.startsWith(`${name}_bucket{`)) {
      const le = key.match(/le="([^"]+)"/)?.[1];
      if (le !== undefined) buckets.push([le === '+Inf' ? Infinity : Number(le), v]);
    } else if (key === `${name}_count` || key.startsWith(`${name}_count{`)) count += v;
    else if (key === `${name}_sum` || key.startsWith(`${name}_sum{`)) sum += v;
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const quantile = (q) => {
    if (!(count > 0)) return NaN;
    for (const [le, n] of buckets) if (n >= q * count) return le;
    return Infinity;
  };
  return { count, mean: count > 0 ? sum / count : NaN, sum, p50: quantile(0.5), p99: quantile(0.99), p999: quantile(0.999), max: quantile(1) };
}

/** The metrics the latency runs read, to say where a produce request's time went. */
export const SERVER_TIME_METRICS = [
  'skiff_proxy_request_seconds',
  'skiff_broker_flush_seconds',
  'skiff_broker_flush_stage_seconds',
  'skiff_nodejs_gc_duration_seconds',
];

/**
 * Where produce time went on the server during a run, in milliseconds: Produce requests
 * (frame read to response queued), whole flushes and their stages (wait for the flush,
 * WAL object write, commit), garbage-collection pauses, and the event loop's timer
 * intervals (`after` is the run's last scrape; prom-client resets those at every scrape, so
 * they cover the run). Histogram figures are bucket upper bounds.
 */
export function serverTime(delta, after) {
  const ms = (h) => ({ count: h.count, p50: h.p50 * 1000, p99: h.p99 * 1000, p999: h.p999 * 1000, mean: Number((h.mean * 1000).toFixed(3)) });
  const gcKinds = {};
  for (const kind of ['minor', 'major', 'incremental', 'weakcb']) {
    const h = histogram(delta, 'skiff_nodejs_gc_duration_seconds', { kind });
    if (h.count > 0) gcKinds[kind] = { count: h.count, pauseMs: Number((h.sum * 1000).toFixed(1)), longestMsAtMost: h.max * 1000 };
  }
  return {
    produceRequest: ms(histogram(delta, 'skiff_proxy_request_seconds', { api: 'Produce' })),
    flush: ms(histogram(delta, 'skiff_broker_flush_seconds')),
    flushWait: ms(histogram(delta, 'skiff_broker_flush_stage_seconds', { stage: 'wait' })),
    flushWrite: ms(histogram(delta, 'skiff_broker_flush_stage_seconds', { stage: 'write' })),
    flushCommit: ms(histogram(delta, 'skiff_broker_flush_stage_seconds', { stage: 'commit' })),
    gc: gcKinds,
    eventLoopIntervalMs: {
      p99: Number(((after.skiff_nodejs_eventloop_lag_p99_seconds ?? NaN) * 1000).toFixed(1)),
      max: Number(((after.skiff_nodejs_eventloop_lag_max_seconds ?? NaN) * 1000).toFixed(1)),
    },
  };
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
