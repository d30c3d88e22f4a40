import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { S3ObjectStore } from '../../services/storage/s3-object-store.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';
import { LocalBus } from '../../services/bus/local-bus.js';
import { TopicRegistry } from '../../services/meta/topics.js';
import { Broker } from '../../services/broker/broker.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { BATCH_HEADER_SIZE, batchesOf } from '../../services/protocol/record-batch.js';
import { buildBatch } from '../support/batches.js';
import { startS3, type S3Server } from '../support/servers.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function setup(): Promise<{ s3: S3Server; proxy: FaultProxy; broker: Broker; topicId: string }> {
  const s3 = await startS3();
  cleanups.push(() => s3.stop());
  const proxy = await startFaultProxy(s3.port);
  cleanups.push(() => proxy.close());
  const store = new S3ObjectStore({
    endpoint: proxy.endpoint, region: s3.region, bucket: 'skiff', accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey,
    forcePathStyle: true, maxAttempts: 1000, baseBackoffMs: 20, maxBackoffMs: 200, requestTimeoutMs: 2000,
  });
  await store.ensureBucket();
  const dir = await mkdtemp(join(tmpdir(), 'skiff-s3b-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
  const topics = await TopicRegistry.open(meta);
  const broker = new Broker(
    {
      brokerId: 1, flushMs: 5, flushBytes: 1 << 20, flushMaxInflight: 4, checkpointMs: 60_000, cacheBytes: 0, blockCacheBytes: 0,
      maxMessageBytes: 8 << 20, leaseTtlSeconds: 30, segmentBlockBytes: 4096, maintenanceMs: 60_000, gcIntervalMs: 0, gcGraceMs: 0, ownership: 'all',
    },
    { store, meta, bus: new LocalBus(), topics, log: pino({ level: 'silent' }) },
  );
  await broker.start();
  cleanups.push(async () => {
    await broker.close();
    await store.close();
  });
  const t = await topics.create('s3-topic', 2, {});
  await broker.whenOnline(t.id, 2, 5000);
  return { s3, proxy, broker, topicId: t.id };
}

/** Producers writing numbered values with acks=-1; records what was acknowledged where. */
function load(broker: Broker, topicId: string) {
  const acked = new Map<string, { partition: number; offset: number }>();
  const outcomes = { ok: 0, failed: 0 };
  let running = true;
  let next = 0;
  const workers = [0, 1, 2, 3].map(async (w) => {
    while (running) {
      const value = `v${next++}`;
      const partition = w % 2;
      const r = await broker.produce(topicId, partition, buildBatch([{ value }]), -1, 1500);
      if (r.errorCode === ErrorCode.NONE) {
        acked.set(value, { partition, offset: r.baseOffset });
        outcomes.ok++;
      } else outcomes.failed++;
    }
  });
  return {
    acked,
    outcomes,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

async function waitFor(cond: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}

async function verify(broker: Broker, topicId: string, acked: Map<string, { partition: number; offset: number }>): Promise<void> {
  const found = new Map<string, { partition: number; offset: number }>();
  for (const partition of [0, 1]) {
    let offset = 0;
    for (;;) {
      const [r] = await broker.fetch([{ topicId, partition, fetchOffset: offset, maxBytes: 1 << 20 }], 1 << 20);
      expect(r.errorCode).toBe(ErrorCode.NONE);
      if (r.bytes === 0) break;
      for (const buf of r.records) {
        for (const b of batchesOf(buf)) {
          // The records only: the header is binary (CRC, timestamps) and can hold "v" and a digit.
          const text = buf.subarray(b.position + BATCH_HEADER_SIZE, b.position + b.size).toString('latin1');
          const value = /v\d+/.exec(text)![0];
          expect(found.has(value)).toBe(false);
          found.set(value, { partition, offset: b.baseOffset });
          offset = b.baseOffset + 1;
        }
      }
    }
  }
  for (const [value, where] of acked) expect(found.get(value)).toEqual(where);
}

describe('broker on S3 when S3 fails', () => {
  it('acknowledges nothing while the S3 server is down, loses nothing acknowledged, and resumes', async () => {
    const { s3, broker, topicId } = await setup();
    const l = load(broker, topicId);
    await waitFor(() => l.outcomes.ok >= 50);
    await s3.kill();
    const okAtKill = l.outcomes.ok;
    // With the store gone no flush can commit, so no durable produce may be acknowledged.
    await waitFor(() => l.outcomes.failed >= 4);
    expect(l.outcomes.ok - okAtKill).toBeLessThanOrEqual(4); // only flushes already committed when the server died
    await s3.restart();
    const okAtRestart = l.outcomes.ok;
    await waitFor(() => l.outcomes.ok >= okAtRestart + 50);
    await l.stop();
    await verify(broker, topicId, l.acked);
  });

  it('retries through 503 SlowDown and 500 answers without losing acknowledged writes', async () => {
    const { proxy, broker, topicId } = await setup();
    const l = load(broker, topicId);
    await waitFor(() => l.outcomes.ok >= 30);
    proxy.failNext(15, 'slowdown');
    await waitFor(() => l.outcomes.ok >= 80);
    proxy.failNext(15, 'internal');
    await waitFor(() => l.outcomes.ok >= 130);
    proxy.failNext(5, 'reset');
    await waitFor(() => l.outcomes.ok >= 180);
    await l.stop();
    await verify(broker, topicId, l.acked);
  });
});
