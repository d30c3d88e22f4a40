// Request framing on a client connection: however TCP cuts the byte stream into reads (inside
// the size prefix, inside a frame, several frames in one read), every request is decoded
// whole and answered in order, and a large record set arrives intact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from '../support/embedded.js';
import { TestClient } from '../support/kafka-client.js';
import { buildBatch } from '../support/batches.js';
import { ApiKey, apis } from '../../services/protocol/messages/index.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { Reader, Writer } from '../../services/protocol/primitives.js';

let skiff: Embedded;

beforeAll(async () => {
  skiff = await startEmbedded({});
});
afterAll(async () => {
  await skiff.destroy();
});

const PRODUCE_VERSION = 9;
const METADATA_VERSION = 9;

function encode(apiKey: number, version: number, request: object) {
  const api = apis[apiKey as keyof typeof apis];
  return (w: Writer) => (api.encodeRequest as (w: Writer, v: number, m: unknown) => Writer)(w, version, request);
}

function decode<T>(apiKey: number, version: number, frame: Buffer): T {
  const api = apis[apiKey as keyof typeof apis];
  const r = new Reader(frame, 4);
  if (api.response.isFlexible(version)) r.taggedFields();
  return (api.decodeResponse as (r: Reader, v: number) => T)(r, version);
}

/** Writes `bytes` cut at `cuts` (offsets), each piece handed to the kernel before the next. */
async function writeCut(c: TestClient, bytes: Buffer, cuts: number[]): Promise<void> {
  let from = 0;
  for (const to of [...cuts.filter((x) => x > 0 && x < bytes.length).sort((a, b) => a - b), bytes.length]) {
    if (to <= from) continue;
    await c.writeAndWait(bytes.subarray(from, to));
    await new Promise((r) => setImmediate(r));
    from = to;
  }
}

describe('request framing', () => {
  it('answers requests cut anywhere, inside size prefixes and frames, in order and intact', async () => {
    const topic = 'framing';
    const c = await TestClient.connect(skiff.kafkaPort);
    // Creates the topic.
    await c.request(ApiKey.Metadata, METADATA_VERSION, { topics: [{ name: topic }], allowAutoTopicCreation: true, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });
    const values = Array.from({ length: 2 }, (_, i) => `big-${i}-`.padEnd(200_000, String.fromCharCode(97 + i)));
    for (const [n, cuts] of [
      ['inside the first size prefix', [1, 2, 3]],
      ['inside the second size prefix', (first: number) => [first + 1, first + 3]],
      ['at every 1,000 bytes', (_: number, total: number) => Array.from({ length: Math.floor(total / 1000) }, (_, i) => (i + 1) * 1000)],
      ['at the frame boundary', (first: number) => [first - 1, first, first + 1]],
    ] as const) {
      const produce = c.frameRaw(ApiKey.Produce, PRODUCE_VERSION, encode(ApiKey.Produce, PRODUCE_VERSION, {
        transactionalId: null, acks: -1, timeoutMs: 5000,
        topicData: [{ name: topic, partitionData: [{ index: 0, records: buildBatch([{ value: values[0] }, { value: values[1] }]) }] }],
      }));
      const metadata = c.frameRaw(ApiKey.Metadata, METADATA_VERSION, encode(ApiKey.Metadata, METADATA_VERSION, { topics: [{ name: topic }], allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false }));
      const bytes = Buffer.concat([produce.frame, metadata.frame]);
      const at = typeof cuts === 'function' ? cuts(produce.frame.length, bytes.length) : cuts;
      await writeCut(c, bytes, [...at]);
      const p = decode<{ responses: { partitionResponses: { errorCode: number }[] }[] }>(ApiKey.Produce, PRODUCE_VERSION, await produce.response);
      expect(p.responses[0].partitionResponses[0].errorCode, n).toBe(ErrorCode.NONE);
      const m = decode<{ topics: { name: string; errorCode: number }[] }>(ApiKey.Metadata, METADATA_VERSION, await metadata.response);
      expect(m.topics[0], n).toMatchObject({ name: topic, errorCode: ErrorCode.NONE });
    }
    // Every record set came through byte for byte: fetch them back.
    const f = await c.request(ApiKey.Fetch, 11, {
      replicaId: -1, maxWaitMs: 0, minBytes: 0, maxBytes: 8 << 20, isolationLevel: 1, sessionId: 0, sessionEpoch: -1,
      topics: [{ topic, partitions: [{ partition: 0, fetchOffset: 0n, partitionMaxBytes: 8 << 20, currentLeaderEpoch: -1, logStartOffset: -1n }] }],
      forgottenTopicsData: [], rackId: '',
    });
    const records: Buffer = f.responses[0].partitions[0].records;
    expect(f.responses[0].partitions[0].highWatermark).toBe(8n);
    for (const v of values) expect(records.includes(Buffer.from(v))).toBe(true);
    c.close();
  });
});
