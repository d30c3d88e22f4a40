import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { FsObjectStore } from '../../services/storage/fs-object-store.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';
import { LocalBus } from '../../services/bus/local-bus.js';
import { TopicRegistry } from '../../services/meta/topics.js';
import { Broker } from '../../services/broker/broker.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { batchesOf, BATCH_HEADER_SIZE } from '../../services/protocol/record-batch.js';
import { buildBatch } from '../support/batches.js';

const GiB = 1 << 30;
const VALUE = 1 << 20;
let dir: string;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function open() {
  const store = new FsObjectStore(join(dir, 'objects'));
  const meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
  const topics = await TopicRegistry.open(meta);
  const broker = new Broker(
    {
      brokerId: 1, flushMs: 5, flushBytes: 16 << 20, flushMaxInflight: 4, checkpointMs: 60_000, cacheBytes: 0, blockCacheBytes: 32 << 20,
      maxMessageBytes: 8 << 20, leaseTtlSeconds: 5, segmentBlockBytes: 1 << 20, maintenanceMs: 60_000, gcIntervalMs: 0, gcGraceMs: 0, ownership: 'all',
    },
    { store, meta, bus: new LocalBus(), topics, log: pino({ level: 'silent' }) },
  );
  await broker.start();
  return { store, topics, broker };
}

/** Deterministic 1 MiB value for message i, so reading back can check every byte. */
function value(i: number): Buffer {
  const b = Buffer.alloc(VALUE, i % 251);
  b.writeUInt32BE(i, 0);
  return b;
}

describe('a 1 GiB partition', () => {
  it('is read back completely and correctly by a consumer starting at offset 0, from segments in storage', async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-gib-'));
    const first = await open();
    const topic = await first.topics.create('big', 1, { 'segment.bytes': String(128 << 20) });
    await first.broker.whenOnline(topic.id, 1, 5000);
    const count = GiB / VALUE;
    const digests: string[] = [];
    const inflight: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const v = value(i);
      digests.push(createHash('sha1').update(v).digest('hex'));
      inflight.push(first.broker.produce(topic.id, 0, buildBatch([{ value: v }]), -1, 60_000));
      if (inflight.length >= 32) {
        const rs = (await Promise.all(inflight.splice(0))) as { errorCode: number }[];
        expect(rs.every((r) => r.errorCode === ErrorCode.NONE)).toBe(true);
      }
    }
    await Promise.all(inflight);
    await first.broker.maintain();
    await first.broker.close();
    expect((await first.store.list('segments/')).length).toBeGreaterThanOrEqual(8);

    const again = await open();
    let offset = 0;
    let read = 0;
    while (offset < count) {
      const [r] = await again.broker.fetch([{ topicId: topic.id, partition: 0, fetchOffset: offset, maxBytes: 8 << 20 }], 8 << 20);
      expect(r.errorCode).toBe(ErrorCode.NONE);
      expect(r.bytes).toBeGreaterThan(0);
      for (const buf of r.records) {
        for (const b of batchesOf(buf)) {
          expect(b.baseOffset).toBe(offset);
          // One record per batch: its value is the last VALUE bytes of the batch.
          const v = buf.subarray(b.position + b.size - VALUE - 1, b.position + b.size - 1);
          expect(b.size).toBeGreaterThan(BATCH_HEADER_SIZE + VALUE);
          expect(createHash('sha1').update(v).digest('hex')).toBe(digests[offset]);
          offset++;
          read += v.length;
        }
      }
    }
    expect(read).toBe(GiB);
    await again.broker.close();
  }, 240_000);
});
