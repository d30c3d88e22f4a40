// A proxy's connection to a broker (cluster mode), against a running server: it announces
// itself so that answers come as they are ready, and it splits responses of any size that
// arrive in many reads, or several in one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from '../support/embedded.js';
import { buildBatch } from '../support/batches.js';
import { ApiKey } from '../../services/protocol/messages/index.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { BatchField } from '../../services/protocol/record-batch.js';
import { BrokerConnection } from '../../services/proxy/broker-connection.js';
import type { FetchResponse } from '../../services/protocol/messages/fetch-response.js';
import type { ProduceResponse } from '../../services/protocol/messages/produce-response.js';

let skiff: Embedded;
let conn: BrokerConnection;
beforeAll(async () => {
  skiff = await startEmbedded();
  conn = new BrokerConnection('127.0.0.1', skiff.kafkaPort, 'skiff-proxy-test');
});
afterAll(async () => {
  conn.close();
  await skiff.destroy();
});

const produce = (topic: string, records: Buffer) =>
  conn.request<ProduceResponse>(ApiKey.Produce, 9, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: 0, records }] }] });
const fetch = (topic: string, offset: bigint, maxWaitMs = 0, minBytes = 0) =>
  conn.request<FetchResponse>(ApiKey.Fetch, 11, {
    replicaId: -1, maxWaitMs, minBytes, maxBytes: 64 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, forgottenTopicsData: [], rackId: '',
    topics: [{ topic, partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: 64 << 20, currentLeaderEpoch: -1, logStartOffset: -1n }] }],
  });
const metadata = (topic: string) =>
  conn.request(ApiKey.Metadata, 9, { topics: [{ name: topic }], allowAutoTopicCreation: true, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });

describe('BrokerConnection', () => {
  it('gets a quick answer before the parked fetch sent ahead of it on the same connection', async () => {
    const first = await produce('hol', buildBatch([{ value: 'x' }]));
    expect(first.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.NONE);
    const order: string[] = [];
    // Parked at the end of the log until its wait runs out.
    const parked = fetch('hol', 1n, 400, 1).then(() => order.push('fetch'));
    const quick = metadata('hol').then(() => order.push('metadata'));
    await Promise.all([parked, quick]);
    expect(order).toEqual(['metadata', 'fetch']);
  });

  it('reads back a 900 kB batch and small answers pipelined with it, byte for byte', async () => {
    const big = buildBatch([{ value: Buffer.alloc(900_000, 7) }]);
    const p = await produce('big', big);
    expect(p.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.NONE);
    const [f, m1, m2] = await Promise.all([fetch('big', 0n), metadata('big'), metadata('big')]);
    const records = f.responses[0].partitions[0].records as Buffer;
    expect(records.length).toBe(big.length);
    // The broker sets the base offset and leader epoch; from the CRC on, the batch is as sent.
    expect(records.subarray(BatchField.crc).equals(big.subarray(BatchField.crc))).toBe(true);
    expect([m1, m2].map((m) => (m as { topics: { name: string }[] }).topics[0].name)).toEqual(['big', 'big']);
  });
});
