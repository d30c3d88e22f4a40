// The table of Skiff's own Prometheus metrics that the README carries, printed from the
// metric definitions themselves (`skiff metrics --markdown`), so the two cannot drift.
import { register, type Metric } from 'prom-client';
import { brokerMetrics } from '../broker/metrics.js';
import { proxyMetrics } from '../proxy/metrics.js';
import { storageMetrics } from '../storage/metrics.js';

const GROUPS: Array<[string, Record<string, Metric>]> = [
  ['broker', brokerMetrics],
  ['proxy', proxyMetrics],
  ['storage', storageMetrics],
];

export function metricsMarkdown(): string {
  const rows: string[] = [];
  for (const [where, metrics] of GROUPS) {
    for (const metric of Object.values(metrics)) {
      // prom-client keeps these on the metric object; its types do not show them.
      const m = metric as unknown as { name: string; help: string; labelNames?: string[] };
      const type = register.getSingleMetric(m.name)?.constructor.name.toLowerCase() ?? '?';
      const labels = (m.labelNames ?? []).map((l) => `\`${l}\``).join(', ');
      rows.push(`| \`${m.name}\` | ${type} | ${labels || '–'} | ${where} | ${m.help.replace(/\|/g, '\\|')} |`);
    }
  }
  return ['| metric | type | labels | from | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
