// Catch-up reads (DESIGN.md §3 Fetch): in cluster mode the proxy reads fetches well behind the
// high watermark from segment objects itself. A real broker (local object store, embedded
// metadata store) serves the proxy over the Kafka protocol, as in `skiff broker`; the proxy
// side is the RemoteBrokerClient of `skiff proxy`. Each side reads the objects through its
// own counting wrapper, so a test can tell who read what.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { register } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Broker } from '../../services/broker/broker.js';
import { encodeAssignment } from '../../services/broker/assignments.js';
import { decodeCheckpoint } from '../../services/broker/checkpoint.js';
import type { GroupService } from '../../services/broker/group-service.js';
import type { FetchResult } from '../../services/broker/broker-client.js';
import { LocalBus } from '../../services/bus/local-bus.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';
import { Keys } from '../../services/meta/keys.js';
import { TopicRegistry } from '../../services/meta/topics.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { batchesOf } from '../../services/protocol/record-batch.js';
import { CatchUpReads } from '../../services/proxy/catch-up.js';
import { ClusterView } from '../../services/proxy/cluster-view.js';
import { Proxy } from '../../services/proxy/proxy.js';
import { BrokerConnections, RemoteBrokerClient } from '../../services/proxy/remote-broker.js';
import { FsObjectStore } from '../../services/storage/fs-object-store.js';
import { ObjectNotFoundError, type ByteRange, type ObjectStore, type PutBody } from '../../services/storage/object-store.js';
import type { SegmentRef } from '../../services/storage/segment.js';
import { buildBatch } from '../support/batches.js';
import { flipStoredByte } from '../support/objects.js';

const log = pino({ level: 'silent' });
const MESSAGES = 120;

