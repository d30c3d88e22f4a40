// Durability across restarts of a real `skiff dev` on the same data directory: messages
// acknowledged with acks=all and committed group offsets survive a clean SIGTERM shutdown
// and a SIGKILL, and a group member resumes right after its last committed offset.

import { readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import kafkajs, { type Admin, type Consumer, type KafkaMessage, type Producer } from 'kafkajs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { jsonLines, kcat, killAllProcs } from './support/procs.js';
import { type PartitionState, useSkiff } from './support/skiff.js';

const { Kafka, CompressionTypes, logLevel } = kafkajs;
const server = useSkiff();

const opened: Array<{ disconnect(): Promise<void> }> = [];
async function disconnectAll(): Promise<void> {
  await Promise.allSettled(opened.splice(0).map((c) => c.disconnect()));
}
afterEach(disconnectAll);
afterAll(async () => {
  await disconnectAll();
  killAllProcs();
});

// Clients are made per server process: the port changes on every restart.
function kafka() {
  return new Kafka({ clientId: 'e2e-restart', brokers: [server().bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100 } });
}
async function connect<T extends Admin | Producer | Consumer>(client: T): Promise<T> {
  opened.push(client);
  await client.connect();
  return client;
}

type Row = { partition: number; offset: number; key: string | null; payload: string | null };

async function readAll(topic: string): Promise<Row[]> {
  const r = await kcat(server().bootstrap, ['-C', '-t', topic, '-e', '-o', 'beginning', '-J', '-q'], { timeoutMs: 30_000 });
  return jsonLines<Row>(r.stdout)
    .map(({ partition, offset, key, payload }) => ({ partition, offset, key, payload }))
    .sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** Runs a group member until it has seen `count` messages, returns them and leaves the group. */
async function consumeInGroup(groupId: string, topic: string, count: number, onAll?: (c: Consumer) => Promise<void>): Promise<Array<{ partition: number; message: KafkaMessage }>> {
  const consumer = await connect(kafka().consumer({ groupId, heartbeatInterval: 300, maxWaitTimeInMs: 500 }));
  const got: Array<{ partition: number; message: KafkaMessage }> = [];
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} messages in group ${groupId} after 30 s`)), 30_000);
    consumer.on(consumer.events.CRASH, (e) => reject(new Error(`consumer crashed: ${e.payload.error.message}`)));
    consumer
      .subscribe({ topic, fromBeginning: true })
      .then(() =>
        consumer.run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            got.push({ partition, message });
            if (got.length === count) resolve();
          },
        }),
      )
      .catch(reject);
  });
  try {
    await done;
  } finally {
    clearTimeout(timer);
  }
  if (onAll) await onAll(consumer);
  await consumer.disconnect();
  return got;
}

async function committedOffsets(groupId: string, topic: string): Promise<Record<number, string>> {
  const admin = await connect(kafka().admin());
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
  await admin.disconnect();
  return Object.fromEntries(t.partitions.map((p) => [p.partition, p.offset]));
}

describe('restart on the same data directory', () => {
  it('keeps acknowledged messages and committed group offsets across a SIGTERM restart', async () => {
    const topic = 'restart-clean';
    const groupId = 'restart-clean-group';
    const admin = await connect(kafka().admin());
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    const producer = await connect(kafka().producer());
    for (const [partition, n, compression] of [[0, 30, CompressionTypes.GZIP], [1, 20, CompressionTypes.None]] as const) {
      await producer.send({
        topic,
        acks: -1,
        compression,
        messages: Array.from({ length: n }, (_, i) => ({ partition, key: `p${partition}`, value: `p${partition}-m${i}` })),
      });
    }

    // The group has read everything; it commits 12 of partition 0 and all of partition 1.
    await consumeInGroup(groupId, topic, 50, (c) =>
      c.commitOffsets([
        { topic, partition: 0, offset: '12' },
        { topic, partition: 1, offset: '20' },
      ]),
    );
    expect(await committedOffsets(groupId, topic)).toEqual({ 0: '12', 1: '20' });
    const before = await readAll(topic);
    expect(before).toHaveLength(50);
    await disconnectAll();

    await server().stop('SIGTERM');
    expect(server().lastExit, server().logs().slice(-3000)).toEqual({ code: 0, signal: null });
    await server().restart();

    expect(await readAll(topic)).toEqual(before);
    const states = await server().http<PartitionState[]>('/v1/partitions');
    expect(states.filter((s) => s.topic === topic).map((s) => [s.partition, s.highWatermark, s.state]).sort()).toEqual([
      [0, 30, 'Online'],
      [1, 20, 'Online'],
    ]);
    expect(await committedOffsets(groupId, topic)).toEqual({ 0: '12', 1: '20' });

    // New messages continue the offsets, and the group resumes right after its commits.
    const producer2 = await connect(kafka().producer());
    await producer2.send({ topic, acks: -1, messages: [{ partition: 1, value: 'p1-after-restart' }] });
    const resumed = await consumeInGroup(groupId, topic, 19);
    const firstPerPartition = (p: number) => resumed.filter((r) => r.partition === p).map((r) => [r.message.offset, r.message.value!.toString()]);
    expect(firstPerPartition(0)).toEqual(Array.from({ length: 18 }, (_, i) => [String(12 + i), `p0-m${12 + i}`]));
    expect(firstPerPartition(1)).toEqual([['20', 'p1-after-restart']]);
  });

  it('keeps messages acknowledged with acks=all and committed offsets across a SIGKILL', async () => {
    const topic = 'restart-kill9';
    const groupId = 'restart-kill9-group';
    const input = Array.from({ length: 40 }, (_, i) => `k${i % 4}:kill9 message ${i}`).join('\n') + '\n';
    await kcat(server().bootstrap, ['-P', '-t', topic, '-p', '0', '-K:', '-X', 'acks=all', '-z', 'gzip'], { input });
    await consumeInGroup(groupId, topic, 40, (c) => c.commitOffsets([{ topic, partition: 0, offset: '25' }]));
    const before = await readAll(topic);
    expect(before.map((r) => r.payload)).toEqual(Array.from({ length: 40 }, (_, i) => `kill9 message ${i}`));
    await disconnectAll();

    await server().kill9();
    expect(server().lastExit?.signal).toBe('SIGKILL');
    await server().restart();

    expect(await readAll(topic)).toEqual(before);
    expect(await committedOffsets(groupId, topic)).toEqual({ 0: '25' });
    // Offsets are not reused after the crash.
    const r = await kcat(server().bootstrap, ['-P', '-t', topic, '-p', '0', '-X', 'acks=all'], { input: 'after crash\n' });
    expect(r.code).toBe(0);
    const after = await readAll(topic);
    expect(after.at(-1)).toEqual({ partition: 0, offset: 40, key: null, payload: 'after crash' });
  });
});

// `skiff` (bin/skiff) is a shell launcher that execs Node with Skiff's heap flags: the pid the
// caller holds must be Node itself, or SIGTERM and SIGKILL above would hit the shell instead.
describe('the skiff command', () => {
  it('is one Node process running with the heap flags, and SIGTERM stops it cleanly', async () => {
    const pid = server().pid!;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(path.basename(readlinkSync(`/proc/${pid}/exe`))).toMatch(/^node/);
    expect(argv).toEqual(expect.arrayContaining(['--max-semi-space-size=64', '--initial-old-space-size=128']));
    expect(argv.some((a) => a.endsWith(path.join('dist', 'services', 'cli', 'main.js')))).toBe(true);
    await server().stop('SIGTERM');
    expect(server().lastExit).toEqual({ code: 0, signal: null });
    await server().restart();
  });
});
