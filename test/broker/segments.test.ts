import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { register } from 'prom-client';
import { FsObjectStore } from '../../services/storage/fs-object-store.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';
import { LocalBus } from '../../services/bus/local-bus.js';
import { TopicRegistry } from '../../services/meta/topics.js';
import { Broker, type BrokerConfig } from '../../services/broker/broker.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { batchesOf } from '../../services/protocol/record-batch.js';
import { buildSegment } from '../../services/storage/segment.js';
import { bodyBuffers } from '../../services/storage/object-store.js';
import type { StoredExtent } from '../../services/broker/partition.js';
import { buildBatch } from '../support/batches.js';
import { flipStoredByte } from '../support/objects.js';

const log = pino({ level: 'silent' });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function open(dir: string, cfg: Partial<BrokerConfig> = {}) {
  const store = new FsObjectStore(join(dir, 'objects'));
  const meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
  const topics = await TopicRegistry.open(meta);
  const broker = new Broker(
    {
      brokerId: 1, flushMs: 1, flushBytes: 4 << 20, flushMaxInflight: 2, checkpointMs: 60_000, cacheBytes: 0, blockCacheBytes: 0,
      maxMessageBytes: 8 << 20, leaseTtlSeconds: 5, segmentBlockBytes: 4096, maintenanceMs: 60_000, gcIntervalMs: 0, gcGraceMs: 0, ownership: 'all', ...cfg,
    },
    { store, meta, bus: new LocalBus(), topics, log },
  );
  await broker.start();
  const t = { store, meta, topics, broker, dir };
  cleanups.push(() => broker.close());
  return t;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-seg-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Reads a whole partition from `from` by repeated fetches, like a consumer would. */
async function readAll(broker: Broker, topicId: string, from: number): Promise<string[]> {
  const out: string[] = [];
  let offset = from;
  for (;;) {
    const [r] = await broker.fetch([{ topicId, partition: 0, fetchOffset: offset, maxBytes: 8192 }], 8192);
    expect(r.errorCode).toBe(ErrorCode.NONE);
    if (r.bytes === 0) return out;
    for (const buf of r.records) {
      for (const b of batchesOf(buf)) {
        if (b.baseOffset + b.lastOffsetDelta < offset) continue;
        out.push(buf.subarray(b.position + 61, b.position + b.size).toString('latin1'));
        offset = b.baseOffset + b.lastOffsetDelta + 1;
      }
    }
  }
}

/** Recent timestamps, one millisecond apart, so that time-based retention keeps them. */
const T0 = Date.now() - 60_000;

async function fill(broker: Broker, topicId: string, n: number, size = 300): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await broker.produce(topicId, 0, buildBatch([{ value: `msg-${i}-`.padEnd(size, 'x'), timestamp: T0 + i }]), -1, 5000);
    expect(r.errorCode).toBe(ErrorCode.NONE);
  }
}

