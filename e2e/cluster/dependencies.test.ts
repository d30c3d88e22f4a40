// The cluster's dependencies failing (DESIGN.md §3 "Produce" step 5, "Fetch" step 1):
// (a) etcd frozen for 10 s: commits need etcd, so nothing is acknowledged meanwhile; writes
//     resume afterwards with nothing acknowledged lost, and no Skiff process dies.
// (b) NATS down: a parked Fetch is no longer woken by notifications but is still answered
//     within its max wait, so a consumer keeps getting new messages; NATS back, it goes on.

import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { JsonTail, sleep } from '../support/crash.js';
import { killAllProcs, Proc, PYTHON } from '../support/procs.js';
import { CLUSTER_PY_DIR, createTopic, eventually, few, ProducerRun, startCluster, verifyTopic, waitFor, type Cluster } from './support.js';
import path from 'node:path';

const ETCD_PAUSE_MS = 10_000;
/** Time a delivery report may take from the broker's commit to the producer's stdout. */
const REPORT_GRACE_MS = 500;
const FETCH_WAIT_MS = 3000;

let cluster: Cluster;
let keepLogs = false;

beforeAll(async () => {
  // Service mode and one proxy per client: the producer writes through proxy 1 and the
  // consumer reads through proxy 2, so a consumer's parked Fetch can only learn of new data
  // through NATS or its max wait.
  cluster = await startCluster({ brokers: 3, proxies: 2, leaseTtlSeconds: 2, advertiseMode: 'service' });
});

afterAll(async () => {
  killAllProcs();
  await cluster?.stop({ keepLogs });
});

const proxyAddr = (i: number) => `127.0.0.1:${cluster.proxies[i].kafkaPort}`;
const allRunning = () => [...cluster.brokers, ...cluster.proxies].filter((p) => !p.running).map((p) => `${p.name} is not running: ${JSON.stringify(p.exitInfo)}`);

