// The benchmark reads server histograms over a run's window to say where produce time went;
// these check that reading against prom-client's own text output.
import { describe, expect, it } from 'vitest';
import { Histogram, Registry } from 'prom-client';
// @ts-expect-error: a plain ES module of the benchmark, without types
import { histogram, metricsDelta, parseMetrics } from '../../bench/lib/stats.mjs';

function stageHistogram() {
  const registry = new Registry();
  const h = new Histogram({ name: 'x_stage_seconds', help: 'h', labelNames: ['stage'], buckets: [0.001, 0.01, 0.1], registers: [registry] });
  return { registry, h };
}

describe('histogram()', () => {
  it('gives the bucket bound holding each quantile, per label', async () => {
    const { registry, h } = stageHistogram();
    for (let i = 0; i < 98; i++) h.observe({ stage: 'write' }, 0.0005);
    h.observe({ stage: 'write' }, 0.05);
    h.observe({ stage: 'write' }, 0.5);
    h.observe({ stage: 'wait' }, 0.005);
    const m = parseMetrics(await registry.metrics());
    const w = histogram(m, 'x_stage_seconds', { stage: 'write' });
    expect(w.count).toBe(100);
    expect(w.p50).toBe(0.001);
    expect(w.p99).toBe(0.1);
    expect(w.max).toBe(Infinity);
    expect(w.mean).toBeCloseTo((98 * 0.0005 + 0.05 + 0.5) / 100, 9);
    expect(histogram(m, 'x_stage_seconds', { stage: 'wait' })).toMatchObject({ count: 1, p50: 0.01, max: 0.01 });
  });

  it('reads only what happened between two scrapes', async () => {
    const { registry, h } = stageHistogram();
    for (let i = 0; i < 10; i++) h.observe({ stage: 'write' }, 0.05);
    const before = parseMetrics(await registry.metrics());
    for (let i = 0; i < 10; i++) h.observe({ stage: 'write' }, 0.0005);
    const after = parseMetrics(await registry.metrics());
    const w = histogram(metricsDelta(before, after, ['x_stage_seconds']), 'x_stage_seconds', { stage: 'write' });
    expect(w).toMatchObject({ count: 10, p50: 0.001, p99: 0.001, max: 0.001 });
  });

  it('is empty, not zero, for a series with no observations', async () => {
    const { registry } = stageHistogram();
    const w = histogram(parseMetrics(await registry.metrics()), 'x_stage_seconds', { stage: 'commit' });
    expect(w.count).toBe(0);
    expect(w.p99).toBeNaN();
  });
});
