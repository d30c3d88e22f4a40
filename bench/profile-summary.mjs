#!/usr/bin/env node
// Prints the functions with the most self time in a V8 .cpuprofile (from node --cpu-prof):
// self ms, self %, total % (time with the function anywhere on the stack) and file:line.
// Locations in dist/ are mapped back to the TypeScript source through the .js.map files tsc
// writes beside them.
//
//   node bench/profile-summary.mjs <file.cpuprofile | dir> [--top 25] [--by-file] [--callers] [--json]
//
// --callers adds, under each function, the three biggest callers in the program's own code
// (frames of Node's library are skipped), as shares of the function's self time.
//
// Given a directory, the newest .cpuprofile in it is read.
import { readFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64IDX = new Map([...B64].map((c, i) => [c, i]));

/** Source map v3 'mappings' -> per generated line, ascending [genCol, srcIdx, srcLine, srcCol]. */
function decodeMappings(mappings) {
  const lines = [];
  let srcIdx = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const lineText of mappings.split(';')) {
    const segs = [];
    let genCol = 0;
    if (lineText) {
      for (const seg of lineText.split(',')) {
        if (!seg) continue;
        const vals = [];
        let value = 0;
        let shift = 0;
        for (const ch of seg) {
          const digit = B64IDX.get(ch);
          if (digit === undefined) break;
          value += (digit & 31) << shift;
          if (digit & 32) {
            shift += 5;
          } else {
            vals.push(value & 1 ? -(value >>> 1) : value >>> 1);
            value = 0;
            shift = 0;
          }
        }
        genCol += vals[0];
        if (vals.length >= 4) {
          srcIdx += vals[1];
          srcLine += vals[2];
          srcCol += vals[3];
          segs.push([genCol, srcIdx, srcLine, srcCol]);
        }
      }
    }
    lines.push(segs);
  }
  return lines;
}

const maps = new Map();
function sourceMapFor(jsPath) {
  if (maps.has(jsPath)) return maps.get(jsPath);
  let m = null;
  const mapPath = `${jsPath}.map`;
  if (existsSync(mapPath)) {
    try {
      const raw = JSON.parse(readFileSync(mapPath, 'utf8'));
      const root = resolve(dirname(mapPath), raw.sourceRoot ?? '');
      m = { sources: raw.sources.map((s) => resolve(root, s)), lines: decodeMappings(raw.mappings) };
    } catch {
      m = null;
    }
  }
  maps.set(jsPath, m);
  return m;
}

/** 0-based generated line/column -> { file, line (1-based) } in the original source, if mapped. */
function original(jsPath, line, col) {
  const m = sourceMapFor(jsPath);
  if (!m) return null;
  // a function's position can sit on a line with no mapping of its own: look back a little
  for (let l = line; l >= 0 && l > line - 3; l--) {
    const segs = m.lines[l];
    if (!segs || segs.length === 0) continue;
    let best = segs[0];
    for (const s of segs) {
      if (l === line && s[0] > col) break;
      best = s;
    }
    return { file: m.sources[best[1]], line: best[2] + 1 };
  }
  return null;
}

function location(callFrame, cwd) {
  const { url, lineNumber, columnNumber } = callFrame;
  if (!url) return '';
  let path = url;
  if (url.startsWith('file://')) {
    try {
      path = fileURLToPath(url);
    } catch {
      path = url;
    }
    const o = lineNumber >= 0 ? original(path, lineNumber, columnNumber) : null;
    if (o) return `${relative(cwd, o.file)}:${o.line}`;
    return `${relative(cwd, path)}:${lineNumber + 1}`;
  }
  return lineNumber >= 0 ? `${path}:${lineNumber + 1}` : path;
}

