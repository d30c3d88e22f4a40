// Catch-up reads in a real cluster (DESIGN.md §3 Fetch): after enough was produced to roll
// several segments per partition, a consumer reading from offset 0 through a proxy gets most
// of the data from the proxy itself, read out of the segment objects in S3, and the rest (the
// tail) from the brokers; every message comes back exactly once and in order.

import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { jsonLines, kcat, killAllProcs, pythonJson } from '../support/procs.js';
import { etcdRange, eventually, startCluster, unitOf, waitAssigned, type Cluster } from './support.js';

const TOPIC = 'catch-up';
const PARTITIONS = 2;
const COUNT = 3000;
const ROUND = 200;
const SEGMENT_BYTES = 32 * 1024;

let cluster: Cluster;
let keepLogs = false;

beforeAll(async () => {
  cluster = await startCluster({
    brokers: 2,
    proxies: 1,
    advertiseMode: 'service',
    // Prompt rolls and current checkpoints, so that the test waits on the rolls, not on timers.
    brokerArgs: ['--maintenance-ms', '100', '--checkpoint-ms', '300', '--segment-block-bytes', '4096'],
  });
});

afterAll(async () => {
  killAllProcs();
  await cluster?.stop({ keepLogs });
});

interface KcatMessage {
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
}

interface StoredCheckpoint {
  highWatermark: number;
  segments: unknown[];
  extents: number[][];
}

/** A counter of the proxy's /metrics, summed over the series whose labels include `labels`. */
async function proxyMetric(name: string, labels: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${cluster.proxies[0].httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  let sum = 0;
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('catch-up reads through a proxy', () => {
  it('serves a consumer reading from offset 0 mostly from segment objects, every message once and in order', async () => {
    onTestFailed(() => {
      keepLogs = true;
    });
    const bootstrap = `127.0.0.1:${cluster.proxies[0].kafkaPort}`;
    const created = await pythonJson<{ ok: boolean }>('bp_create_topic.py', [bootstrap, TOPIC, String(PARTITIONS), `segment.bytes=${SEGMENT_BYTES}`]);
    expect(created.ok, JSON.stringify(created)).toBe(true);
    const view = await waitAssigned(cluster, TOPIC, PARTITIONS);

    // In rounds of small batches: a segment is made of whole WAL extents (at least one), and
    // a round is a few flushes, so segments come out near segment.bytes.
    const sent = Array.from({ length: COUNT }, (_, i) => ({ key: `key-${i % 20}`, value: `catch-up ${i} `.padEnd(200, '.') }));
    for (let from = 0; from < COUNT; from += ROUND) {
      await kcat(bootstrap, ['-P', '-t', TOPIC, '-K:', '-X', 'acks=all', '-X', 'batch.num.messages=20', '-X', 'linger.ms=1'], {
        input: sent.slice(from, from + ROUND).map((m) => `${m.key}:${m.value}`).join('\n') + '\n',
        timeoutMs: 30_000,
      });
    }

    // Wait until the brokers rolled what they will: every message checkpointed, and each
    // partition's WAL part below segment.bytes behind at least three segments.
    await eventually(
      'segments rolled and checkpointed on every partition',
      async () => {
        let total = 0;
        for (let p = 0; p < PARTITIONS; p++) {
          const [kv] = await etcdRange(cluster, `/skiff/ckpt/${unitOf(view, TOPIC, p)}`);
          if (!kv) return false;
          const c = JSON.parse(kv.value) as StoredCheckpoint;
          let walBytes = 0;
          for (const e of c.extents) walBytes += e[2];
          if (c.segments.length < 3 || walBytes >= SEGMENT_BYTES) return false;
          total += c.highWatermark;
        }
        return total === COUNT;
      },
      60_000,
    );

    const segmentBytes = await proxyMetric('skiff_proxy_fetch_bytes_total', 'source="segment"');
    const brokerBytes = await proxyMetric('skiff_proxy_fetch_bytes_total', 'source="broker"');
    // Small fetches, so that the consumer makes many of them from each segment.
    const r = await kcat(bootstrap, ['-C', '-t', TOPIC, '-e', '-o', 'beginning', '-J', '-q', '-X', 'fetch.wait.max.ms=100', '-X', 'fetch.message.max.bytes=8192'], {
      timeoutMs: 120_000,
    });
    const fromSegments = (await proxyMetric('skiff_proxy_fetch_bytes_total', 'source="segment"')) - segmentBytes;
    const fromBrokers = (await proxyMetric('skiff_proxy_fetch_bytes_total', 'source="broker"')) - brokerBytes;
    console.log(`[catch-up] ${fromSegments} bytes read by the proxy from segments, ${fromBrokers} forwarded to brokers`);

    const got = jsonLines<KcatMessage>(r.stdout);
    expect(got.length, 'messages read back').toBe(COUNT);
    expect(got.map((m) => `${m.key}:${m.payload}`).sort()).toEqual(sent.map((m) => `${m.key}:${m.value}`).sort());
    for (let p = 0; p < PARTITIONS; p++) {
      const inP = got.filter((m) => m.partition === p);
      expect(inP.length, `messages in partition ${p}`).toBeGreaterThan(0);
      expect(inP.map((m) => m.offset), `offsets of partition ${p}`).toEqual(inP.map((_, i) => i));
    }
    for (const key of new Set(sent.map((m) => m.key))) {
      expect(got.filter((m) => m.key === key).map((m) => m.payload), `order of ${key}`).toEqual(sent.filter((m) => m.key === key).map((m) => m.value));
    }

    // All but the newest segment of each partition is the proxy's to serve.
    expect(fromSegments, 'bytes the proxy read from segments').toBeGreaterThan(0);
    expect(fromSegments / (fromSegments + fromBrokers), 'share read from segments').toBeGreaterThan(0.5);
    expect(await proxyMetric('skiff_proxy_catch_up_fallbacks_total', '')).toBe(0);
    expect(cluster.crashes()).toEqual([]);
  }, 180_000);
});
