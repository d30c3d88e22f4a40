// A cluster of 3 brokers and 2 proxies on real etcd, NATS and S3 (DESIGN.md §2, §5): what
// kcat produces through one proxy is read back intact through the other, and the controller
// spreads the topic's partitions evenly over the live brokers.

import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { jsonLines, kcat, killAllProcs } from '../support/procs.js';
import { createTopic, owners, shares, startCluster, waitAssigned, type Cluster } from './support.js';

const TOPIC = 'basic';
const PARTITIONS = 6;
const COUNT = 600;

let cluster: Cluster;
let keepLogs = false;

beforeAll(async () => {
  // Service mode: a client given one proxy talks to that proxy only, so "through proxy 1" and
  // "through proxy 2" are what they say.
  cluster = await startCluster({ brokers: 3, proxies: 2, leaseTtlSeconds: 2, advertiseMode: 'service' });
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

const proxyAddr = (i: number) => `127.0.0.1:${cluster.proxies[i].kafkaPort}`;

describe('a cluster of 3 brokers and 2 proxies', () => {
  it('gives back through proxy 2 every message kcat produced through proxy 1, intact and in order', async () => {
    onTestFailed(() => {
      keepLogs = true;
    });
    await createTopic(cluster, TOPIC, PARTITIONS, proxyAddr(0));

    const sent = Array.from({ length: COUNT }, (_, i) => ({ key: `key-${i % 60}`, value: `basic ${i}: héllo ✓ colon:inside` }));
    await kcat(proxyAddr(0), ['-P', '-t', TOPIC, '-K:', '-z', 'snappy', '-X', 'acks=all'], {
      input: sent.map((m) => `${m.key}:${m.value}`).join('\n') + '\n',
      timeoutMs: 30_000,
    });

    const r = await kcat(proxyAddr(1), ['-C', '-t', TOPIC, '-e', '-o', 'beginning', '-J', '-q', '-X', 'fetch.wait.max.ms=100'], { timeoutMs: 30_000 });
    const got = jsonLines<KcatMessage>(r.stdout);
    expect(got.length, 'messages read back').toBe(COUNT);
    expect(new Set(got.map((m) => m.partition)), 'partitions holding data').toEqual(new Set([0, 1, 2, 3, 4, 5]));
    // Exactly the messages sent, each once, with its key.
    expect(got.map((m) => `${m.key}:${m.payload}`).sort()).toEqual(sent.map((m) => `${m.key}:${m.value}`).sort());
    for (let p = 0; p < PARTITIONS; p++) {
      const inP = got.filter((m) => m.partition === p);
      expect(inP.map((m) => m.offset), `offsets of partition ${p}`).toEqual(inP.map((_, i) => i));
    }
    // Per key, the order of production is kept.
    for (const key of new Set(sent.map((m) => m.key))) {
      const order = got.filter((m) => m.key === key).map((m) => m.payload);
      expect(order, `order of ${key}`).toEqual(sent.filter((m) => m.key === key).map((m) => m.value));
    }

    // Each owner broker reports its partitions online with the high watermark kcat saw.
    const view = await waitAssigned(cluster, TOPIC, PARTITIONS);
    for (const [p, brokerId] of owners(view, TOPIC)) {
      const rows = await cluster.partitions(cluster.broker(brokerId));
      const row = rows.find((x) => x.topic === TOPIC && x.partition === p);
      expect(row, `partition ${p} on broker ${brokerId}: ${JSON.stringify(rows)}`).toBeDefined();
      expect(row!.state).toBe('Online');
      expect(row!.highWatermark, `high watermark of ${p}`).toBe(got.filter((m) => m.partition === p).length);
    }
    expect(cluster.crashes()).toEqual([]);
  });

  it('shows in `skiff cluster --json` 3 brokers, 2 proxies, a controller, and 2 of the 6 partitions on each broker', async () => {
    onTestFailed(() => {
      keepLogs = true;
    });
    const view = await waitAssigned(cluster, TOPIC, PARTITIONS);
    const raw = JSON.stringify(view.raw).slice(0, 3000);
    expect(view.brokers, raw).toEqual(cluster.brokers.map((b) => b.nodeId));
    expect(view.proxies, raw).toEqual(cluster.proxies.map((p) => p.nodeId));
    expect(view.controller, raw).not.toBeNull();
    expect(view.brokers, `controller ${view.controller} is a live broker`).toContain(view.controller);
    const own = owners(view, TOPIC);
    expect([...own.keys()].sort(), raw).toEqual([0, 1, 2, 3, 4, 5]);
    for (const b of own.values()) expect(view.brokers, raw).toContain(b);
    expect(Object.fromEntries(shares(view, TOPIC)), raw).toEqual(Object.fromEntries(cluster.brokers.map((b) => [b.nodeId, 2])));
    expect(cluster.crashes()).toEqual([]);
  });
});
