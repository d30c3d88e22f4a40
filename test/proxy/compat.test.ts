// One test per item of KAFKA-COMPAT.md (numbered as there), against a running server.
// Items about client behaviour end to end are also exercised by e2e/ with the real clients.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from '../support/embedded.js';
import { TestClient } from '../support/kafka-client.js';
import { buildBatch } from '../support/batches.js';
import { ApiKey, apis } from '../../services/protocol/messages/index.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { BatchField } from '../../services/protocol/record-batch.js';
import { PROXY_SOFTWARE_NAME } from '../../services/proxy/server.js';

let skiff: Embedded;
let c: TestClient;
beforeAll(async () => {
  skiff = await startEmbedded();
  c = await TestClient.connect(skiff.kafkaPort);
});
afterAll(async () => {
  c.close();
  await skiff.destroy();
});

const metadata = (topics: { name: string }[] | null, allowAutoTopicCreation = true, v = 9) =>
  c.request(ApiKey.Metadata, v, { topics, allowAutoTopicCreation, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });
const produce = (topic: string, records: Buffer, acks = -1, partition = 0) =>
  c.request(ApiKey.Produce, 9, { transactionalId: null, acks, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: partition, records }] }] });
const fetchReq = (topic: string, o: { offset?: bigint; maxWaitMs?: number; minBytes?: number; maxBytes?: number; partitionMaxBytes?: number; sessionId?: number; currentLeaderEpoch?: number; isolationLevel?: number } = {}) => ({
  replicaId: -1, maxWaitMs: o.maxWaitMs ?? 0, minBytes: o.minBytes ?? 0, maxBytes: o.maxBytes ?? 1 << 20, isolationLevel: o.isolationLevel ?? 1,
  sessionId: o.sessionId ?? 0, sessionEpoch: -1, forgottenTopicsData: [], rackId: '',
  topics: [{ topic, partitions: [{ partition: 0, fetchOffset: o.offset ?? 0n, partitionMaxBytes: o.partitionMaxBytes ?? 1 << 20, currentLeaderEpoch: o.currentLeaderEpoch ?? -1, logStartOffset: -1n }] }],
});
async function versions(): Promise<Map<number, [number, number]>> {
  const r = await c.request(ApiKey.ApiVersions, 3, { clientSoftwareName: 't', clientSoftwareVersion: '1' });
  return new Map(r.apiKeys.map((k: { apiKey: number; minVersion: number; maxVersion: number }) => [k.apiKey, [k.minVersion, k.maxVersion]]));
}
const within = (v: Map<number, [number, number]>, key: number, version: number) => {
  const r = v.get(key);
  return r !== undefined && r[0] <= version && version <= r[1];
};

