// A proxy SIGKILLed under load costs clients a reconnect and nothing else: with two proxies
// advertised directly, an idempotent librdkafka producer moves to the survivor and every
// acknowledged message is stored exactly once.

import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { killAllProcs } from '../support/procs.js';
import { ProducerRun, createTopic, few, startCluster, verifyTopic, waitFor, type Cluster } from './support.js';

const TOPIC = 'proxy-kill';
const PARTITIONS = 4;

let cluster: Cluster;
let keepLogs = false;

beforeAll(async () => {
  cluster = await startCluster({ brokers: 2, proxies: 2, leaseTtlSeconds: 2, advertiseMode: 'direct' });
});

afterAll(async () => {
  killAllProcs();
  await cluster?.stop({ keepLogs });
});

describe('a proxy killed mid-load', () => {
  it('only costs the clients a reconnect: no acknowledged message is lost or doubled', { timeout: 90_000 }, async () => {
    onTestFailed(() => {
      keepLogs = true;
      console.log(cluster.logTail(8));
    });
    await createTopic(cluster, TOPIC, PARTITIONS);
    const producer = new ProducerRun(cluster.bootstrap, TOPIC, PARTITIONS, { rate: 300 });
    await producer.waitAcks(200, 30_000);
    const victim = cluster.proxies[0];
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    expect(await victim.waitExit(10_000)).toEqual({ code: null, signal: 'SIGKILL' });
    const acksAtKill = producer.acks.length;
    await waitFor('acknowledgements on every partition after the kill', () => {
      producer.alive();
      return new Set(producer.acks.slice(acksAtKill).filter((a) => a[3] > killedAt).map((a) => a[0])).size === PARTITIONS;
    }, 45_000, 20);
    await producer.waitAcks(200, 30_000);
    const done = await producer.stop();
    let gap = 0;
    const ts = producer.acks.map((a) => a[3]).sort((a, b) => a - b);
    for (let i = 1; i < ts.length; i++) if (ts[i] > killedAt) gap = Math.max(gap, ts[i] - ts[i - 1]);
    console.log(`[proxy-kill] proxy ${victim.nodeId} SIGKILLed: longest gap between acknowledgements ${gap} ms`);

    expect(producer.clientErrors.filter((e) => e.fatal)).toEqual([]);
    expect(few(producer.errs), `${producer.errs.length} failed deliveries`).toEqual([]);
    expect(done.unflushed).toBe(0);
    const { rows, serious, misacked } = await verifyTopic(cluster, producer);
    expect(few(serious), `${serious.length} lost, doubled or misplaced messages among ${rows.length} stored`).toEqual([]);
    expect(few(misacked)).toEqual([]);
    expect(rows.length).toBe(done.produced);
  });
});
