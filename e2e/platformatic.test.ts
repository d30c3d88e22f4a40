// @platformatic/kafka 1.x against a real `skiff dev`: Admin topic management, the Producer
// with compression and headers, and a group Consumer read through its stream API.

import {
  Admin,
  Consumer,
  type Message,
  type MessagesStream,
  ProduceAcks,
  Producer,
  stringDeserializers,
  stringSerializers,
} from '@platformatic/kafka';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { until } from './support/procs.js';
import { useSkiff } from './support/skiff.js';

const server = useSkiff();

// Closed after each test, whether it passed or not.
const opened: Array<() => Promise<void>> = [];
async function closeAll(): Promise<void> {
  await Promise.allSettled(opened.splice(0).reverse().map((close) => close()));
}
afterEach(closeAll);
afterAll(closeAll);

/** close(true) also ends open streams; its promise form is typed as void, hence the callback. */
function forceClose(client: Producer<string, string, string, string> | Consumer<string, string, string, string>): Promise<void> {
  return new Promise((resolve, reject) => client.close(true, (err) => (err ? reject(err) : resolve())));
}

function admin(): Admin {
  const a = new Admin({ clientId: 'e2e-plt-admin', bootstrapBrokers: [server().bootstrap], retries: 3, retryDelay: 100 });
  opened.push(() => a.close());
  return a;
}

function producer(): Producer<string, string, string, string> {
  const p = new Producer({
    clientId: 'e2e-plt-producer',
    bootstrapBrokers: [server().bootstrap],
    serializers: stringSerializers,
    autocreateTopics: false,
    retries: 3,
    retryDelay: 100,
  });
  opened.push(() => forceClose(p));
  return p;
}

function consumer(groupId: string): Consumer<string, string, string, string> {
  const c = new Consumer({
    clientId: `e2e-plt-consumer-${groupId}`,
    groupId,
    bootstrapBrokers: [server().bootstrap],
    deserializers: stringDeserializers,
    maxWaitTime: 500,
    sessionTimeout: 10_000,
    rebalanceTimeout: 15_000,
    heartbeatInterval: 500,
    retries: 3,
    retryDelay: 100,
  });
  opened.push(() => forceClose(c));
  return c;
}

/** Reads `count` messages from the stream, failing after timeoutMs. */
async function take<T>(stream: MessagesStream<string, string, string, string>, count: number, timeoutMs: number, map: (m: Message<string, string, string, string>) => T): Promise<T[]> {
  const out: T[] = [];
  const timer = setTimeout(() => stream.destroy(new Error(`only ${out.length} of ${count} messages after ${timeoutMs} ms`)), timeoutMs);
  try {
    for await (const m of stream) {
      out.push(map(m));
      if (out.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

describe('@platformatic/kafka', () => {
  it('creates, lists and deletes topics with the Admin', async () => {
    const a = admin();
    const topic = 'plt-admin';
    const created = await a.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ name: topic, partitions: 3 });
    expect(await a.listTopics()).toContain(topic);

    const md = await a.metadata({ topics: [topic], forceUpdate: true });
    expect(md.topics.get(topic)?.partitionsCount).toBe(3);
    expect([...md.brokers.values()].map((b) => `${b.host}:${b.port}`)).toContain(`localhost:${server().kafkaPort}`);

    await expect(a.createTopics({ topics: [topic], partitions: 3, replicas: 1 })).rejects.toThrow();

    await a.deleteTopics({ topics: [topic] });
    expect(await a.listTopics()).not.toContain(topic);
  });

  it('produces lz4 messages with headers that a group consumer streams back, then commits the end offsets', async () => {
    const topic = 'plt-stream';
    const groupId = 'plt-group';
    const n = 150;
    await admin().createTopics({ topics: [topic], partitions: 3, replicas: 1 });

    const p = producer();
    const sent = Array.from({ length: n }, (_, i) => ({ key: `k${i % 11}`, value: `plt value ${i}`, headers: { idx: String(i), kind: 'e2e' } }));
    for (let i = 0; i < n; i += 50) {
      const res = await p.send({
        acks: ProduceAcks.ALL,
        compression: 'lz4', // its zstd needs node:zlib zstd (Node 22.15+), not on Node 20
        messages: sent.slice(i, i + 50).map((m) => ({ topic, key: m.key, value: m.value, headers: m.headers })),
      });
      expect(res.offsets?.length).toBeGreaterThan(0);
    }

    const c = consumer(groupId);
    const stream = await c.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: true });
    const got = await take(stream, n, 30_000, (m) => ({
      key: m.key,
      value: m.value,
      headers: Object.fromEntries(m.headers),
      partition: m.partition,
      offset: m.offset,
    }));
    expect(got.map(({ key, value, headers }) => ({ key, value, headers })).sort((x, y) => Number(x.headers.idx) - Number(y.headers.idx))).toEqual(sent);
    for (let part = 0; part < 3; part++) {
      const offsets = got.filter((g) => g.partition === part).map((g) => g.offset);
      expect(offsets).toEqual(offsets.map((_, i) => BigInt(i)));
    }
    await stream.close();

    const ends = await c.listOffsets({ topics: [topic] });
    expect(ends.get(topic)!.reduce((s, o) => s + o, 0n)).toBe(BigInt(n));
    // The client sends its last autocommit after close() resolved: wait for it to land.
    const a = admin();
    const committedNow = async () => {
      const [g] = await a.listConsumerGroupOffsets({ groups: [groupId] });
      const t = g.topics.find((x) => x.name === topic);
      return (t?.partitions ?? []).map((x) => [x.partitionIndex, x.committedOffset]).sort();
    };
    const expected = ends.get(topic)!.map((o, i) => [i, o]);
    const same = (x: unknown, y: unknown) => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) === JSON.stringify(y, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
    await until('the group to commit the end offsets', async () => same(await committedNow(), expected), 10_000, 100).catch(() => {});
    expect(await committedNow()).toEqual(expected);
  });

  it('resumes a group after its committed offsets with a new consumer', async () => {
    const topic = 'plt-resume';
    const groupId = 'plt-resume-group';
    await admin().createTopics({ topics: [topic], partitions: 1, replicas: 1 });
    const p = producer();
    await p.send({ acks: ProduceAcks.ALL, messages: Array.from({ length: 10 }, (_, i) => ({ topic, value: `r${i}` })) });

    const first = consumer(groupId);
    const s1 = await first.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false });
    const firstSix = await take(s1, 6, 30_000, (m) => m);
    await firstSix[5].commit();
    await s1.close();
    await first.close();

    const second = consumer(groupId);
    const s2 = await second.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false });
    const rest = await take(s2, 4, 30_000, (m) => [m.offset, m.value]);
    expect(rest).toEqual([6n, 7n, 8n, 9n].map((o) => [o, `r${o}`]));
    await s2.close();
  });
});