/** The object store as one side sees it: GETs counted, objects hidden on demand. */
class Tapped implements ObjectStore {
  gets = 0;
  readonly hidden = new Set<string>();
  constructor(private readonly inner: ObjectStore) {}
  put(key: string, body: PutBody) {
    return this.inner.put(key, body);
  }
  get(key: string, range?: ByteRange) {
    this.gets++;
    if (this.hidden.has(key)) return Promise.reject(new ObjectNotFoundError(key));
    return this.inner.get(key, range);
  }
  head(key: string) {
    return this.inner.head(key);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  async close() {}
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A broker behind its Kafka listener, a topic rolled into segments, and a proxy-side client. */
async function cluster() {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-catchup-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const objects = new FsObjectStore(join(dir, 'objects'));
  const brokerStore = new Tapped(objects);
  const proxyStore = new Tapped(objects);
  const meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
  cleanups.push(() => meta.close());
  const bus = new LocalBus();
  const topics = await TopicRegistry.open(meta);
  cleanups.push(() => topics.close());
  // No tail cache and no block cache: every broker read is a GET the test can count.
  const broker = new Broker(
    {
      brokerId: 1, flushMs: 1, flushBytes: 4 << 20, flushMaxInflight: 2, checkpointMs: 60_000, cacheBytes: 0, blockCacheBytes: 0,
      maxMessageBytes: 8 << 20, leaseTtlSeconds: 5, segmentBlockBytes: 1024, maintenanceMs: 60_000, gcIntervalMs: 0, gcGraceMs: 0, ownership: 'all',
    },
    { store: brokerStore, meta, bus, topics, log },
  );
  const listener = new Proxy(
    {
      nodeId: 1, host: '127.0.0.1', port: 0, advertisedHost: '127.0.0.1', advertisedPort: 0, clusterId: 'catch-up', maxRequestBytes: 100 << 20,
      autoCreateTopics: false, defaultPartitions: 1, maxUnflushedBytes: Number.MAX_SAFE_INTEGER, maxRollBacklogBytes: Number.MAX_SAFE_INTEGER, maxParkedFetches: 100, advertiseMode: 'service',
    },
    { broker, groups: {} as GroupService, topics, bus, log },
  );
  await listener.start();
  cleanups.push(() => listener.close());
  broker.setAdvertise({ host: '127.0.0.1', port: listener.port, httpPort: 0 });
  await broker.start();
  cleanups.push(() => broker.close());

  const topic = await topics.create('catch-up', 1, { 'segment.bytes': '4096' });
  expect(await broker.whenOnline(topic.id, 1, 5000)).toBe(true);
  await meta.put(Keys.assign(topic.id, 0), encodeAssignment({ broker: 1, epoch: 0 }));
  for (let i = 0; i < MESSAGES; i++) {
    const r = await broker.produce(topic.id, 0, buildBatch([{ value: `msg-${i}-`.padEnd(300, 'x') }]), -1, 5000);
    expect(r.errorCode).toBe(ErrorCode.NONE);
  }
  await broker.maintain();
  const segments = decodeCheckpoint((await meta.get(Keys.ckpt(topic.id, 0)))!.value).segments;
  expect(segments.length, 'segments rolled').toBeGreaterThanOrEqual(4);

  const view = await ClusterView.open(meta);
  cleanups.push(() => view.close());
  await view.whenAssigned([`${topic.id}/0`], 5000);
  const connections = new BrokerConnections('catch-up-test');
  cleanups.push(async () => connections.close());
  let opened = 0;
  const catchUp = new CatchUpReads(
    meta,
    topics,
    async () => {
      opened++;
      return proxyStore;
    },
    1 << 20,
    log,
  );
  cleanups.push(() => catchUp.close());
  const remote = new RemoteBrokerClient(view, topics, connections, log, catchUp);
  const fetchBoth = async (fetchOffset: number, maxBytes = 1500): Promise<[FetchResult, FetchResult]> => {
    const input = { topicId: topic.id, partition: 0, fetchOffset, maxBytes };
    const [viaProxy] = await remote.fetch([input], 1 << 20);
    const [direct] = await broker.fetch([input], 1 << 20);
    return [viaProxy, direct];
  };
  return { dir, broker, brokerStore, proxyStore, meta, topic, segments, catchUp, remote, fetchBoth, opened: () => opened };
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = register.getSingleMetric(name);
  if (!m) return 0;
  const v = (await m.get()).values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

const bytesOf = (r: FetchResult) => Buffer.concat(r.records);
const offsetsOf = (r: FetchResult) => [...batchesOf(bytesOf(r))].map((b) => b.baseOffset);
const inside = (g: SegmentRef) => Math.floor((g.baseOffset + g.lastOffset) / 2);

describe('catch-up reads in the proxy', () => {
  it('serves a fetch inside an older segment from the segment object, byte for byte what the broker answers', async () => {
    const t = await cluster();
    // The first fetch of a partition goes to the broker; the proxy reads the checkpoint meanwhile.
    const [first] = await t.remote.fetch([{ topicId: t.topic.id, partition: 0, fetchOffset: 0, maxBytes: 1500 }], 1 << 20);
    expect(first.errorCode).toBe(ErrorCode.NONE);
    await t.catchUp.refresh(t.topic.id, 0);
    expect(t.opened(), 'object store opened before any catch-up read').toBe(0);

    for (const offset of [0, inside(t.segments[0]), t.segments[1].baseOffset, inside(t.segments[t.segments.length - 2])]) {
      const segmentReads = await metric('skiff_proxy_fetch_reads_total', { source: 'segment' });
      const segmentBytes = await metric('skiff_proxy_fetch_bytes_total', { source: 'segment' });
      const brokerGets = t.brokerStore.gets;
      const proxyGets = t.proxyStore.gets;
      const input = { topicId: t.topic.id, partition: 0, fetchOffset: offset, maxBytes: 1500 };
      const [viaProxy] = await t.remote.fetch([input], 1 << 20);
      expect(t.brokerStore.gets, `the broker read nothing for offset ${offset}`).toBe(brokerGets);
      expect(t.proxyStore.gets, `the proxy read the segment for offset ${offset}`).toBeGreaterThan(proxyGets);
      expect(await metric('skiff_proxy_fetch_reads_total', { source: 'segment' })).toBe(segmentReads + 1);
      expect(await metric('skiff_proxy_fetch_bytes_total', { source: 'segment' })).toBe(segmentBytes + viaProxy.bytes);
      const [direct] = await t.broker.fetch([input], 1 << 20);
      expect(direct.errorCode).toBe(ErrorCode.NONE);
      expect(viaProxy.errorCode).toBe(ErrorCode.NONE);
      expect(viaProxy.bytes).toBeGreaterThan(0);
      expect(bytesOf(viaProxy).equals(bytesOf(direct)), `bytes at offset ${offset}`).toBe(true);
      expect([viaProxy.highWatermark, viaProxy.lastStableOffset, viaProxy.logStartOffset]).toEqual([MESSAGES, MESSAGES, 0]);
      expect([viaProxy.highWatermark, viaProxy.lastStableOffset, viaProxy.logStartOffset]).toEqual([direct.highWatermark, direct.lastStableOffset, direct.logStartOffset]);
      expect(offsetsOf(viaProxy)[0]).toBe(offset);
    }
    expect(t.opened()).toBe(1);
  });

  it('reads the whole partition like a consumer: the proxy serves the old segments, the broker the tail', async () => {
    const t = await cluster();
    await t.catchUp.refresh(t.topic.id, 0);
    const segmentReads = await metric('skiff_proxy_fetch_reads_total', { source: 'segment' });
    const brokerReads = await metric('skiff_proxy_fetch_reads_total', { source: 'broker' });
    const values: string[] = [];
    let offset = 0;
    for (;;) {
      const [viaProxy, direct] = await t.fetchBoth(offset, 1000);
      expect(viaProxy.errorCode).toBe(ErrorCode.NONE);
      // The same bytes, except that a catch-up read stops where the segments it may use end
      // (the broker reads on into the next one).
      const same = bytesOf(direct).subarray(0, viaProxy.bytes);
      expect(same.equals(bytesOf(viaProxy)), `bytes at offset ${offset}`).toBe(true);
      if (viaProxy.bytes < direct.bytes) expect(t.segments.map((g) => g.lastOffset + 1)).toContain(offsetsOf(direct)[offsetsOf(viaProxy).length]);
      if (viaProxy.bytes === 0) break;
      const buf = bytesOf(viaProxy);
      for (const b of batchesOf(buf)) {
        values.push(buf.subarray(b.position + 61, b.position + b.size).toString('latin1'));
        offset = b.baseOffset + b.lastOffsetDelta + 1;
      }
    }
    expect(values).toHaveLength(MESSAGES);
    values.forEach((v, i) => expect(v).toContain(`msg-${i}-`));
    expect(await metric('skiff_proxy_fetch_reads_total', { source: 'segment' })).toBeGreaterThan(segmentReads);
    expect(await metric('skiff_proxy_fetch_reads_total', { source: 'broker' })).toBeGreaterThan(brokerReads);
  });

  it('leaves the newest segment and the WAL part to the broker', async () => {
    const t = await cluster();
    await t.catchUp.refresh(t.topic.id, 0);
    const newest = t.segments[t.segments.length - 1];
    expect(t.catchUp.plan(t.topic.id, 0, inside(t.segments[0]))).toBeDefined();
    expect(t.catchUp.plan(t.topic.id, 0, inside(newest))).toBeUndefined();
    expect(t.catchUp.plan(t.topic.id, 0, newest.lastOffset + 1)).toBeUndefined();
    expect(t.catchUp.plan(t.topic.id, 0, MESSAGES)).toBeUndefined();
    const proxyGets = t.proxyStore.gets;
    const [viaProxy, direct] = await t.fetchBoth(inside(newest));
    expect(t.proxyStore.gets).toBe(proxyGets);
    expect(bytesOf(viaProxy).equals(bytesOf(direct))).toBe(true);
    expect(t.opened(), 'no catch-up read, no object store').toBe(0);
  });

  it('reads the checkpoint again once the high watermark moved by a segment, and then serves what became older', async () => {
    const t = await cluster();
    await t.catchUp.refresh(t.topic.id, 0);
    const newest = t.segments[t.segments.length - 1];
    for (let i = MESSAGES; i < MESSAGES * 2; i++) {
      expect((await t.broker.produce(t.topic.id, 0, buildBatch([{ value: `msg-${i}-`.padEnd(300, 'x') }]), -1, 5000)).errorCode).toBe(ErrorCode.NONE);
    }
    await t.broker.maintain();
    // Still the newest segment as far as the proxy knows: the broker answers, and reports the new high watermark.
    const [tail] = await t.fetchBoth(inside(newest));
    expect(tail.highWatermark).toBe(MESSAGES * 2);
    expect(t.catchUp.plan(t.topic.id, 0, inside(newest))).toBeUndefined();
    // Re-reads are at most once a second per partition.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 1500);
      expect(t.catchUp.plan(t.topic.id, 0, inside(newest))).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
    await t.catchUp.refresh(t.topic.id, 0); // the read that plan() started
    const segmentReads = await metric('skiff_proxy_fetch_reads_total', { source: 'segment' });
    const [viaProxy, direct] = await t.fetchBoth(inside(newest));
    expect(await metric('skiff_proxy_fetch_reads_total', { source: 'segment' })).toBe(segmentReads + 1);
    expect(bytesOf(viaProxy).equals(bytesOf(direct))).toBe(true);
    expect(viaProxy.highWatermark).toBe(MESSAGES * 2);
  });

  it('answers OFFSET_OUT_OF_RANGE below a log start that moved after the proxy read the checkpoint, and above the high watermark', async () => {
    const t = await cluster();
    await t.catchUp.refresh(t.topic.id, 0);
    // DeleteRecords into the second segment: the first one is deleted; the proxy's copy still names it.
    const logStart = inside(t.segments[1]);
    expect((await t.broker.deleteRecords(t.topic.id, 0, logStart)).errorCode).toBe(ErrorCode.NONE);
    expect(await t.proxyStore.head(t.segments[0].key)).toBeUndefined();
    expect(t.catchUp.plan(t.topic.id, 0, 0)).toBeDefined();

    const [below, belowDirect] = await t.fetchBoth(inside(t.segments[0]));
    expect(below).toMatchObject({ errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, highWatermark: MESSAGES, logStartOffset: logStart, bytes: 0 });
    expect(belowDirect).toMatchObject({ errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, highWatermark: MESSAGES, logStartOffset: logStart });

    // Reading the deleted segment showed the copy out of date; a fresh one serves the rest.
    await t.catchUp.refresh(t.topic.id, 0);
    const segmentReads = await metric('skiff_proxy_fetch_reads_total', { source: 'segment' });
    const [at, atDirect] = await t.fetchBoth(logStart);
    expect(await metric('skiff_proxy_fetch_reads_total', { source: 'segment' })).toBe(segmentReads + 1);
    expect(at.errorCode).toBe(ErrorCode.NONE);
    expect(at.logStartOffset).toBe(logStart);
    expect(bytesOf(at).equals(bytesOf(atDirect))).toBe(true);

    const [above] = await t.fetchBoth(MESSAGES + 5);
    expect(above).toMatchObject({ errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, highWatermark: MESSAGES, bytes: 0 });
  });

  it('falls back to the broker when the segment object is gone, and forgets its copy', async () => {
    const t = await cluster();
    await t.catchUp.refresh(t.topic.id, 0);
    // Gone as far as the proxy can tell (as after retention or GC), while the broker still reads it.
    t.proxyStore.hidden.add(t.segments[1].key);
    const fallbacks = await metric('skiff_proxy_catch_up_fallbacks_total', { reason: 'missing' });
    const brokerGets = t.brokerStore.gets;
    const [viaProxy, direct] = await t.fetchBoth(inside(t.segments[1]));
    expect(viaProxy.errorCode).toBe(ErrorCode.NONE);
    expect(viaProxy.bytes).toBeGreaterThan(0);
    expect(bytesOf(viaProxy).equals(bytesOf(direct))).toBe(true);
    expect(await metric('skiff_proxy_catch_up_fallbacks_total', { reason: 'missing' })).toBe(fallbacks + 1);
    // The broker served it (its GETs: the fallback's, then the direct comparison's).
    expect(t.brokerStore.gets).toBeGreaterThan(brokerGets + 1);
    // The copy is dropped: the next fetch goes to the broker and reads the checkpoint again.
    expect(t.catchUp.plan(t.topic.id, 0, inside(t.segments[1]))).toBeUndefined();
  });

  it('never serves a block whose checksum does not match', async () => {
    const t = await cluster();
    await t.catchUp.refresh(t.topic.id, 0);
    await flipStoredByte(join(t.dir, 'objects', t.segments[0].key), 100);
    const fallbacks = await metric('skiff_proxy_catch_up_fallbacks_total', { reason: 'corrupt' });
    const segmentReads = await metric('skiff_proxy_fetch_reads_total', { source: 'segment' });
    const [viaProxy, direct] = await t.fetchBoth(0);
    expect(await metric('skiff_proxy_catch_up_fallbacks_total', { reason: 'corrupt' })).toBe(fallbacks + 1);
    expect(await metric('skiff_proxy_fetch_reads_total', { source: 'segment' })).toBe(segmentReads);
    // Handed to the broker, which finds the same mismatch: today's answer, and no bytes.
    expect(viaProxy).toMatchObject({ errorCode: ErrorCode.KAFKA_STORAGE_ERROR, bytes: 0, records: [] });
    expect(direct.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    // Nothing corrupt was cached: a second try fails the same way.
    const [again] = await t.fetchBoth(0);
    expect(again.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect(await metric('skiff_proxy_catch_up_fallbacks_total', { reason: 'corrupt' })).toBe(fallbacks + 2);
  });
});
