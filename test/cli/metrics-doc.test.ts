// The README's metrics table is what the code registers, and it lists every metric Skiff defines.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { metricsMarkdown } from '../../services/cli/metrics-doc.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('metrics table', () => {
  it('is in the README as the code prints it', () => {
    expect(readFileSync('README.md', 'utf8')).toContain(metricsMarkdown());
  });

  it('lists every metric defined anywhere in services/', () => {
    const table = metricsMarkdown();
    const defined = sources('services').flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/new (?:Counter|Gauge|Histogram|Summary)\(\{\s*name: '([a-z_]+)'/g)].map((m) => m[1]));
    expect(defined.length).toBeGreaterThan(20);
    for (const name of defined) expect(table).toContain(`| \`${name}\` |`);
  });
});