describe('segments, retention and garbage collection', () => {
  it('rolls WAL extents into a segment and serves every offset from it after a restart', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const topic = await t.topics.create('rolling', 1, { 'segment.bytes': '8192' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    await fill(t.broker, topic.id, 60);
    // A full segment rolls as soon as it fills, not at the next maintenance tick (60 s here).
    while ((await t.store.list('segments/')).length < 2) await new Promise((r) => setTimeout(r, 10));
    await t.broker.maintain(); // waits for the pass in progress
    // Full segments of at most segment.bytes roll; the remainder waits in WAL extents.
    const [p] = t.broker.partitions();
    expect(p.extents).toBeGreaterThan(0);
    expect(p.extents).toBeLessThan(30);
    const segs = await t.store.list('segments/');
    expect(segs.length).toBe(2);
    for (const s of segs) expect(s.size).toBeLessThan(8192 + 1024);
    await t.broker.close();

    const again = await open(dir);
    const values = await readAll(again.broker, topic.id, 0);
    expect(values).toHaveLength(60);
    values.forEach((v, i) => expect(v).toContain(`msg-${i}-`));
    // Reads from the middle start at the right batch, and the time index finds records.
    expect((await readAll(again.broker, topic.id, 37))[0]).toContain('msg-37-');
    expect(await again.broker.listOffset(topic.id, 0, T0 + 42)).toMatchObject({ offset: 42, timestamp: T0 + 42 });
  });

  it('rolls from the tail cache without reading storage, into the same segment as from storage', async () => {
    const dir = await tempDir();
    const t = await open(dir, { cacheBytes: 64 << 20, flushMinMs: 0 });
    // Rolled by age in the maintain() call below: one segment of everything produced.
    const topic = await t.topics.create('cached', 1, { 'segment.bytes': String(1 << 20), 'segment.ms': '1' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    // Several record sets per WAL object: produced concurrently, flushed together.
    for (let i = 0; i < 60; i += 4) {
      await Promise.all(
        [0, 1, 2, 3].map((j) => t.broker.produce(topic.id, 0, buildBatch([{ value: `msg-${i + j}-`.padEnd(300, 'x'), timestamp: T0 + i + j }]), -1, 5000)),
      );
    }
    const partition = (t.broker as unknown as { partitionsByKey: Map<string, { extents: StoredExtent[] }> }).partitionsByKey.get(`${topic.id}/0`)!;
    const extents = [...partition.extents];
    const fromCache = async () => Number((await register.getSingleMetricAsString('skiff_broker_segment_bytes_total')).match(/source="cache"} (\d+)/)?.[1] ?? 0);
    const gets = vi.spyOn(t.store, 'get');
    const before = await fromCache();
    await t.broker.maintain();
    expect(gets).not.toHaveBeenCalled();
    expect((await fromCache()) - before).toBeGreaterThan(60 * 300);
    gets.mockRestore();
    // The same segment as one built from the WAL objects read back.
    const [seg] = await t.store.list('segments/');
    const body = await t.store.get(seg.key);
    const rolled = extents.filter((e) => e.lastOffset <= Number(seg.key.slice(-24, -4)));
    const stored = await Promise.all(rolled.map((e) => t.store.get(e.key, { start: e.position, end: e.position + e.length })));
    expect(Buffer.concat(bodyBuffers(buildSegment(stored, 4096).body)).equals(body)).toBe(true);
    await t.broker.close();
    const again = await open(dir);
    const values = await readAll(again.broker, topic.id, 0);
    expect(values).toHaveLength(60);
    values.forEach((v, i) => expect(v).toContain(`msg-${i}-`));
  });

  it('rolls at half the tail cache when segment.bytes is larger, so that no roll reads its batches back', async () => {
    const dir = await tempDir();
    const t = await open(dir, { cacheBytes: 2 << 20, flushMinMs: 0 });
    // A Kafka-style 1 GiB segment.bytes on a broker with a 2 MiB cache.
    const topic = await t.topics.create('capped', 1, { 'segment.bytes': String(1 << 30) });
    await t.broker.whenOnline(topic.id, 1, 5000);
    const gets = vi.spyOn(t.store, 'get');
    await fill(t.broker, topic.id, 48, 64 * 1024);
    await t.broker.maintain();
    expect(gets).not.toHaveBeenCalled();
    gets.mockRestore();
    const segments = await t.store.list('segments/');
    expect(segments.length).toBeGreaterThanOrEqual(2);
    // Each holds at most 1 MiB of batches (half the cache), plus its index.
    for (const g of segments) expect(g.size).toBeLessThan((1 << 20) + (64 << 10));
    await t.broker.close();
    const again = await open(dir);
    const values = await readAll(again.broker, topic.id, 0);
    expect(values).toHaveLength(48);
    values.forEach((v, i) => expect(v).toContain(`msg-${i}-`));
  });

  it('rolls a segment on the local store by linking the WAL files that hold its batches, not by writing them again', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const topic = await t.topics.create('linked', 1, { 'segment.bytes': '4096', 'segment.ms': '1' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    await fill(t.broker, topic.id, 20);
    const wal = await t.store.list('wal/');
    await t.broker.maintain();
    const segments = await t.store.list('segments/');
    expect(segments.length).toBeGreaterThan(0);
    for (const o of wal) expect((await stat(join(dir, 'objects', o.key))).nlink, o.key).toBe(2);
    // What each segment wrote is its index; its batches are the WAL files' bytes.
    let written = 0;
    let total = 0;
    for (const g of segments) {
      written += (await stat(join(dir, 'objects', `${g.key}.skiff-parts`, '0'))).size;
      total += g.size;
    }
    expect(written).toBeLessThan(total / 4);
    await t.broker.checkpoint();
    await t.broker.collectGarbage();
    expect(await t.store.list('wal/')).toHaveLength(0);
    await t.broker.close();
    const again = await open(dir);
    const values = await readAll(again.broker, topic.id, 0);
    expect(values).toHaveLength(20);
  });

  it('deletes WAL objects once segments cover them, and orphans past the grace period', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const topic = await t.topics.create('gc', 1, { 'segment.bytes': '4096', 'segment.ms': '1' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    await fill(t.broker, topic.id, 20);
    const walBefore = (await t.store.list('wal/')).length;
    expect(walBefore).toBeGreaterThan(0);
    await t.store.put('wal/9/never-committed', Buffer.from('orphan'));
    await t.broker.maintain();
    await t.broker.checkpoint();
    const deleted = await t.broker.collectGarbage();
    expect(deleted).toBe(walBefore + 1);
    expect(await t.store.list('wal/')).toHaveLength(0);
    expect(await readAll(t.broker, topic.id, 0)).toHaveLength(20);
  });

  it('counts the WAL bytes beyond a full segment while its roll is held up, and none once it is written', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    // Segment writes wait at a gate, as on a disk that rolls cannot keep up with.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const put = t.store.put.bind(t.store);
    t.store.put = async (key, body) => {
      if (key.startsWith('segments/')) await gate;
      return put(key, body);
    };
    const topic = await t.topics.create('backlog', 1, { 'segment.bytes': '8192' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    expect(t.broker.rollBacklogBytes()).toBe(0);
    let produced = 0;
    for (let i = 0; i < 60; i++) {
      const batch = buildBatch([{ value: `msg-${i}-`.padEnd(300, 'x'), timestamp: T0 + i }]);
      expect((await t.broker.produce(topic.id, 0, batch, -1, 5000)).errorCode).toBe(ErrorCode.NONE);
      produced += batch.length;
      // Every byte past the first segment.bytes of WAL data is backlog while nothing rolls.
      expect(t.broker.rollBacklogBytes()).toBe(Math.max(0, produced - 8192));
    }
    release();
    await vi.waitFor(async () => {
      await t.broker.maintain();
      expect(t.broker.rollBacklogBytes()).toBe(0);
    });
    expect((await t.store.list('segments/')).length).toBeGreaterThanOrEqual(2);
  });

  it('applies retention.ms to segments whose newest record is older than the limit', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const topic = await t.topics.create('aged', 1, { 'segment.bytes': '4096', 'segment.ms': '1', 'retention.ms': '3600000' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    const old = Date.now() - 2 * 3600_000;
    for (let i = 0; i < 20; i++) await t.broker.produce(topic.id, 0, buildBatch([{ value: 'old'.padEnd(300, 'o'), timestamp: old }]), -1, 5000);
    await t.broker.maintain();
    await fill(t.broker, topic.id, 20);
    await t.broker.maintain();
    await t.broker.maintain();
    expect(t.broker.partitions()[0].logStartOffset).toBe(20);
    expect(await readAll(t.broker, topic.id, 20)).toHaveLength(20);
  });

  it('keeps a WAL object whose write or commit is still under way, however old its file', async () => {
    const dir = await tempDir();
    const t = await open(dir, { gcGraceMs: 1 });
    // WAL puts land, then the file is aged two hours and the put held: a write that stalled.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held: string[] = [];
    const put = t.store.put.bind(t.store);
    t.store.put = async (key, body, options) => {
      await put(key, body, options);
      if (!key.startsWith('wal/')) return;
      const old = new Date(Date.now() - 2 * 3600_000);
      await utimes(join(dir, 'objects', key), old, old);
      held.push(key);
      await gate;
    };
    const topic = await t.topics.create('stalled', 1, {});
    await t.broker.whenOnline(topic.id, 1, 5000);
    const acked = t.broker.produce(topic.id, 0, buildBatch([{ value: 'durable' }]), -1, 60_000);
    await vi.waitFor(() => expect(held).toHaveLength(1));
    expect(await t.broker.collectGarbage()).toBe(0);
    expect(await t.store.head(held[0])).toBeDefined();
    release();
    expect((await acked).errorCode).toBe(ErrorCode.NONE);
    // Read back from the WAL file (this broker has no tail cache).
    const records = await readAll(t.broker, topic.id, 0);
    expect(records).toHaveLength(1);
    expect(records[0]).toContain('durable');
  });

  it('keeps unreferenced objects younger than the grace period', async () => {
    const dir = await tempDir();
    const t = await open(dir, { gcGraceMs: 600_000 });
    await t.store.put('wal/9/in-flight', Buffer.from('maybe about to commit'));
    expect(await t.broker.collectGarbage()).toBe(0);
    expect(await t.store.head('wal/9/in-flight')).toBeDefined();
  });

  it('applies retention.bytes by dropping whole segments and moving the log start', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const topic = await t.topics.create('retained', 1, { 'segment.bytes': '4096', 'retention.bytes': '5000' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    for (let round = 0; round < 4; round++) {
      await fill(t.broker, topic.id, 15);
      await t.broker.maintain();
    }
    const [p] = t.broker.partitions();
    expect(p.logStartOffset).toBeGreaterThan(0);
    const [below] = await t.broker.fetch([{ topicId: topic.id, partition: 0, fetchOffset: 0, maxBytes: 1 << 20 }], 1 << 20);
    expect(below.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await t.broker.listOffset(topic.id, 0, -2)).offset).toBe(p.logStartOffset);
    expect((await readAll(t.broker, topic.id, p.logStartOffset)).length).toBe(60 - p.logStartOffset);
  });

  it('detects a corrupted segment by checksum and never serves it', async () => {
    const dir = await tempDir();
    const t = await open(dir);
    const topic = await t.topics.create('corrupt', 1, { 'segment.bytes': '4096', 'segment.ms': '1' });
    await t.broker.whenOnline(topic.id, 1, 5000);
    await fill(t.broker, topic.id, 20);
    await t.broker.maintain();
    await t.broker.close();
    const [seg] = await t.store.list('segments/');
    await flipStoredByte(join(dir, 'objects', seg.key), 100);
    const again = await open(dir);
    const corruptReads = async () => (await register.getSingleMetric('skiff_broker_corrupt_reads_total')!.get()).values[0]?.value ?? 0;
    const before = await corruptReads();
    const [r] = await again.broker.fetch([{ topicId: topic.id, partition: 0, fetchOffset: 0, maxBytes: 1 << 20 }], 1 << 20);
    expect(r.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect(r.records).toHaveLength(0);
    expect(await corruptReads()).toBe(before + 1);
  });
});
