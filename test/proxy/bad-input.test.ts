import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from '../support/embedded.js';
import { TestClient } from '../support/kafka-client.js';
import { buildBatch } from '../support/batches.js';
import { ApiKey } from '../../services/protocol/messages/index.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { Reader } from '../../services/protocol/primitives.js';
import { decodeApiVersionsResponse } from '../../services/protocol/messages/api-versions-response.js';

let skiff: Embedded;

beforeAll(async () => {
  skiff = await startEmbedded({ maxRequestBytes: 1024 * 1024 });
});
afterAll(async () => {
  await skiff.destroy();
});

async function produce(c: TestClient, topic: string, partition: number, records: Buffer) {
  return c.request(ApiKey.Produce, 9, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: partition, records }] }] });
}

async function fetchAll(c: TestClient, topic: string, partition: number) {
  const r = await c.request(ApiKey.Fetch, 11, {
    replicaId: -1, maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20, isolationLevel: 1, sessionId: 0, sessionEpoch: -1,
    topics: [{ topic, partitions: [{ partition, fetchOffset: 0n, partitionMaxBytes: 1 << 20, currentLeaderEpoch: -1, logStartOffset: -1n }] }],
    forgottenTopicsData: [], rackId: '',
  });
  return r.responses[0].partitions[0];
}

/** A fresh connection still gets served: the bad input hurt nobody else. */
async function stillServes(): Promise<void> {
  const c = await TestClient.connect(skiff.kafkaPort);
  const r = await c.request(ApiKey.Metadata, 9, { topics: null, allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });
  expect(r.brokers.length).toBe(1);
  c.close();
}

function logged(fragment: string): boolean {
  return skiff.logs.some((l) => l.includes(fragment));
}

