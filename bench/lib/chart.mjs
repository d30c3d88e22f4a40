// The results chart: throughput bars and latency percentiles, drawn as SVG and converted to
// PNG with rsvg-convert (Debian's librsvg2-bin; bench/build.sh installs it).
import { writeFileSync } from 'node:fs';
import { run } from './proc.mjs';

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS = { skiff: '#2f6fb0', jetstream: '#3a9a5b', limit: '#8a8a8a', target: '#c0392b' };
const LAT_SHADES = { p50: 0.45, p99: 0.75, p999: 1 };

function logScale(min, max, x0, x1) {
  const lo = Math.log10(min);
  const hi = Math.log10(max);
  return (v) => x0 + ((Math.log10(Math.max(v, min)) - lo) / (hi - lo)) * (x1 - x0);
}

function decades(min, max) {
  const out = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) out.push(10 ** e);
  return out;
}

const tickLabel = (v) => (v >= 1 ? v.toLocaleString('en-US') : String(v));

/**
 * throughput: [{ label, value (MB/s), kind: 'skiff'|'jetstream'|'limit' }]
 * latency: [{ label, kind, p50, p99, p999 }] in ms; targets: [{ label, value }] in ms
 */
export function chartSvg({ title, subtitle, throughput, latency, latencyTargets = [] }) {
  const W = 1100;
  const left = 330;
  const right = W - 40;
  const rowH = 20;
  let y = 70;
  const parts = [];
  parts.push(`<text x="20" y="30" font-size="20" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<text x="20" y="52" font-size="12" fill="#555">${esc(subtitle)}</text>`);

  // Panel 1: throughput
  const tv = throughput.map((t) => t.value).filter((v) => v > 0);
  const tMin = 10 ** Math.floor(Math.log10(Math.max(Math.min(...tv, 1), 0.1)));
  const tMax = 10 ** Math.ceil(Math.log10(Math.max(...tv, 10)));
  const tx = logScale(tMin, tMax, left, right);
  y += 10;
  parts.push(`<text x="20" y="${y}" font-size="15" font-weight="bold">Throughput, MB/s of payload (log scale; median of runs)</text>`);
  y += 14;
  const p1Top = y;
  const p1Bottom = y + throughput.length * rowH;
  for (const d of decades(tMin, tMax)) {
    const x = tx(d);
    parts.push(`<line x1="${x}" y1="${p1Top}" x2="${x}" y2="${p1Bottom}" stroke="#ddd"/>`);
    parts.push(`<text x="${x}" y="${p1Bottom + 14}" font-size="11" text-anchor="middle" fill="#555">${tickLabel(d)}</text>`);
  }
  for (const t of throughput) {
    const w = Math.max(1, tx(t.value) - left);
    parts.push(`<text x="${left - 8}" y="${y + 14}" font-size="12" text-anchor="end">${esc(t.label)}</text>`);
    if (t.value > 0) {
      parts.push(`<rect x="${left}" y="${y + 3}" width="${w}" height="${rowH - 6}" fill="${COLORS[t.kind] ?? '#999'}"/>`);
      parts.push(`<text x="${left + w + 4}" y="${y + 14}" font-size="11" fill="#333">${esc(t.value >= 100 ? t.value.toFixed(0) : t.value.toFixed(1))}</text>`);
    } else {
      parts.push(`<text x="${left + 4}" y="${y + 14}" font-size="11" fill="#a00">not measured</text>`);
    }
    y += rowH;
  }
  y = p1Bottom + 40;

  // legend
  let lx = 20;
  for (const [k, label] of [
    ['skiff', 'Skiff'],
    ['jetstream', 'NATS JetStream'],
    ['limit', 'machine limit'],
  ]) {
    parts.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${COLORS[k]}"/><text x="${lx + 16}" y="${y}" font-size="12">${label}</text>`);
    lx += 150;
  }
  for (const [p, a] of Object.entries(LAT_SHADES)) {
    parts.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="#444" fill-opacity="${a}"/><text x="${lx + 16}" y="${y}" font-size="12">${p}</text>`);
    lx += 70;
  }
  parts.push(`<line x1="${lx}" y1="${y - 4}" x2="${lx + 20}" y2="${y - 4}" stroke="${COLORS.target}" stroke-dasharray="4,3" stroke-width="2"/><text x="${lx + 26}" y="${y}" font-size="12">target</text>`);
  y += 30;

  // Panel 2: latency
  parts.push(`<text x="20" y="${y}" font-size="15" font-weight="bold">Latency at 50% of the measured maximum rate unless a rate is given, ms (log scale; p50 / p99 / p99.9)</text>`);
  y += 16 + 13 * latencyTargets.length;
  const lv = latency.flatMap((l) => [l.p50, l.p99, l.p999]).filter((v) => v > 0);
  const lMin = 10 ** Math.floor(Math.log10(Math.max(Math.min(...lv, 1), 0.01)));
  const lMax = 10 ** Math.ceil(Math.log10(Math.max(...lv, ...latencyTargets.map((t) => t.value), 10)));
  const lx2 = logScale(lMin, lMax, left, right);
  const groupH = 3 * 12 + 10;
  const p2Top = y;
  const p2Bottom = y + latency.length * groupH;
  for (const d of decades(lMin, lMax)) {
    const x = lx2(d);
    parts.push(`<line x1="${x}" y1="${p2Top}" x2="${x}" y2="${p2Bottom}" stroke="#ddd"/>`);
    parts.push(`<text x="${x}" y="${p2Bottom + 14}" font-size="11" text-anchor="middle" fill="#555">${tickLabel(d)}</text>`);
  }
  latencyTargets.forEach((t, i) => {
    const x = lx2(t.value);
    const ty = p2Top - 4 - 13 * (latencyTargets.length - 1 - i);
    parts.push(`<line x1="${x}" y1="${ty - 9}" x2="${x}" y2="${p2Bottom}" stroke="${COLORS.target}" stroke-dasharray="4,3" stroke-width="2"/>`);
    parts.push(`<text x="${x + 4}" y="${ty}" font-size="10" fill="${COLORS.target}">${esc(t.label)}</text>`);
  });
  for (const l of latency) {
    parts.push(`<text x="${left - 8}" y="${y + 22}" font-size="12" text-anchor="end">${esc(l.label)}</text>`);
    let by = y + 2;
    for (const p of ['p50', 'p99', 'p999']) {
      const v = l[p];
      if (v > 0) {
        const w = Math.max(1, lx2(v) - left);
        parts.push(`<rect x="${left}" y="${by}" width="${w}" height="10" fill="${COLORS[l.kind] ?? '#999'}" fill-opacity="${LAT_SHADES[p]}"/>`);
        parts.push(`<text x="${left + w + 4}" y="${by + 9}" font-size="10" fill="#333">${p} ${v >= 10 ? v.toFixed(1) : v.toFixed(2)}</text>`);
      }
      by += 12;
    }
    y += groupH;
  }
  y = p2Bottom + 30;
  const H = y;
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="white"/>
${parts.join('\n')}
</svg>
`;
}

export async function writeChart(spec, svgPath, pngPath) {
  writeFileSync(svgPath, chartSvg(spec));
  const r = await run('rsvg-convert', ['-b', 'white', '-o', pngPath, svgPath], { timeoutMs: 60_000 }).catch((e) => ({ code: -1, stderr: String(e) }));
  if (r.code !== 0) throw new Error(`rsvg-convert failed: ${r.stderr}`);
}
