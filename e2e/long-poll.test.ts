// Fetch long polling against a real `skiff dev`, over a bare socket built with the project's
// codec so that max_wait_ms and min_bytes are exactly what the test says: a parked Fetch is
// answered when data arrives, an empty one when max_wait_ms runs out, and pipelined requests
// behind a parked Fetch are answered after it (KAFKA-COMPAT.md items 1 and 21).

import kafkajs, { type Admin, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useSkiff } from './support/skiff.js';
import { decodeBatches, fetchRequest, WireClient } from './support/wire.js';

const { Kafka, logLevel } = kafkajs;
const server = useSkiff();

let admin: Admin;
let producer: Producer;
const wires: WireClient[] = [];

beforeAll(async () => {
  const kafka = new Kafka({ clientId: 'e2e-long-poll', brokers: [server().bootstrap], logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  producer = kafka.producer();
  await admin.connect();
  await producer.connect();
});

afterAll(async () => {
  for (const w of wires) w.close();
  await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
});

async function wire(): Promise<WireClient> {
  const w = await WireClient.connect(server().kafkaPort);
  wires.push(w);
  return w;
}

async function metric(name: string): Promise<number> {
  const res = await fetch(`http://localhost:${server().httpPort}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not found`);
  return Number(line.split(' ')[1]);
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Fetch long polling', () => {
  for (const version of [4, 11, 12]) {
    it(`answers a Fetch v${version} parked with max_wait_ms 5000 as soon as a message is produced`, async () => {
      const topic = `long-poll-v${version}`;
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
      const w = await wire();

      const sentAt = performance.now();
      let answered = false;
      const pending = w.request(1, version, fetchRequest(topic, 0, 0n, { maxWaitMs: 5000, minBytes: 1 })).finally(() => {
        answered = true;
      });

      // The message is produced 200 ms after the Fetch went out.
      await delay(200);
      expect(answered, 'the Fetch was answered before any data existed').toBe(false);
      expect(await metric('skiff_proxy_parked_fetches')).toBeGreaterThanOrEqual(1);
      const value = `hello long poll v${version} ${Date.now()}`;
      const producedAt = performance.now();
      await producer.send({ topic, acks: 1, messages: [{ key: 'lp', value, headers: { h: 'v' } }] });

      const res = await pending;
      const answerMs = res.receivedAt - producedAt;
      expect(answerMs, `Fetch answered ${answerMs.toFixed(0)} ms after the produce`).toBeLessThan(3000);
      expect(res.receivedAt - sentAt).toBeLessThan(5000);

      expect(res.body.errorCode ?? 0).toBe(0);
      const part = res.body.responses[0].partitions[0];
      expect(part.errorCode).toBe(0);
      expect(part.highWatermark).toBe(1n);
      const records = decodeBatches(part.records).flatMap((b) => b.records ?? []);
      expect(records).toHaveLength(1);
      expect(records[0].offset).toBe(0n);
      expect(records[0].key?.toString()).toBe('lp');
      expect(records[0].value?.toString()).toBe(value);
      expect(records[0].headers.map(([k, v]) => [k, v?.toString()])).toEqual([['h', 'v']]);
    });
  }

  it('answers a Fetch with no data after max_wait_ms, with no error and no records', async () => {
    const topic = 'long-poll-empty';
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await producer.send({ topic, acks: -1, messages: [{ value: 'only' }] });
    const w = await wire();

    const sentAt = performance.now();
    const res = await w.request(1, 11, fetchRequest(topic, 0, 1n, { maxWaitMs: 1000, minBytes: 1 }));
    const elapsed = res.receivedAt - sentAt;
    expect(elapsed, `answered after ${elapsed.toFixed(0)} ms`).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(3000);
    const part = res.body.responses[0].partitions[0];
    expect(part.errorCode).toBe(0);
    expect(part.highWatermark).toBe(1n);
    expect(part.lastStableOffset).toBe(1n);
    expect(part.preferredReadReplica).toBe(-1);
    expect(decodeBatches(part.records)).toEqual([]);
  });

  it('answers requests pipelined behind a parked Fetch in request order', async () => {
    const topic = 'long-poll-order';
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const w = await wire();

    const fetchP = w.request(1, 11, fetchRequest(topic, 0, 0n, { maxWaitMs: 800, minBytes: 1 }));
    const versionsP = w.request(18, 3, { clientSoftwareName: 'skiff-e2e', clientSoftwareVersion: '1.0' });
    const metadataP = w.request(3, 9, { topics: [{ name: topic, topicId: '00000000-0000-0000-0000-000000000000' }], allowAutoTopicCreation: false, includeTopicAuthorizedOperations: false });
    const [f, v, m] = await Promise.all([fetchP, versionsP, metadataP]);

    expect([f.arrival, v.arrival, m.arrival]).toEqual([0, 1, 2]);
    expect(v.body.errorCode).toBe(0);
    expect(v.body.apiKeys.find((k) => k.apiKey === 1)?.maxVersion).toBeGreaterThanOrEqual(12);
    expect(m.body.topics[0].errorCode).toBe(0);
  });
});
