// kcat 1.7.1 (librdkafka 2.0.2) against a real `skiff dev`: compressed keyed produce, consume
// from the beginning, the balanced consumer (-G) and metadata listing (-L).

import { afterAll, describe, expect, it } from 'vitest';
import { jsonLines, kcat, killAllProcs } from './support/procs.js';
import { useSkiff } from './support/skiff.js';
import { decodeBatches, fetchRequest, WireClient } from './support/wire.js';

const PARTITIONS = 3;
const CODEC_ID = { gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;
const server = useSkiff({ args: ['--default-partitions', String(PARTITIONS)] });
afterAll(killAllProcs);

interface KcatMessage {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  ts: number;
}

/** Keyed messages with awkward content: spaces, tabs, unicode, colons in the value, one large compressible value. */
function sampleMessages(tag: string, n: number): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  for (let i = 0; i < n; i++) {
    let value = `${tag} message ${i}: héllo wörld ✓ \t tab:colon`;
    if (i === 7) value = `${tag} big ${'abcdefghij'.repeat(5000)}`;
    out.push({ key: `key-${i % 5}-${tag}`, value });
  }
  return out;
}

function asKcatInput(msgs: Array<{ key: string; value: string }>): string {
  return msgs.map((m) => `${m.key}:${m.value}`).join('\n') + '\n';
}

async function consumeAll(topic: string, extra: string[] = []): Promise<KcatMessage[]> {
  const r = await kcat(server().bootstrap, ['-C', '-t', topic, '-e', '-o', 'beginning', '-J', '-q', ...extra], { timeoutMs: 30_000 });
  return jsonLines<KcatMessage>(r.stdout);
}

describe('kcat', () => {
  for (const codec of ['snappy', 'zstd', 'gzip'] as const) {
    it(`reads back ${codec}-compressed keyed messages intact and in order`, async () => {
      const topic = `kcat-${codec}`;
      const msgs = sampleMessages(codec, 40);
      await kcat(server().bootstrap, ['-P', '-t', topic, '-p', '0', '-K:', '-z', codec, '-X', 'acks=all'], {
        input: asKcatInput(msgs),
        timeoutMs: 30_000,
      });

      const got = await consumeAll(topic, ['-p', '0']);
      expect(got.map((m) => ({ key: m.key, value: m.payload }))).toEqual(msgs);
      expect(got.map((m) => m.offset)).toEqual(msgs.map((_, i) => i));

      // The batches really travelled compressed: librdkafka drops compression silently when
      // the broker's ApiVersions do not enable it (KAFKA-COMPAT.md item 5).
      const wire = await WireClient.connect(server().kafkaPort);
      try {
        const res = await wire.request(1, 11, fetchRequest(topic, 0, 0n));
        const part = res.body.responses[0].partitions[0];
        expect(part.errorCode).toBe(0);
        expect(part.highWatermark).toBe(BigInt(msgs.length));
        // librdkafka sends a batch uncompressed when compressing would not shrink it (a lone
        // short message), so only the batch holding the large value must carry the codec.
        const batches = decodeBatches(part.records);
        expect(batches.length).toBeGreaterThan(0);
        for (const b of batches) expect([0, CODEC_ID[codec]]).toContain(b.compression);
        const big = batches.filter((b) => b.baseOffset <= 7n).at(-1);
        expect(big?.compression).toBe(CODEC_ID[codec]);
      } finally {
        wire.close();
      }
    });
  }

  it('spreads keyed messages over the partitions and keeps each partition in produce order', async () => {
    const topic = 'kcat-keyed-partitions';
    const msgs = Array.from({ length: 60 }, (_, i) => ({ key: `user-${i % 7}`, value: `event ${i}` }));
    await kcat(server().bootstrap, ['-P', '-t', topic, '-K:', '-z', 'zstd'], { input: asKcatInput(msgs), timeoutMs: 30_000 });

    const got = await consumeAll(topic);
    expect(got).toHaveLength(msgs.length);
    expect(new Set(got.map((m) => m.partition)).size).toBeGreaterThan(1);
    // One key, one partition; within a partition the produce order.
    const partitionOfKey = new Map<string, number>();
    for (const m of got) {
      const seen = partitionOfKey.get(m.key!);
      if (seen !== undefined) expect(m.partition).toBe(seen);
      partitionOfKey.set(m.key!, m.partition);
    }
    for (let p = 0; p < PARTITIONS; p++) {
      const inPartition = got.filter((m) => m.partition === p);
      expect(inPartition.map((m) => m.offset)).toEqual(inPartition.map((_, i) => i));
      const expected = msgs.filter((m) => partitionOfKey.get(m.key) === p).map((m) => m.value);
      expect(inPartition.map((m) => m.payload)).toEqual(expected);
    }
  });

  it('consumes every message with the balanced consumer (-G) and exits at the end (-e)', async () => {
    const topic = 'kcat-balanced';
    const msgs = Array.from({ length: 90 }, (_, i) => ({ key: `k${i}`, value: `balanced ${i}` }));
    await kcat(server().bootstrap, ['-P', '-t', topic, '-K:', '-z', 'snappy'], { input: asKcatInput(msgs), timeoutMs: 30_000 });

    const r = await kcat(server().bootstrap, ['-G', 'kcat-group', '-e', '-J', '-X', 'auto.offset.reset=earliest', topic], { timeoutMs: 45_000 });
    const got = jsonLines<KcatMessage>(r.stdout);
    expect(got.map((m) => m.payload).sort()).toEqual(msgs.map((m) => m.value).sort());
    expect(new Set(got.map((m) => `${m.partition}/${m.offset}`)).size).toBe(msgs.length);
    // kcat reports the assignment of all partitions to its single member.
    expect(r.stderr).toMatch(new RegExp(`assigned:.*${topic} \\[0\\].*${topic} \\[1\\].*${topic} \\[2\\]`));
  });

  it('lists the topic with its partition count and the advertised broker (-L)', async () => {
    const topic = 'kcat-metadata';
    await kcat(server().bootstrap, ['-P', '-t', topic], { input: 'hello\n' });

    const r = await kcat(server().bootstrap, ['-L', '-J', '-t', topic]);
    const md = JSON.parse(r.stdout) as {
      brokers: Array<{ id: number; name: string }>;
      topics: Array<{ topic: string; partitions: Array<{ partition: number; leader: number; error?: string }>; error?: string }>;
    };
    expect(md.brokers.map((b) => b.name)).toContain(`localhost:${server().kafkaPort}`);
    const t = md.topics.find((x) => x.topic === topic);
    expect(t?.error).toBeUndefined();
    expect(t!.partitions.map((p) => p.partition).sort()).toEqual([0, 1, 2]);
    const brokerIds = md.brokers.map((b) => b.id);
    for (const p of t!.partitions) expect(brokerIds).toContain(p.leader);

    const all = await kcat(server().bootstrap, ['-L', '-J']);
    const names = (JSON.parse(all.stdout) as { topics: Array<{ topic: string }> }).topics.map((x) => x.topic);
    expect(names).toContain(topic);
  });
});
