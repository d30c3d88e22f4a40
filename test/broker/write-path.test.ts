import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FsObjectStore } from '../../services/storage/fs-object-store.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';
import { LocalBus } from '../../services/bus/local-bus.js';
import { TopicRegistry } from '../../services/meta/topics.js';
import { Broker, type BrokerConfig } from '../../services/broker/broker.js';
import { Keys } from '../../services/meta/keys.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { batchesOf } from '../../services/protocol/record-batch.js';
import { buildBatch } from '../support/batches.js';

const log = pino({ level: 'silent' });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(dir: string, cfg: Partial<BrokerConfig> = {}) {
  const store = new FsObjectStore(join(dir, 'objects'));
  const meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
  const bus = new LocalBus();
  const topics = await TopicRegistry.open(meta);
  const broker = new Broker(
    { brokerId: 1, flushMs: 5, flushBytes: 4 << 20, flushMaxInflight: 2, checkpointMs: 60_000, cacheBytes: 64 << 20, blockCacheBytes: 16 << 20, maxMessageBytes: 8 << 20, leaseTtlSeconds: 5, segmentBlockBytes: 4096, maintenanceMs: 60_000, gcIntervalMs: 0, gcGraceMs: 0, ownership: 'all', ...cfg },
    { store, meta, bus, topics, log },
  );
  await broker.start();
  return { store, meta, bus, topics, broker };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-broker-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function topic(t: Awaited<ReturnType<typeof open>>, name: string, partitions = 1) {
  const rec = await t.topics.create(name, partitions, {});
  expect(await t.broker.whenOnline(rec.id, partitions, 5000)).toBe(true);
  return rec;
}

const values = (records: Buffer[]) => {
  const out: string[] = [];
  for (const b of records) for (const info of batchesOf(b)) out.push(b.subarray(info.position, info.position + info.size).toString('latin1'));
  return out.join('');
};

describe('broker write path', () => {
  it('answers a durable produce only after its WAL object is committed', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'durable');
    const r = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'v1' }, { value: 'v2' }]), -1, 5000);
    expect(r).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: 0 });
    // At the moment of the answer the commit record and the object it names exist.
    const wal = await t.meta.getPrefix(Keys.walOf(1));
    expect(wal.length).toBeGreaterThan(0);
    expect((await t.store.list('wal/1/')).length).toBe(wal.length);
    const f = await t.broker.fetch([{ topicId: rec.id, partition: 0, fetchOffset: 0, maxBytes: 1 << 20 }], 1 << 20);
    expect(f[0].highWatermark).toBe(2);
    expect(values(f[0].records)).toContain('v2');
  });

  it('answers REQUEST_TIMED_OUT ("possibly persisted"), not NOT_LEADER_OR_FOLLOWER, when fenced after a commit attempt got no answer', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'unknown-outcome');
    // The metadata store does not answer the first commit of the WAL record (it may have
    // applied it), and the retry is refused by the fence, as when the lease ran out meanwhile.
    const txn = t.meta.txn.bind(t.meta);
    let walCommits = 0;
    vi.spyOn(t.meta, 'txn').mockImplementation(async (compares, success, failure) => {
      if (success.some((op) => 'key' in op && op.key.startsWith(Keys.walPrefix)) && ++walCommits <= 2) {
        if (walCommits === 1) throw new Error('deadline exceeded');
        return { succeeded: false, revision: 0 };
      }
      return txn(compares, success, failure);
    });
    const r = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'v' }]), -1, 5000);
    expect(r.errorCode).toBe(ErrorCode.REQUEST_TIMED_OUT);
  });

  it('when its lease is lost while a commit is unanswered, tells those producers REQUEST_TIMED_OUT and sends no commit after', async () => {
    const dir = await tempDir();
    const t = await open(dir, { flushMs: 60_000, flushMaxInflight: 2 });
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'lease-lost', 2);
    const put = t.store.put.bind(t.store);
    const written: Promise<unknown>[] = [];
    vi.spyOn(t.store, 'put').mockImplementation((...args) => {
      const w = put(...args);
      written.push(w);
      return w;
    });
    // The metadata store takes the WAL commit and does not answer (etcd frozen): it may apply
    // it later, before it expires the lease, so the outcome is unknown.
    const txn = t.meta.txn.bind(t.meta);
    const walCommits: string[][] = [];
    let sent!: () => void;
    const commitSent = new Promise<void>((r) => (sent = r));
    let answer!: () => void;
    vi.spyOn(t.meta, 'txn').mockImplementation(async (compares, success, failure) => {
      if (!success.some((op) => 'key' in op && op.key.startsWith(Keys.walPrefix))) return txn(compares, success, failure);
      walCommits.push(success.map((op) => ('key' in op ? op.key : op.prefix)));
      if (walCommits.length > 1) return txn(compares, success, failure);
      sent();
      await new Promise<void>((r) => (answer = r));
      return txn(compares, success, failure);
    });
    const flusher = (t.broker as unknown as { flusher: { flush(): void; drain(): Promise<void> } }).flusher;
    const first = t.broker.produce(rec.id, 0, buildBatch([{ value: 'sent' }]), -1, 30_000);
    flusher.flush();
    await commitSent;
    // Appended after that commit went out: its own WAL object is written but never committed.
    const later = t.broker.produce(rec.id, 1, buildBatch([{ value: 'queued' }]), -1, 30_000);
    flusher.flush();
    await vi.waitFor(() => expect(written).toHaveLength(2));
    await Promise.all(written);
    await t.meta.expireLease(t.broker.registrationLease!.id);
    expect((await first).errorCode).toBe(ErrorCode.REQUEST_TIMED_OUT);
    expect((await later).errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    // The store answers at last: the fenced broker sends nothing more, though its second WAL
    // object is written (a commit sent now could apply before the lease is expired).
    answer();
    await flusher.drain();
    expect(walCommits).toHaveLength(1);
  });

  it('answers acks=1 before the flush, but consumers only see the data once committed', async () => {
    const dir = await tempDir();
    const t = await open(dir, { flushMs: 60_000 });
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'fast');
    const r = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'early' }]), 1, 5000);
    expect(r).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: 0 });
    const before = await t.broker.fetch([{ topicId: rec.id, partition: 0, fetchOffset: 0, maxBytes: 1 << 20 }], 1 << 20);
    expect(before[0]).toMatchObject({ highWatermark: 0, bytes: 0 });
    expect(await t.meta.getPrefix(Keys.walOf(1))).toHaveLength(0);
    const committed = new Promise<void>((resolve) => t.bus.subscribe('skiff.hw.>', () => resolve()));
    (t.broker as unknown as { flusher: { flush(): void } }).flusher.flush();
    await committed;
    const after = await t.broker.fetch([{ topicId: rec.id, partition: 0, fetchOffset: 0, maxBytes: 1 << 20 }], 1 << 20);
    expect(after[0].highWatermark).toBe(1);
    expect(values(after[0].records)).toContain('early');
  });

  it('writes one object per flush whatever the number of partitions', async () => {
    const dir = await tempDir();
    const t = await open(dir, { flushMs: 60_000 });
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'wide', 1000);
    const puts = vi.spyOn(t.store, 'put');
    const acks = [];
    for (let p = 0; p < 1000; p++) acks.push(t.broker.produce(rec.id, p, buildBatch([{ value: `m${p}` }]), -1, 10_000));
    (t.broker as unknown as { flusher: { flush(): void } }).flusher.flush();
    const results = await Promise.all(acks);
    expect(results.every((r) => r.errorCode === ErrorCode.NONE)).toBe(true);
    expect(puts).toHaveBeenCalledTimes(1);
    expect(await t.store.list('wal/')).toHaveLength(1);
  });

  it('recovers every committed offset from checkpoint and WAL records after a crash', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const rec = await topic(t, 'crashy', 3);
    for (let i = 0; i < 30; i++) {
      const r = await t.broker.produce(rec.id, i % 3, buildBatch([{ value: `n${i}` }]), -1, 5000);
      expect(r.errorCode).toBe(ErrorCode.NONE);
      if (i === 14) await t.broker.checkpoint();
    }
    // No close(): the process "dies" with WAL records not covered by a checkpoint.
    const again = await open(dir);
    cleanups.push(() => again.broker.close());
    const parts = again.broker.partitions().sort((a, b) => a.partition - b.partition);
    expect(parts.map((p) => [p.state, p.highWatermark])).toEqual([['Online', 10], ['Online', 10], ['Online', 10]]);
    const f = await again.broker.fetch([{ topicId: rec.id, partition: 2, fetchOffset: 0, maxBytes: 1 << 20 }], 1 << 20);
    const text = values(f[0].records);
    for (let i = 2; i < 30; i += 3) expect(text).toContain(`n${i}`);
    const next = await again.broker.produce(rec.id, 0, buildBatch([{ value: 'after' }]), -1, 5000);
    expect(next.baseOffset).toBe(10);
  });

  it('deduplicates a retried idempotent batch and rejects a sequence gap', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'idem');
    const { producerId } = await t.broker.initProducerId();
    const b0 = buildBatch([{ value: 'a' }, { value: 'b' }], { producerId, producerEpoch: 0, baseSequence: 0 });
    const first = await t.broker.produce(rec.id, 0, b0, -1, 5000);
    const retry = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'a' }, { value: 'b' }], { producerId, producerEpoch: 0, baseSequence: 0 }), -1, 5000);
    expect(retry).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: first.baseOffset });
    const gap = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'z' }], { producerId, producerEpoch: 0, baseSequence: 5 }), -1, 5000);
    expect(gap.errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    const next = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'c' }], { producerId, producerEpoch: 0, baseSequence: 2 }), -1, 5000);
    expect(next).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: 2 });
    // A new epoch starts at sequence 0.
    const skippedStart = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'y' }], { producerId, producerEpoch: 1, baseSequence: 3 }), -1, 5000);
    expect(skippedStart.errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    const parts = t.broker.partitions();
    expect(parts[0].highWatermark).toBe(3);
  });

  it('keeps producer state across a crash so a retry after restart is still a duplicate', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const rec = await topic(t, 'idem-crash');
    const producerId = 4242n;
    const first = await t.broker.produce(rec.id, 0, buildBatch([{ value: 'x' }], { producerId, producerEpoch: 0, baseSequence: 0 }), -1, 5000);
    const again = await open(dir);
    cleanups.push(() => again.broker.close());
    const retry = await again.broker.produce(rec.id, 0, buildBatch([{ value: 'x' }], { producerId, producerEpoch: 0, baseSequence: 0 }), -1, 5000);
    expect(retry).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: first.baseOffset });
    expect(again.broker.partitions()[0].highWatermark).toBe(1);
  });

  it('after a move, answers a batch that skips ahead of a batch still on its way NOT_LEADER_OR_FOLLOWER (retriable), not OUT_OF_ORDER_SEQUENCE', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const rec = await topic(t, 'idem-moved');
    const producerId = 4343n;
    const seq = (baseSequence: number, value: string) => buildBatch([{ value }], { producerId, producerEpoch: 0, baseSequence });
    expect((await t.broker.produce(rec.id, 0, seq(0, 'a'), -1, 5000)).errorCode).toBe(ErrorCode.NONE);
    // The partition opens on its next owner (here: the same broker, restarted). The producer's
    // batch with sequence 1 was refused during the move, and the one after it arrives first.
    const moved = await open(dir);
    cleanups.push(() => moved.broker.close());
    const ahead = await moved.broker.produce(rec.id, 0, seq(2, 'c'), -1, 5000);
    expect(ahead.errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect(await moved.broker.produce(rec.id, 0, seq(1, 'b'), -1, 5000)).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: 1 });
    expect(await moved.broker.produce(rec.id, 0, seq(2, 'c'), -1, 5000)).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: 2 });
    // Once the producer is seen here, a gap is what Kafka says it is (KAFKA-COMPAT #18).
    expect((await moved.broker.produce(rec.id, 0, seq(9, 'z'), -1, 5000)).errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(moved.broker.partitions()[0].highWatermark).toBe(3);
  });

  it('moves the log start offset on DeleteRecords and answers reads below it with OFFSET_OUT_OF_RANGE', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'trim');
    for (let i = 0; i < 5; i++) await t.broker.produce(rec.id, 0, buildBatch([{ value: `t${i}` }]), -1, 5000);
    expect(await t.broker.deleteRecords(rec.id, 0, 3)).toEqual({ errorCode: ErrorCode.NONE, lowWatermark: 3 });
    const below = await t.broker.fetch([{ topicId: rec.id, partition: 0, fetchOffset: 1, maxBytes: 1 << 20 }], 1 << 20);
    expect(below[0].errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await t.broker.listOffset(rec.id, 0, -2)).offset).toBe(3);
    expect((await t.broker.deleteRecords(rec.id, 0, 99)).errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
  });

  it('finds the first offset at or after a timestamp', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    cleanups.push(() => t.broker.close());
    const rec = await topic(t, 'times');
    await t.broker.produce(rec.id, 0, buildBatch([{ value: 'a', timestamp: 1000 }, { value: 'b', timestamp: 2000 }]), -1, 5000);
    await t.broker.produce(rec.id, 0, buildBatch([{ value: 'c', timestamp: 3000 }]), -1, 5000);
    expect(await t.broker.listOffset(rec.id, 0, 1500)).toMatchObject({ offset: 1, timestamp: 2000 });
    expect(await t.broker.listOffset(rec.id, 0, 2500)).toMatchObject({ offset: 2, timestamp: 3000 });
    expect((await t.broker.listOffset(rec.id, 0, 9999)).offset).toBe(-1);
    expect((await t.broker.listOffset(rec.id, 0, -1)).offset).toBe(3);
  });
  it('answers NOT_LEADER_OR_FOLLOWER for a partition that exists but lives elsewhere, UNKNOWN_TOPIC_OR_PARTITION for one that does not exist', async () => {
    // A cluster-mode broker with no assignments hosts nothing: the topic's partitions are on
    // other brokers (or on their way here), which clients must take as "refresh metadata".
    const t = await open(await tempDir(), { ownership: 'assigned' });
    cleanups.push(() => t.broker.close());
    const rec = await t.topics.create('elsewhere', 2, {});
    const batch = buildBatch([{ value: 'x' }]);
    expect((await t.broker.produce(rec.id, 1, batch, -1, 1000)).errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect((await t.broker.produce(rec.id, 2, batch, -1, 1000)).errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect((await t.broker.produce('00000000-0000-0000-0000-000000000000', 0, batch, -1, 1000)).errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    const [f] = await t.broker.fetch([{ topicId: rec.id, partition: 0, fetchOffset: 0, maxBytes: 1024 }], 1024);
    expect(f.errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect((await t.broker.listOffset(rec.id, 0, -1)).errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect((await t.broker.offsetForLeaderEpoch(rec.id, 0, 0)).errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect((await t.broker.deleteRecords(rec.id, 0, 0)).errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
  });
});