describe('KAFKA-COMPAT.md', () => {
  it('#1 answers in request order on a connection, a slow Fetch before a quick Metadata', async () => {
    await produce('order', buildBatch([{ value: 'x' }]));
    const order: string[] = [];
    const slow = c.request(ApiKey.Fetch, 11, fetchReq('order', { offset: 1n, maxWaitMs: 300, minBytes: 1 })).then(() => order.push('fetch'));
    const quick = metadata([{ name: 'order' }]).then(() => order.push('metadata'));
    await Promise.all([slow, quick]);
    expect(order).toEqual(['fetch', 'metadata']);
  });

  it('#1 answers a proxy\'s own connection to a broker as each answer is ready: the quick Metadata overtakes the slow Fetch', async () => {
    // A proxy carries many clients' requests on one connection to each broker; in request
    // order, one client's parked request would hold up everyone's answers.
    const proxy = await TestClient.connect(skiff.kafkaPort);
    await proxy.request(ApiKey.ApiVersions, 3, { clientSoftwareName: PROXY_SOFTWARE_NAME, clientSoftwareVersion: '1' });
    await produce('unordered', buildBatch([{ value: 'x' }]));
    const order: string[] = [];
    const slow = proxy.request(ApiKey.Fetch, 11, fetchReq('unordered', { offset: 1n, maxWaitMs: 300, minBytes: 1 })).then(() => order.push('fetch'));
    const quick = proxy
      .request(ApiKey.Metadata, 9, { topics: [{ name: 'unordered' }], allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false })
      .then(() => order.push('metadata'));
    await Promise.all([slow, quick]);
    expect(order).toEqual(['metadata', 'fetch']);
    proxy.close();
  });

  it('#2 sends no response at all to acks=0', async () => {
    const own = await TestClient.connect(skiff.kafkaPort);
    const frames: number[] = [];
    own.socket.on('data', (d) => frames.push(d.readInt32BE(4)));
    await own.requestRaw(ApiKey.Produce, 9, (w) => apis[ApiKey.Produce].encodeRequest(w, 9, { transactionalId: null, acks: 0, timeoutMs: 1000, topicData: [{ name: 'acks0', partitionData: [{ index: 0, records: buildBatch([{ value: 'z' }]) }] }] }), false);
    await own.request(ApiKey.ApiVersions, 3, { clientSoftwareName: 't', clientSoftwareVersion: '1' });
    expect(frames).toEqual([2]); // only the ApiVersions answer (correlation id 2)
    own.close();
  });

  it('#3 uses response header v0 for ApiVersions v3 and v1 (tagged fields) for other flexible responses', async () => {
    const av = await c.requestRaw(ApiKey.ApiVersions, 3, (w) => apis[ApiKey.ApiVersions].encodeRequest(w, 3, { clientSoftwareName: 't', clientSoftwareVersion: '1' }));
    expect(av.readInt16BE(4)).toBe(ErrorCode.NONE); // error code right after the correlation id
    const md = await c.requestRaw(ApiKey.Metadata, 9, (w) => apis[ApiKey.Metadata].encodeRequest(w, 9, { topics: [], allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false }));
    expect(md[4]).toBe(0); // empty tagged-field section of header v1
  });

  it('#4 answers an ApiVersions version above its max with a v0 body, without closing (see bad-input)', async () => {
    const v = await versions();
    expect(v.get(ApiKey.ApiVersions)).toEqual([0, 4]);
  });

  it('#5 advertises the exact versions librdkafka 2.0.2 probes, with floor 0', async () => {
    const v = await versions();
    for (const [key, version] of [
      [ApiKey.Produce, 0], [ApiKey.Produce, 3], [ApiKey.Produce, 7], [ApiKey.Fetch, 4], [ApiKey.Fetch, 10], [ApiKey.FindCoordinator, 0],
      [ApiKey.OffsetCommit, 1], [ApiKey.OffsetCommit, 2], [ApiKey.OffsetFetch, 1], [ApiKey.JoinGroup, 0], [ApiKey.SyncGroup, 0],
      [ApiKey.Heartbeat, 0], [ApiKey.LeaveGroup, 0], [ApiKey.InitProducerId, 0], [ApiKey.ListOffsets, 1],
    ] as const) expect(within(v, key, version), `${key} v${version}`).toBe(true);
  });

  it('#6 supports the versions kafkajs 2.2.4 needs', async () => {
    const v = await versions();
    for (const [key, version] of [
      [ApiKey.Produce, 7], [ApiKey.Fetch, 11], [ApiKey.Metadata, 6], [ApiKey.ListOffsets, 3], [ApiKey.OffsetCommit, 5], [ApiKey.OffsetFetch, 4],
      [ApiKey.JoinGroup, 5], [ApiKey.SyncGroup, 3], [ApiKey.Heartbeat, 3], [ApiKey.LeaveGroup, 3], [ApiKey.FindCoordinator, 2],
      [ApiKey.InitProducerId, 1], [ApiKey.ApiVersions, 2],
    ] as const) expect(within(v, key, version), `${key} v${version}`).toBe(true);
  });

  it('#7 supports the versions @platformatic/kafka needs (SASL aside: authentication is not offered)', async () => {
    const v = await versions();
    for (const [key, version] of [
      [ApiKey.ApiVersions, 3], [ApiKey.Metadata, 9], [ApiKey.Produce, 7], [ApiKey.Fetch, 12], [ApiKey.ListOffsets, 5], [ApiKey.FindCoordinator, 4],
      [ApiKey.JoinGroup, 6], [ApiKey.SyncGroup, 4], [ApiKey.Heartbeat, 4], [ApiKey.LeaveGroup, 4], [ApiKey.OffsetCommit, 8], [ApiKey.OffsetFetch, 8],
      [ApiKey.OffsetForLeaderEpoch, 4], [ApiKey.InitProducerId, 3], [ApiKey.CreateTopics, 7], [ApiKey.DeleteTopics, 6],
    ] as const) expect(within(v, key, version), `${key} v${version}`).toBe(true);
  });

  it('#8 advertises only versions it implements: no Produce 12+, JoinGroup ≥5 for static membership', async () => {
    const v = await versions();
    expect(v.get(ApiKey.Produce)![1]).toBeLessThanOrEqual(11);
    expect(v.get(ApiKey.JoinGroup)![1]).toBeGreaterThanOrEqual(5);
    expect(within(v, ApiKey.Fetch, 4) && within(v, ApiKey.ListOffsets, 1) && within(v, ApiKey.OffsetCommit, 2)).toBe(true);
  });

  it('#9 treats null topics as all topics and an empty list as none', async () => {
    await produce('listed', buildBatch([{ value: 'x' }]));
    expect((await metadata(null)).topics.map((t: { name: string }) => t.name)).toContain('listed');
    const none = await metadata([]);
    expect(none.topics).toEqual([]);
    expect(none.brokers).toHaveLength(1);
  });

  it('#10 #11 never gives two ids one address; leader, coordinator and controller are listed brokers', async () => {
    const md = await metadata([{ name: 'listed' }]);
    const addrs = md.brokers.map((b: { host: string; port: number }) => `${b.host}:${b.port}`);
    expect(new Set(addrs).size).toBe(addrs.length);
    const ids = new Set(md.brokers.map((b: { nodeId: number }) => b.nodeId));
    expect(ids.has(md.controllerId)).toBe(true);
    for (const p of md.topics[0].partitions) expect(ids.has(p.leaderId)).toBe(true);
    const fc = await c.request(ApiKey.FindCoordinator, 4, { keyType: 0, coordinatorKeys: ['g'] });
    expect(ids.has(fc.coordinators[0].nodeId)).toBe(true);
  });

  it('#12 reports the same cluster id on every connection and after a restart', async () => {
    const first = (await metadata([])).clusterId;
    const other = await TestClient.connect(skiff.kafkaPort);
    expect((await other.request(ApiKey.Metadata, 12, { topics: [], allowAutoTopicCreation: false, includeTopicAuthorizedOperations: false })).clusterId).toBe(first);
    other.close();
    expect(first).toMatch(/^[0-9a-f]{22}$/);
  });

  it('#13 gives real leader epochs and does not fence a client sending CurrentLeaderEpoch 0', async () => {
    await produce('epochs', buildBatch([{ value: 'x' }]));
    const md = await metadata([{ name: 'epochs' }]);
    expect(md.topics[0].partitions[0].leaderEpoch).toBeGreaterThanOrEqual(0);
    const f = await c.request(ApiKey.Fetch, 11, fetchReq('epochs', { currentLeaderEpoch: 0 }));
    expect(f.responses[0].partitions[0].errorCode).toBe(ErrorCode.NONE);
  });

  it('#14 serves Fetch 13+ by real, non-zero topic ids from Metadata 10+', async () => {
    await produce('by-id', buildBatch([{ value: 'id' }]));
    const md = await c.request(ApiKey.Metadata, 12, { topics: [{ name: 'by-id' }], allowAutoTopicCreation: false, includeTopicAuthorizedOperations: false });
    const topicId = md.topics[0].topicId;
    expect(topicId).not.toBe('00000000-0000-0000-0000-000000000000');
    const f = await c.request(ApiKey.Fetch, 13, { ...fetchReq(''), topics: [{ topicId, partitions: [{ partition: 0, fetchOffset: 0n, partitionMaxBytes: 1 << 20, currentLeaderEpoch: -1, logStartOffset: -1n, lastFetchedEpoch: -1 }] }] });
    expect(f.responses[0].topicId).toBe(topicId);
    expect(f.responses[0].partitions[0].records.includes(Buffer.from('id'))).toBe(true);
  });

  it('#15 respects allow_auto_topic_creation=false', async () => {
    const md = await metadata([{ name: 'not-created' }], false);
    expect(md.topics[0].errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect((await metadata(null)).topics.map((t: { name: string }) => t.name)).not.toContain('not-created');
  });

  it('#16 rewrites only baseOffset and partitionLeaderEpoch; the CRC and the rest are untouched', async () => {
    await produce('bytes', buildBatch([{ value: 'first' }]));
    const sent = buildBatch([{ key: 'k', value: 'second', headers: [['h', 'v']] }]);
    const original = Buffer.from(sent);
    await produce('bytes', sent);
    const f = await c.request(ApiKey.Fetch, 11, fetchReq('bytes', { offset: 1n }));
    const got: Buffer = f.responses[0].partitions[0].records;
    expect(got.readBigInt64BE(BatchField.baseOffset)).toBe(1n);
    expect(got.subarray(BatchField.magic)).toEqual(original.subarray(BatchField.magic));
    expect(got.readInt32BE(BatchField.batchLength)).toBe(original.readInt32BE(BatchField.batchLength));
  });

  it('#17 answers an oversize record set with MESSAGE_TOO_LARGE (see bad-input)', async () => {
    await c.request(ApiKey.CreateTopics, 5, { topics: [{ name: 'tiny', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [{ name: 'max.message.bytes', value: '1024' }] }], timeoutMs: 5000, validateOnly: false });
    const r = await produce('tiny', buildBatch([{ value: Buffer.alloc(4096) }]));
    expect(r.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.MESSAGE_TOO_LARGE);
  });

  it('#18 #19 answers a duplicate idempotent batch with its original offset and a gap with OUT_OF_ORDER_SEQUENCE', async () => {
    const init = await c.request(ApiKey.InitProducerId, 4, { transactionalId: null, transactionTimeoutMs: 60000, producerId: -1n, producerEpoch: -1 });
    expect(init.errorCode).toBe(ErrorCode.NONE);
    const o = { producerId: init.producerId, producerEpoch: init.producerEpoch };
    const a = await produce('idem', buildBatch([{ value: 'a' }], { ...o, baseSequence: 0 }));
    const dup = await produce('idem', buildBatch([{ value: 'a' }], { ...o, baseSequence: 0 }));
    expect(dup.responses[0].partitionResponses[0]).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: a.responses[0].partitionResponses[0].baseOffset });
    const gap = await produce('idem', buildBatch([{ value: 'c' }], { ...o, baseSequence: 7 }));
    expect(gap.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    // KIP-360: an epoch bump resets the sequence.
    const bumped = await c.request(ApiKey.InitProducerId, 4, { transactionalId: null, transactionTimeoutMs: 60000, producerId: init.producerId, producerEpoch: init.producerEpoch });
    expect(bumped).toMatchObject({ errorCode: ErrorCode.NONE, producerId: init.producerId, producerEpoch: init.producerEpoch + 1 });
    const fresh = await produce('idem', buildBatch([{ value: 'd' }], { producerId: init.producerId, producerEpoch: bumped.producerEpoch, baseSequence: 0 }));
    expect(fresh.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.NONE);
  });

  it('#20 returns the whole first batch even when it exceeds the byte limits (KIP-74)', async () => {
    await produce('kip74', buildBatch([{ value: Buffer.alloc(10_000, 7) }]));
    const f = await c.request(ApiKey.Fetch, 11, fetchReq('kip74', { maxBytes: 100, partitionMaxBytes: 100 }));
    const records: Buffer = f.responses[0].partitions[0].records;
    expect(records.length).toBe(records.readInt32BE(BatchField.batchLength) + 12);
    expect(records.length).toBeGreaterThan(10_000);
  });

  it('#21 honours max_wait_ms: an empty fetch waits, then answers with no records and no error', async () => {
    await produce('waiting', buildBatch([{ value: 'x' }]));
    const started = Date.now();
    const f = await c.request(ApiKey.Fetch, 11, fetchReq('waiting', { offset: 1n, maxWaitMs: 400, minBytes: 1 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(f.responses[0].partitions[0]).toMatchObject({ errorCode: ErrorCode.NONE });
    expect(f.responses[0].partitions[0].records.length).toBe(0);
  });

  it('#22 #24 answers preferred_read_replica -1, last_stable_offset = high watermark, no aborted transactions', async () => {
    await produce('lso', buildBatch([{ value: 'x' }]));
    const p = (await c.request(ApiKey.Fetch, 11, fetchReq('lso', { isolationLevel: 1 }))).responses[0].partitions[0];
    expect(p.preferredReadReplica).toBe(-1);
    expect(p.lastStableOffset).toBe(p.highWatermark);
    expect(p.abortedTransactions ?? []).toEqual([]);
  });

  it('#23 declines fetch sessions with session id 0 and rejects unknown session ids', async () => {
    const ok = await c.request(ApiKey.Fetch, 11, { ...fetchReq('lso'), sessionEpoch: 0 });
    expect(ok.sessionId).toBe(0);
    const bad = await c.request(ApiKey.Fetch, 11, fetchReq('lso', { sessionId: 12345 }));
    expect(bad.errorCode).toBe(ErrorCode.FETCH_SESSION_ID_NOT_FOUND);
  });

  it('#25 answers OffsetForLeaderEpoch with an epoch ≥ 0 and an end offset ≥ the consumer position', async () => {
    await produce('ofle', buildBatch([{ value: 'a' }, { value: 'b' }]));
    const r = await c.request(ApiKey.OffsetForLeaderEpoch, 4, { replicaId: -1, topics: [{ topic: 'ofle', partitions: [{ partition: 0, currentLeaderEpoch: 0, leaderEpoch: 0 }] }] });
    const p = r.topics[0].partitions[0];
    expect(p.errorCode).toBe(ErrorCode.NONE);
    expect(p.leaderEpoch).toBeGreaterThanOrEqual(0);
    expect(p.endOffset).toBe(2n);
  });

  it('#26 #29 answers KIP-394 MEMBER_ID_REQUIRED with an id that the retried join accepts; static members skip it', async () => {
    const join = (memberId: string, groupInstanceId: string | null = null) =>
      c.request(ApiKey.JoinGroup, 6, { groupId: 'compat-g', sessionTimeoutMs: 10000, rebalanceTimeoutMs: 10000, memberId, groupInstanceId, protocolType: 'consumer', protocols: [{ name: 'range', metadata: Buffer.alloc(0) }] });
    const first = await join('');
    expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    expect(first.memberId).not.toBe('');
    const second = await join(first.memberId);
    expect(second).toMatchObject({ errorCode: ErrorCode.NONE, memberId: first.memberId, leader: first.memberId });
    const staticJoin = await c.request(ApiKey.JoinGroup, 6, { groupId: 'compat-static', sessionTimeoutMs: 10000, rebalanceTimeoutMs: 10000, memberId: '', groupInstanceId: 'instance-1', protocolType: 'consumer', protocols: [{ name: 'range', metadata: Buffer.alloc(0) }] });
    expect(staticJoin.errorCode).toBe(ErrorCode.NONE);
  });

  it('#28 echoes protocol type and name in JoinGroup v7+ and SyncGroup v5+', async () => {
    const j = await c.request(ApiKey.JoinGroup, 7, { groupId: 'kip559', sessionTimeoutMs: 10000, rebalanceTimeoutMs: 10000, memberId: '', groupInstanceId: 'i', protocolType: 'consumer', protocols: [{ name: 'roundrobin', metadata: Buffer.alloc(0) }], reason: null });
    expect(j).toMatchObject({ protocolType: 'consumer', protocolName: 'roundrobin' });
    const s = await c.request(ApiKey.SyncGroup, 5, { groupId: 'kip559', generationId: j.generationId, memberId: j.memberId, groupInstanceId: 'i', protocolType: 'consumer', protocolName: 'roundrobin', assignments: [{ memberId: j.memberId, assignment: Buffer.from([1]) }] });
    expect(s).toMatchObject({ errorCode: ErrorCode.NONE, protocolType: 'consumer', protocolName: 'roundrobin' });
  });

  it('#27 holds a JoinGroup until the other members rejoin, within the rebalance timeout', async () => {
    const a = await TestClient.connect(skiff.kafkaPort);
    const b = await TestClient.connect(skiff.kafkaPort);
    const join = (cl: TestClient, memberId: string, id: string) =>
      cl.request(ApiKey.JoinGroup, 5, { groupId: 'held', sessionTimeoutMs: 6000, rebalanceTimeoutMs: 30000, memberId, groupInstanceId: id, protocolType: 'consumer', protocols: [{ name: 'range', metadata: Buffer.alloc(0) }] });
    const ja = await join(a, '', 'a');
    await a.request(ApiKey.SyncGroup, 3, { groupId: 'held', generationId: ja.generationId, memberId: ja.memberId, groupInstanceId: 'a', assignments: [] });
    const events: string[] = [];
    const heldB = join(b, '', 'b').then((r) => {
      events.push('b answered');
      return r;
    });
    // A learns of the rebalance from its heartbeat, and only its rejoin completes B's join.
    let hb;
    do hb = await a.request(ApiKey.Heartbeat, 3, { groupId: 'held', generationId: ja.generationId, memberId: ja.memberId, groupInstanceId: 'a' });
    while (hb.errorCode === ErrorCode.NONE);
    expect(hb.errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(events).toEqual([]);
    events.push('a rejoins');
    const ra = await join(a, ja.memberId, 'a');
    const rb = await heldB;
    expect(events).toEqual(['a rejoins', 'b answered']);
    expect(rb.generationId).toBe(ra.generationId);
    expect(rb.generationId).toBe(ja.generationId + 1);
    a.close();
    b.close();
  });

  it('#30 accepts OffsetCommit with generation -1 and an empty member id (manual assignment)', async () => {
    const r = await c.request(ApiKey.OffsetCommit, 8, { groupId: 'manual', generationIdOrMemberEpoch: -1, memberId: '', groupInstanceId: null, topics: [{ name: 'lso', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: '' }] }] });
    expect(r.topics[0].partitions[0].errorCode).toBe(ErrorCode.NONE);
    const f = await c.request(ApiKey.OffsetFetch, 8, { groups: [{ groupId: 'manual', topics: [{ name: 'lso', partitionIndexes: [0] }] }], requireStable: false });
    expect(f.groups[0].topics[0].partitions[0].committedOffset).toBe(1n);
  });

  it('#31 keeps KIP-848 opt-in: no ConsumerGroupHeartbeat, OffsetCommit/OffsetFetch below 9', async () => {
    const v = await versions();
    expect(v.has(ApiKey.ConsumerGroupHeartbeat)).toBe(false);
    expect(v.get(ApiKey.OffsetCommit)![1]).toBeLessThan(9);
    expect(v.get(ApiKey.OffsetFetch)![1]).toBeLessThan(9);
  });

  it('#32 reports throttle_time_ms 0', async () => {
    expect((await metadata([])).throttleTimeMs).toBe(0);
    const p = await produce('lso', buildBatch([{ value: 'x' }]));
    expect(p.throttleTimeMs).toBe(0);
  });
});
