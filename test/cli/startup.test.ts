// What a process loads and keeps at startup: an idle `skiff proxy`'s memory is mostly the
// code it loaded, so these guard against a proxy module importing the broker, a codec or the
// full protocol table again. Run against dist/ in child processes, as a real start is.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { SUPPORTED } from '../../services/proxy/versions.js';

function runModule(source: string): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('startup', () => {
  it('skiff proxy loads neither the broker, the codecs, the CRC library, the S3 SDK nor unused protocol messages', () => {
    // ES modules are seen through a loader hook, CommonJS ones in require's cache.
    const hook = `let port; export function initialize(d) { port = d.port; } export async function load(url, context, next) { port.postMessage(url); return next(url, context); }`;
    const out = runModule(`
      import { register, createRequire } from 'node:module';
      import { MessageChannel } from 'node:worker_threads';
      import { pathToFileURL } from 'node:url';
      const { port1, port2 } = new MessageChannel();
      const esm = [];
      port1.on('message', (url) => esm.push(url));
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), { data: { port: port2 }, transferList: [port2] });
      await import(pathToFileURL('dist/services/cli/cluster.js').href);
      await new Promise((r) => setTimeout(r, 100));
      port1.close();
      console.log(JSON.stringify({ esm, cjs: Object.keys(createRequire(process.cwd() + '/').cache) }));
    `);
    const { esm, cjs } = JSON.parse(out) as { esm: string[]; cjs: string[] };
    expect(esm.some((u) => u.endsWith('/services/proxy/proxy.js')), 'the proxy itself').toBe(true);
    expect(esm.filter((u) => /\/services\/broker\/(broker|partition|flusher|controller|slot-groups|group-coordinator|group)\.js$/.test(u))).toEqual([]);
    expect(esm.filter((u) => /\/services\/(storage\/s3-object-store|cli\/dev)\.js$/.test(u))).toEqual([]);
    expect(esm.filter((u) => u.endsWith('/protocol/messages/index.js'))).toEqual([]);
    // Request and response of each supported API, the request header, api-keys.ts.
    expect(esm.filter((u) => u.includes('/protocol/messages/')).length).toBeLessThanOrEqual(2 * SUPPORTED.size + 2);
    expect(cjs.some((f) => f.includes('/node_modules/etcd3/')), 'etcd3').toBe(true);
    expect(cjs.filter((f) => /\/node_modules\/(snappy|lz4-napi|fzstd|@node-rs\/crc32|@aws-sdk)\//.test(f))).toEqual([]);
  });

  it('holds the young generation at its size from when young-generation.ts loads until released, then lets it grow', () => {
    const out = runModule(`
      import v8 from 'node:v8';
      import { releaseYoungGeneration } from './dist/services/cli/young-generation.js';
      const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
      // Objects that survive a few collections, as a process's startup makes.
      const churn = () => { let keep = []; for (let i = 0; i < 300000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 200000) keep = keep.slice(100000); } return keep.length; };
      const start = newSpace();
      churn();
      const held = newSpace();
      releaseYoungGeneration();
      churn();
      console.log(JSON.stringify({ start, held, released: newSpace() }));
    `);
    const { start, held, released } = JSON.parse(out) as { start: number; held: number; released: number };
    // Its two halves committed at their first size, no more; then at least one doubling.
    expect(held).toBeLessThanOrEqual(2 * start);
    expect(released).toBeGreaterThanOrEqual(2 * held);
  });
});