export function summarizeProfile(file, { top = 25, byFile = false, cwd = process.cwd() } = {}) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // duration of sample i: until the next sample (the last one gets the mean interval)
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  const dur = new Float64Array(samples.length);
  let sumDelta = 0;
  for (let i = 1; i < samples.length; i++) {
    dur[i - 1] = Math.max(0, deltas[i]);
    sumDelta += dur[i - 1];
  }
  if (samples.length > 0) dur[samples.length - 1] = samples.length > 1 ? sumDelta / (samples.length - 1) : 0;

  const keyOf = (n) => {
    const cf = n.callFrame;
    const name = cf.functionName || (cf.url ? '(anonymous)' : '');
    if (byFile) return cf.url ? location(cf, cwd).replace(/:\d+$/, '') || cf.url : name;
    return `${name}\u0000${cf.url}\u0000${cf.lineNumber}\u0000${cf.columnNumber}`;
  };
  const rows = new Map();
  const row = (n) => {
    const k = keyOf(n);
    let r = rows.get(k);
    if (!r) {
      const cf = n.callFrame;
      const name = cf.functionName || (cf.url ? '(anonymous)' : cf.functionName);
      r = { function: byFile ? k : name, location: byFile ? '' : location(cf, cwd), selfMs: 0, totalMs: 0 };
      if (byFile && !cf.url) r.function = name;
      rows.set(k, r);
    }
    return r;
  };

  let totalMs = 0;
  let idleMs = 0;
  for (let i = 0; i < samples.length; i++) {
    const ms = dur[i] / 1000;
    const leaf = nodes.get(samples[i]);
    if (!leaf) continue;
    totalMs += ms;
    if (leaf.callFrame.functionName === '(idle)') idleMs += ms;
    const leafRow = row(leaf);
    leafRow.selfMs += ms;
    // the caller: the nearest frame up the stack that is another function of the program itself
    const leafKey = keyOf(leaf);
    let callerKey = null;
    for (let id = parent.get(samples[i]); id !== undefined; id = parent.get(id)) {
      const n = nodes.get(id);
      if (n.callFrame.functionName === '(root)') break;
      const u = n.callFrame.url;
      // skip Node's own frames (Buffer.concat, fs/promises...) to reach the code that called them
      if (keyOf(n) !== leafKey && u && !u.startsWith('node:')) {
        const r = row(n);
        callerKey = `${r.function}${r.location ? ` (${r.location})` : ''}`;
        break;
      }
    }
    if (callerKey) {
      leafRow.callers ??= new Map();
      leafRow.callers.set(callerKey, (leafRow.callers.get(callerKey) ?? 0) + ms);
    }
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const n = nodes.get(id);
      if (n.callFrame.functionName === '(root)') break;
      const k = keyOf(n);
      if (seen.has(k)) continue;
      seen.add(k);
      row(n).totalMs += ms;
    }
  }
  const busyMs = totalMs - idleMs;
  const sorted = [...rows.values()]
    .filter((r) => r.function !== '(root)')
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top)
    .map((r, i) => ({
      rank: i + 1,
      function: r.function,
      location: r.location,
      selfMs: Number(r.selfMs.toFixed(1)),
      selfPct: Number(((100 * r.selfMs) / Math.max(totalMs, 1e-9)).toFixed(2)),
      selfPctOfBusy: Number(((100 * r.selfMs) / Math.max(busyMs, 1e-9)).toFixed(2)),
      totalPct: Number(((100 * r.totalMs) / Math.max(totalMs, 1e-9)).toFixed(2)),
      callers: [...(r.callers ?? new Map()).entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([caller, callerMs]) => ({ caller, pctOfSelf: Number(((100 * callerMs) / Math.max(r.selfMs, 1e-9)).toFixed(1)) })),
    }));
  return { file, sampledMs: Number(totalMs.toFixed(1)), idleMs: Number(idleMs.toFixed(1)), busyMs: Number(busyMs.toFixed(1)), samples: samples.length, rows: sorted };
}

export function formatSummary(s, { withCallers = false } = {}) {
  const lines = [];
  lines.push(`${s.file}: ${s.samples} samples, ${(s.sampledMs / 1000).toFixed(2)} s sampled, ${(s.idleMs / 1000).toFixed(2)} s idle, ${(s.busyMs / 1000).toFixed(2)} s busy`);
  lines.push('');
  lines.push(`${'#'.padStart(3)}  ${'self ms'.padStart(9)}  ${'self%'.padStart(6)}  ${'busy%'.padStart(6)}  ${'total%'.padStart(6)}  function  (location)`);
  for (const r of s.rows) {
    lines.push(
      `${String(r.rank).padStart(3)}  ${r.selfMs.toFixed(1).padStart(9)}  ${r.selfPct.toFixed(2).padStart(6)}  ${r.selfPctOfBusy.toFixed(2).padStart(6)}  ${r.totalPct.toFixed(2).padStart(6)}  ${r.function}${r.location ? `  (${r.location})` : ''}`,
    );
    if (withCallers) for (const c of r.callers ?? []) lines.push(`${' '.repeat(42)}<- ${c.pctOfSelf.toFixed(0).padStart(3)}%  ${c.caller}`);
  }
  return lines.join('\n');
}

function newestProfile(dir) {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  return files[0];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const target = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--top');
  if (!target) {
    console.error('usage: node bench/profile-summary.mjs <file.cpuprofile | dir> [--top 25] [--by-file] [--callers] [--json]');
    process.exit(2);
  }
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args[ti + 1]) : 25;
  const file = statSync(target).isDirectory() ? newestProfile(target) : target;
  const s = summarizeProfile(file, { top, byFile: args.includes('--by-file') });
  console.log(args.includes('--json') ? JSON.stringify(s, null, 2) : formatSummary(s, { withCallers: args.includes('--callers') }));
}
