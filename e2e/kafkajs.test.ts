// kafkajs 2.2.4 against a real `skiff dev`: gzip producer with headers, a two-member consumer
// group that receives each message exactly once, and the admin calls applications use.

import kafkajs, { type Admin, type Consumer, type IHeaders, type KafkaMessage, type Producer } from 'kafkajs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { until } from './support/procs.js';
import { useSkiff } from './support/skiff.js';

const { Kafka, CompressionTypes, logLevel } = kafkajs;
const server = useSkiff();

// Every client a test opens is disconnected after it, whether the test passed or not.
const opened: Array<{ disconnect(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((c) => c.disconnect()));
});
afterAll(async () => {
  await Promise.allSettled(opened.splice(0).map((c) => c.disconnect()));
});

function kafka(clientId: string) {
  return new Kafka({ clientId, brokers: [server().bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100 } });
}

async function connectedAdmin(): Promise<Admin> {
  const admin = kafka('e2e-admin').admin();
  opened.push(admin);
  await admin.connect();
  return admin;
}

async function connectedProducer(): Promise<Producer> {
  const producer = kafka('e2e-producer').producer({ allowAutoTopicCreation: false });
  opened.push(producer);
  await producer.connect();
  return producer;
}

function headersAsStrings(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) out[k] = Array.isArray(v) ? v.map(String).join(',') : String(v);
  return out;
}

describe('kafkajs', () => {
  it('creates, lists and deletes topics, and reports their offsets', async () => {
    const admin = await connectedAdmin();
    const topic = 'kjs-admin';
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })).toBe(true);
    // kafkajs answers false when every topic already existed.
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })).toBe(false);
    expect(await admin.listTopics()).toContain(topic);
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(md.topics[0].partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2]);

    const producer = await connectedProducer();
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ value: `p1-${i}`, partition: 1 })) });
    const offsets = await admin.fetchTopicOffsets(topic);
    expect(offsets.map((o) => [o.partition, o.low, o.high]).sort()).toEqual([
      [0, '0', '0'],
      [1, '0', '5'],
      [2, '0', '0'],
    ]);

    await admin.deleteTopics({ topics: [topic] });
    expect(await admin.listTopics()).not.toContain(topic);
  });

  it('finds offsets by timestamp', async () => {
    const admin = await connectedAdmin();
    const topic = 'kjs-times';
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const producer = await connectedProducer();
    const base = Date.now() - 600_000;
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 5 }, (_, i) => ({ value: `t${i}`, timestamp: String(base + i * 1000) })),
    });

    expect(await admin.fetchTopicOffsetsByTimestamp(topic, base + 2500)).toEqual([{ partition: 0, offset: '3' }]);
    expect(await admin.fetchTopicOffsetsByTimestamp(topic, base)).toEqual([{ partition: 0, offset: '0' }]);
    // Past the last timestamp: the end of the log, as Kafka answers (-1 mapped to the high watermark by kafkajs).
    expect(await admin.fetchTopicOffsetsByTimestamp(topic, base + 60_000)).toEqual([{ partition: 0, offset: '5' }]);
  });

  it('delivers gzip messages with headers exactly once across a two-member group and commits the end offsets', async () => {
    const admin = await connectedAdmin();
    const topic = 'kjs-group';
    const groupId = 'kjs-group-1';
    const partitions = 4;
    const n = 200;
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });

    type Received = { consumer: string; partition: number; message: KafkaMessage };
    const received: Received[] = [];
    const assignments = new Map<string, { generation: number; partitions: number[] }>();
    let generation = 0;
    const consumers: Consumer[] = [];
    for (const name of ['a', 'b']) {
      // A short max wait: kafkajs heartbeats (and so learns of a rebalance) between fetches.
      const c = kafka(`e2e-consumer-${name}`).consumer({
        groupId,
        heartbeatInterval: 300,
        sessionTimeout: 10_000,
        rebalanceTimeout: 20_000,
        maxWaitTimeInMs: 500,
      });
      opened.push(c);
      c.on(c.events.GROUP_JOIN, (e) => {
        assignments.set(name, { generation: ++generation, partitions: [...(e.payload.memberAssignment[topic] ?? [])].sort() });
      });
      await c.connect();
      await c.subscribe({ topic, fromBeginning: true });
      await c.run({
        eachMessage: async ({ partition, message }) => {
          received.push({ consumer: name, partition, message });
        },
      });
      consumers.push(c);
    }

    // Produce only once the group is stable, so that no rebalance can replay anything.
    await until(
      'both members to share all partitions',
      () => {
        const a = assignments.get('a')?.partitions ?? [];
        const b = assignments.get('b')?.partitions ?? [];
        return a.length > 0 && b.length > 0 && new Set([...a, ...b]).size === partitions && a.length + b.length === partitions;
      },
      30_000,
      50,
    );

    const producer = await connectedProducer();
    const sent = Array.from({ length: n }, (_, i) => ({
      key: `key-${i % 13}`,
      value: `value ${i} ${'z'.repeat(i % 50)}`,
      headers: { 'trace-id': `trace-${i}`, source: 'e2e', 'ünïcode': 'ok ✓' },
    }));
    for (let i = 0; i < n; i += 50) {
      await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: sent.slice(i, i + 50) });
    }

    const ends = await admin.fetchTopicOffsets(topic);
    expect(ends.reduce((s, o) => s + Number(o.high), 0)).toBe(n);
    await until(
      'the group to commit the end offset of every partition',
      async () => {
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        return committed.partitions.every((p) => p.offset === ends.find((e) => e.partition === p.partition)!.high);
      },
      30_000,
      200,
    );

    expect(received).toHaveLength(n);
    const byValue = new Map(received.map((r) => [r.message.value!.toString(), r]));
    expect(byValue.size).toBe(n);
    for (const s of sent) {
      const r = byValue.get(s.value);
      expect(r, s.value).toBeDefined();
      expect(r!.message.key!.toString()).toBe(s.key);
      expect(headersAsStrings(r!.message.headers)).toEqual(s.headers);
    }
    // Both members took part, each only in its own partitions.
    for (const name of ['a', 'b']) {
      const mine = received.filter((r) => r.consumer === name);
      expect(mine.length).toBeGreaterThan(0);
      for (const r of mine) expect(assignments.get(name)!.partitions).toContain(r.partition);
    }
    // Per partition, offsets arrive in order without gaps.
    for (let p = 0; p < partitions; p++) {
      const offsets = received.filter((r) => r.partition === p).map((r) => Number(r.message.offset));
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
  });
});