describe('bad input', () => {
  it('closes the connection on a frame larger than socket.request.max.bytes, and logs it', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const head = Buffer.alloc(4);
    head.writeInt32BE(2 * 1024 * 1024, 0);
    c.writeRaw(Buffer.concat([head, Buffer.alloc(64)]));
    await c.closed;
    expect(logged('socket.request.max.bytes')).toBe(true);
    await stillServes();
  });

  it('closes the connection on a truncated request body', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    // A Metadata v1 request whose topic array claims 5 names but the frame ends.
    const body = Buffer.alloc(4 + 2 + 2 + 4 + 2 + 4);
    let at = body.writeInt32BE(body.length - 4, 0);
    at = body.writeInt16BE(ApiKey.Metadata, at);
    at = body.writeInt16BE(1, at);
    at = body.writeInt32BE(7, at);
    at = body.writeInt16BE(-1, at);
    body.writeInt32BE(5, at);
    c.writeRaw(body);
    await c.closed;
    expect(logged('malformed Metadata v1 request')).toBe(true);
    await stillServes();
  });

  it('closes the connection on an unknown API key', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const frame = Buffer.alloc(4 + 10);
    frame.writeInt32BE(10, 0);
    frame.writeInt16BE(999, 4);
    frame.writeInt16BE(0, 6);
    frame.writeInt32BE(1, 8);
    frame.writeInt16BE(-1, 12);
    c.writeRaw(frame);
    await c.closed;
    expect(logged('unknown or unsupported API key')).toBe(true);
    await stillServes();
  });

  it('closes the connection on an unsupported version of an API other than ApiVersions', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const frame = Buffer.alloc(4 + 10);
    frame.writeInt32BE(10, 0);
    frame.writeInt16BE(ApiKey.Metadata, 4);
    frame.writeInt16BE(99, 6);
    frame.writeInt32BE(1, 8);
    frame.writeInt16BE(-1, 12);
    c.writeRaw(frame);
    await c.closed;
    expect(logged('Metadata v99 is not supported')).toBe(true);
    await stillServes();
  });

  it('answers ApiVersions of an unknown version with a v0 UNSUPPORTED_VERSION body and keeps the connection', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const frame = Buffer.alloc(4 + 10);
    frame.writeInt32BE(10, 0);
    frame.writeInt16BE(ApiKey.ApiVersions, 4);
    frame.writeInt16BE(77, 6);
    frame.writeInt32BE(42, 8);
    frame.writeInt16BE(-1, 12);
    const got = new Promise<Buffer>((resolve) => c.socket.once('data', resolve));
    c.writeRaw(frame);
    const data = await got;
    expect(data.readInt32BE(4)).toBe(42);
    const res = decodeApiVersionsResponse(new Reader(data, 8), 0);
    expect(res.errorCode).toBe(ErrorCode.UNSUPPORTED_VERSION);
    expect(res.apiKeys.find((k) => k.apiKey === ApiKey.ApiVersions)).toEqual({ apiKey: ApiKey.ApiVersions, minVersion: 0, maxVersion: 4 });
    // Same connection, now a version we support.
    const ok = await c.request(ApiKey.ApiVersions, 3, { clientSoftwareName: 'skiff-test', clientSoftwareVersion: '1' });
    expect(ok.errorCode).toBe(ErrorCode.NONE);
    c.close();
  });

  it('refuses a batch with a wrong CRC with CORRUPT_MESSAGE and stores nothing of it', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const good = await produce(c, 'crc-topic', 0, buildBatch([{ value: 'good' }]));
    expect(good.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.NONE);
    const bad = await produce(c, 'crc-topic', 0, buildBatch([{ value: 'evil' }], { corruptCrc: true }));
    expect(bad.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.CORRUPT_MESSAGE);
    const after = await produce(c, 'crc-topic', 0, buildBatch([{ value: 'good again' }]));
    expect(after.responses[0].partitionResponses[0].baseOffset).toBe(1n);
    const f = await fetchAll(c, 'crc-topic', 0);
    expect(f.highWatermark).toBe(2n);
    expect(f.records.includes(Buffer.from('evil'))).toBe(false);
    expect(f.records.includes(Buffer.from('good again'))).toBe(true);
    expect(logged('record batch CRC mismatch')).toBe(true);
    c.close();
  });

  it('refuses an invalid topic name with INVALID_TOPIC_EXCEPTION', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const r = await produce(c, 'bad/name', 0, buildBatch([{ value: 'x' }]));
    expect(r.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    const m = await c.request(ApiKey.Metadata, 9, { topics: [{ name: 'bad/name' }], allowAutoTopicCreation: true, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });
    expect(m.topics[0].errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    c.close();
    await stillServes();
  });

  it('refuses a produce to a partition that does not exist with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    await produce(c, 'one-partition', 0, buildBatch([{ value: 'x' }]));
    const r = await produce(c, 'one-partition', 7, buildBatch([{ value: 'x' }]));
    expect(r.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    c.close();
    await stillServes();
  });

  it('answers an oversize record set with MESSAGE_TOO_LARGE instead of closing', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    await c.request(ApiKey.CreateTopics, 5, { topics: [{ name: 'small-messages', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [{ name: 'max.message.bytes', value: '2000' }] }], timeoutMs: 5000, validateOnly: false });
    const r = await produce(c, 'small-messages', 0, buildBatch([{ value: Buffer.alloc(5000, 1) }]));
    expect(r.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    const ok = await produce(c, 'small-messages', 0, buildBatch([{ value: 'fits' }]));
    expect(ok.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.NONE);
    c.close();
  });

  it('refuses acks other than -1, 0 and 1 with INVALID_REQUIRED_ACKS', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const r = await c.request(ApiKey.Produce, 9, { transactionalId: null, acks: 5, timeoutMs: 1000, topicData: [{ name: 'acks-topic', partitionData: [{ index: 0, records: buildBatch([{ value: 'x' }]) }] }] });
    expect(r.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.INVALID_REQUIRED_ACKS);
    c.close();
  });
});