describe('dependency failures', () => {
  it('acknowledges nothing while etcd is frozen for 10 s, resumes after, and loses nothing', { timeout: 90_000 }, async () => {
    onTestFailed(() => {
      keepLogs = true;
      console.log(cluster.logTail(8));
    });
    const topic = 'deps-etcd';
    const partitions = 6;
    await createTopic(cluster, topic, partitions, proxyAddr(0));
    const producer = new ProducerRun(proxyAddr(0), topic, partitions, { rate: 200 });
    await waitFor('an acknowledgement on every partition', () => {
      producer.alive();
      return new Set(producer.acks.map((a) => a[0])).size === partitions;
    }, 30_000);

    const pausedAt = Date.now();
    cluster.etcd.pause();
    // With etcd frozen nothing can commit: the high watermarks now are the last committed
    // offsets. An acknowledgement may still arrive during the freeze (a proxy answers a
    // client's request once all its partitions are answered, and a part on another broker
    // can hold the reply), but only for offsets committed before the freeze.
    const committed = new Map<number, number>();
    let frozenHw = '';
    try {
      await sleep(300); // commit answers etcd sent just before the freeze are applied by now
      for (const b of cluster.brokers) {
        for (const row of await cluster.partitions(b)) {
          if (row.topic === topic) committed.set(row.partition, Math.max(committed.get(row.partition) ?? 0, row.highWatermark));
        }
      }
      frozenHw = JSON.stringify([...committed]);
      await sleep(ETCD_PAUSE_MS); // the test's input: how long etcd stays frozen
    } finally {
      cluster.etcd.resume();
    }
    const resumedAt = Date.now();
    producer.alive();
    const during = producer.acks.filter((a) => a[3] > pausedAt + REPORT_GRACE_MS && a[3] < resumedAt);
    const uncommitted = during.filter(([p, , offset]) => offset >= (committed.get(p) ?? 0));
    expect(few(uncommitted), `${uncommitted.length} of ${during.length} acknowledgements during the freeze name offsets not committed before it (high watermarks at the freeze: ${frozenHw})`).toEqual([]);

    // A process that died meanwhile fails the test at the end; until then it is restarted, as
    // its orchestrator would, so that the durability checks still run.
    const died = cluster.crashes(pausedAt);
    let crashReport = '';
    try {
      cluster.assertNoCrashes();
    } catch (e) {
      crashReport = (e as Error).message;
      console.log(`[dependencies] while etcd was frozen: ${crashReport}\nrestarting them as an orchestrator would: ${(await cluster.restartDead()).join(', ')}`);
    }

    const firstAck = new Map<number, number>();
    await waitFor('acknowledgements on every partition after etcd is back', () => {
      producer.alive();
      for (const [p, , , t] of producer.acks) if (t >= resumedAt && !firstAck.has(p)) firstAck.set(p, t);
      return firstAck.size === partitions;
    }, 45_000, 20);
    await producer.waitAcks(300, 30_000);
    console.log(
      `[dependencies] etcd frozen ${resumedAt - pausedAt} ms; first acknowledgement after it per partition: ` +
        [...firstAck].sort((a, b) => a[0] - b[0]).map(([p, t]) => `p${p} +${t - resumedAt} ms`).join(', '),
    );

    const done = await producer.stop();
    expect(producer.clientErrors.filter((e) => e.fatal)).toEqual([]);
    expect(few(producer.errs), `${producer.errs.length} failed deliveries`).toEqual([]);
    expect(done.unflushed).toBe(0);
    expect(producer.acks.length).toBe(done.produced);
    const { rows, serious, misacked } = await verifyTopic(cluster, producer);
    expect(few(serious), `${serious.length} lost, doubled or misplaced messages among ${rows.length} stored`).toEqual([]);
    expect(rows.length).toBe(done.produced);

    expect(allRunning()).toEqual([]);
    expect.soft(died, `Skiff processes that died while etcd was frozen for ${ETCD_PAUSE_MS} ms\n${crashReport}`).toEqual([]);
    let last: unknown;
    await eventually('all brokers and proxies registered again', async () => {
      const v = await cluster.cluster();
      last = v.raw;
      return v.brokers.length === cluster.brokers.length && v.proxies.length === cluster.proxies.length ? v : undefined;
    }, 15_000).catch((e: Error) => {
      throw new Error(`${e.message}; last view: brokers ${JSON.stringify((last as { brokers?: unknown })?.brokers)}, proxies ${JSON.stringify((last as { proxies?: unknown })?.proxies)}`);
    });
    expect.soft(few(misacked), `${misacked.length} acknowledgements naming an offset that holds another message`).toEqual([]);
  });

  it('keeps answering a long-polling consumer within its max wait while NATS is down, and after NATS is back', { timeout: 90_000 }, async () => {
    onTestFailed(() => {
      keepLogs = true;
      console.log(cluster.logTail(8));
    });
    const topic = 'deps-nats';
    const startedAt = Date.now();
    const restarted = await cluster.restartDead();
    if (restarted.length > 0) console.log(`[dependencies] restarted before the NATS test: ${restarted.join(', ')}`);
    await createTopic(cluster, topic, 1, proxyAddr(0));
    const consumer = new Proc('tail-consumer', PYTHON, ['-u', path.join(CLUSTER_PY_DIR, 'tail_consumer.py'), proxyAddr(1), topic, '1', '--fetch-wait-ms', String(FETCH_WAIT_MS)]);
    const got = new JsonTail<{ m?: [number, number, string, number]; eof?: [number, number, number]; error?: string }>(consumer);
    await consumer.waitForJson((l) => Array.isArray(l.eof), 30_000, 'end of the empty partition');
    // Four messages a second: each one's latency from acknowledgement to consumer is measured.
    const producer = new ProducerRun(proxyAddr(0), topic, 1, { rate: 4 });

    const received = new Map<number, number>(); // seq → time received
    const latencies = (from: number, to = Infinity) => {
      got.poll();
      for (const l of got.items) if (l.m) received.set(Number(l.m[2].split(':')[1]), l.m[3]);
      producer.alive();
      if (!consumer.running) throw new Error(`consumer exited\n${consumer.stderr.slice(-2000)}`);
      return producer.acks.filter((a) => a[3] >= from && a[3] < to).map(([, seq, , t]) => ({ seq, latency: received.has(seq) ? received.get(seq)! - t : undefined }));
    };
    /** Ten messages in a row each reached the consumer within 1 s of their acknowledgement. */
    const prompt = (from: number) => {
      let run = 0;
      for (const l of latencies(from)) {
        run = l.latency !== undefined && l.latency < 1000 ? run + 1 : 0;
        if (run >= 10) return true;
      }
      return false;
    };
    const fmt = (ls: Array<{ latency?: number }>) => {
      const xs = ls.map((l) => l.latency).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
      return xs.length ? `n=${xs.length} median ${xs[Math.floor(xs.length / 2)]} ms, max ${xs.at(-1)} ms` : 'n=0';
    };

    // With NATS, a parked Fetch on proxy 2 wakes up when proxy 1's write commits.
    const t0 = Date.now();
    await waitFor('ten messages in a row delivered within 1 s with NATS up', () => prompt(t0), 20_000, 100);
    const withNats = fmt(latencies(t0));

    // NATS down: the consumer still gets every message, each within its fetch max wait.
    await cluster.nats.kill();
    const downAt = Date.now();
    await producer.waitAcks(30, 30_000);
    const downUntil = Date.now();
    await waitFor('every message produced while NATS was down to reach the consumer', () => latencies(downAt, downUntil).every((l) => l.latency !== undefined), FETCH_WAIT_MS + 10_000, 100);
    const down = latencies(downAt, downUntil);
    const late = down.filter((l) => l.latency! > FETCH_WAIT_MS + 1500);
    expect(late, `messages that took longer than fetch.wait.max.ms (${FETCH_WAIT_MS}) + 1.5 s with NATS down`).toEqual([]);
    expect(allRunning(), 'processes alive with NATS down').toEqual([]);
    expect(cluster.crashes(startedAt)).toEqual([]);

    // NATS back: notifications work again.
    await cluster.nats.restart();
    const upAt = Date.now();
    await waitFor('ten messages in a row delivered within 1 s after NATS restarted', () => prompt(upAt), 30_000, 100);
    const reconnectMs = Date.now() - upAt;
    console.log(
      `[dependencies] ack → consumer latency through two proxies (fetch.wait.max.ms ${FETCH_WAIT_MS}): with NATS ${withNats}; ` +
        `NATS down ${fmt(down)}; after NATS restart: prompt again within ${reconnectMs} ms`,
    );

    const done = await producer.stop();
    expect(few(producer.errs)).toEqual([]);
    expect(done.unflushed).toBe(0);
    await waitFor('every acknowledged message at the consumer', () => latencies(0).every((l) => l.latency !== undefined), 15_000, 100);
    const offsets = got.items.filter((l) => l.m).map((l) => l.m![1]);
    expect(offsets, 'offsets the consumer read, each once and in order').toEqual(offsets.map((_, i) => i));
    expect(offsets.length).toBe(done.produced);
    expect(got.items.filter((l) => l.error).map((l) => l.error), 'consumer errors').toEqual([]);
    await consumer.stop('SIGTERM', 15_000);
    expect(allRunning()).toEqual([]);
    expect(cluster.crashes(startedAt)).toEqual([]);
  });
});
