// confluent-kafka-python 1.7.0 (librdkafka 2.0.2) against a real `skiff dev`: AdminClient,
// the idempotent lz4 producer, a three-member consumer group surviving a SIGKILLed member,
// committed offsets and offsets_for_times. The scripts live in e2e/python and print JSON.

import { afterAll, describe, expect, it } from 'vitest';
import { killAllProcs, Proc, pythonJson, until } from './support/procs.js';
import { useSkiff } from './support/skiff.js';
import { decodeBatches, fetchRequest, WireClient } from './support/wire.js';

const server = useSkiff();
afterAll(killAllProcs);

type AdminResult = { ok: boolean; error?: string; code?: string | null };
type ListResult = AdminResult & {
  controller_id: number;
  brokers: Record<string, string>;
  topics: Record<string, { error: string | null; partitions: number[]; leaders: number[] }>;
};
type ProduceResult = { acked: Array<[string, number, number, number]>; errors: Array<[string, string]>; unflushed: number };
type ConsumeAllResult = {
  messages: Array<{ value: string; key: string | null; partition: number; offset: number; timestamp: number }>;
  errors: string[];
  unfinished: number[];
};
type CommittedResult = { partitions: Array<{ partition: number; committed: number; error: string | null; low: number; high: number }> };
type GroupEvent = { event: string; name: string; partitions?: number[]; value?: string; partition?: number; offset?: number; error?: string };

const admin = <T = AdminResult>(...args: string[]) => pythonJson<T>('admin.py', [server().bootstrap, ...args]);

async function createTopic(topic: string, partitions: number): Promise<void> {
  const r = await admin('create', topic, String(partitions));
  expect(r, `create ${topic}`).toEqual({ ok: true });
}

describe('confluent-kafka-python (librdkafka 2.0.2)', () => {
  it('creates, lists and deletes topics with the AdminClient', async () => {
    const topic = 'py-admin';
    await createTopic(topic, 4);

    const again = await admin('create', topic, '4');
    expect(again.ok).toBe(false);
    expect(again.code).toBe('TOPIC_ALREADY_EXISTS');

    const listed = await admin<ListResult>('list');
    expect(listed.topics[topic]).toEqual({ error: null, partitions: [0, 1, 2, 3], leaders: expect.any(Array) });
    const brokerIds = Object.keys(listed.brokers).map(Number);
    expect(brokerIds).toContain(listed.controller_id);
    for (const leader of listed.topics[topic].leaders) expect(brokerIds).toContain(leader);
    expect(Object.values(listed.brokers)).toContain(`localhost:${server().kafkaPort}`);

    expect(await admin('delete', topic)).toEqual({ ok: true });
    const after = await admin<ListResult>('list');
    expect(Object.keys(after.topics)).not.toContain(topic);

    const deleteAgain = await admin('delete', topic);
    expect(deleteAgain.ok).toBe(false);
    expect(deleteAgain.code).toBe('UNKNOWN_TOPIC_OR_PART');
  });

  it('acknowledges each message of an idempotent lz4 producer once, at the offset it is read back from', async () => {
    const topic = 'py-idempotent';
    const n = 600;
    await createTopic(topic, 3);

    const produced = await pythonJson<ProduceResult>('produce.py', [server().bootstrap, topic, String(n), '--idempotent', '--compression', 'lz4'], {
      timeoutMs: 45_000,
    });
    expect(produced.errors).toEqual([]);
    expect(produced.unflushed).toBe(0);
    expect(produced.acked).toHaveLength(n);
    expect(new Set(produced.acked.map(([v]) => v)).size).toBe(n);

    // Per partition the acknowledged offsets are exactly 0..count-1: no gap, no duplicate.
    const byPartition = new Map<number, number[]>();
    for (const [, p, o] of produced.acked) byPartition.set(p, [...(byPartition.get(p) ?? []), o]);
    for (const offsets of byPartition.values()) {
      expect([...offsets].sort((a, b) => a - b)).toEqual(offsets.map((_, i) => i));
    }

    const read = await pythonJson<ConsumeAllResult>('consume_all.py', [server().bootstrap, topic], { timeoutMs: 45_000 });
    expect(read.errors).toEqual([]);
    expect(read.unfinished).toEqual([]);
    const readAt = new Map(read.messages.map((m) => [`${m.partition}/${m.offset}`, m.value]));
    expect(read.messages).toHaveLength(n);
    for (const [value, p, o] of produced.acked) expect(readAt.get(`${p}/${o}`)).toBe(value);
  });

  for (const strategy of ['range', 'roundrobin', 'cooperative-sticky']) {
    it(`shares partitions with the client-side ${strategy} assignor as members join`, async () => {
      const topic = `py-assign-${strategy}`;
      const partitions = 4;
      await createTopic(topic, partitions);
      const events = (p: Proc) => p.json<GroupEvent>();
      // Cooperative assignors hand out increments: a member's holdings are what it was given minus what it gave back.
      const holding = (p: Proc) => {
        const held = new Set<number>();
        for (const e of events(p)) {
          if (e.event === 'assigned') for (const x of e.partitions!) held.add(x);
          if (e.event === 'revoked') for (const x of e.partitions!) held.delete(x);
        }
        return [...held];
      };
      const first = Proc.python('a1', 'group_consumer.py', [server().bootstrap, `g-${strategy}`, topic, 'a1', strategy]);
      const members = [first];
      try {
        await until('the first member to hold every partition', () => holding(first).length === partitions, 30_000, 50);
        members.push(Proc.python('a2', 'group_consumer.py', [server().bootstrap, `g-${strategy}`, topic, 'a2', strategy]));
        await until(
          'two members splitting the partitions 2 + 2',
          () => members.every((m) => holding(m).length === 2) && new Set(members.flatMap(holding)).size === partitions,
          30_000,
          50,
        );
        const produced = await pythonJson<ProduceResult>('produce.py', [server().bootstrap, topic, '200', '--round-robin', String(partitions), '--id-prefix', `${strategy}-`]);
        const ids = produced.acked.map(([v]) => v);
        await until(
          'the two members to consume every message',
          () => {
            const got = new Set(members.flatMap((m) => events(m).filter((e) => e.event === 'message').map((e) => e.value!)));
            return ids.every((id) => got.has(id));
          },
          30_000,
          100,
        );
        for (const m of members) expect(events(m).filter((e) => e.event === 'error')).toEqual([]);
      } finally {
        for (const m of members) await m.stop('SIGTERM').catch(() => undefined);
      }
    });
  }

  it('keeps consuming every message when one of three group members is SIGKILLed, and commits up to the end', async () => {
    const topic = 'py-group';
    const group = 'py-group-1';
    const partitions = 6;
    const perPhase = 300;
    await createTopic(topic, partitions);

    const members = ['c1', 'c2', 'c3'].map((name) => Proc.python(name, 'group_consumer.py', [server().bootstrap, group, topic, name]));
    try {
      const events = (p: Proc) => p.json<GroupEvent>();
      const currentAssignment = (p: Proc): number[] | null => {
        const last = events(p)
          .filter((e) => e.event === 'assigned' || e.event === 'revoked')
          .at(-1);
        return last?.event === 'assigned' ? last.partitions! : null;
      };
      const consumed = (ps: Proc[]) => new Set(ps.flatMap((p) => events(p).filter((e) => e.event === 'message').map((e) => e.value!)));
      const settled = (ps: Proc[]) => {
        const sets = ps.map(currentAssignment);
        if (sets.some((s) => s === null || s.length === 0)) return false;
        const all = sets.flat() as number[];
        return all.length === partitions && new Set(all).size === partitions;
      };

      await until('three members sharing all six partitions', () => settled(members), 30_000, 50);
      for (const m of members) expect(currentAssignment(m)).toHaveLength(2);

      const phase1 = await pythonJson<ProduceResult>('produce.py', [server().bootstrap, topic, String(perPhase), '--round-robin', String(partitions), '--id-prefix', 'a-']);
      expect(phase1.acked).toHaveLength(perPhase);

      const [victim, ...survivors] = members;
      await victim.waitForJson<GroupEvent>((e) => e.event === 'message', 20_000, 'the first message of c1');
      await victim.stop('SIGKILL');

      const phase2 = await pythonJson<ProduceResult>('produce.py', [server().bootstrap, topic, String(perPhase), '--round-robin', String(partitions), '--id-prefix', 'b-']);
      expect(phase2.acked).toHaveLength(perPhase);

      const phase1Ids = phase1.acked.map(([v]) => v);
      const phase2Ids = phase2.acked.map(([v]) => v);
      // The killed member's partitions only move after its session times out (6 s).
      await until(
        'the two survivors to consume every message',
        () => {
          const bySurvivors = consumed(survivors);
          const byAll = consumed(members);
          return phase2Ids.every((id) => bySurvivors.has(id)) && phase1Ids.every((id) => byAll.has(id));
        },
        45_000,
        100,
      );
      expect(settled(survivors)).toBe(true);
      for (const m of members) expect(events(m).filter((e) => e.event === 'error')).toEqual([]);

      for (const s of survivors) {
        const exit = await s.stop('SIGTERM');
        expect(exit.code, `${s.name} exit\n${s.stderr}`).toBe(0);
        expect(events(s).at(-1)?.event).toBe('closed');
      }

      const committed = await pythonJson<CommittedResult>('committed.py', [server().bootstrap, group, topic, String(partitions)]);
      expect(committed.partitions).toHaveLength(partitions);
      for (const p of committed.partitions) {
        expect(p.high, `high watermark of partition ${p.partition}`).toBe((2 * perPhase) / partitions);
        expect(p.committed, `committed offset of partition ${p.partition}`).toBe(p.high);
      }
    } finally {
      for (const m of members) await m.stop('SIGKILL');
    }
  });

  const CODEC_ID = { none: 0, lz4: 3, zstd: 4 } as const;
  for (const compression of ['none', 'lz4', 'zstd'] as const) {
    it(`finds the first offset at or after a timestamp with offsets_for_times (compression ${compression})`, async () => {
      const topic = `py-times-${compression}`;
      await createTopic(topic, 1);
      const base = Date.now() - 3_600_000;
      const step = 1000;
      const n = 10;
      // One linger window (flush() ends it at once): the ten messages travel as one batch, so
      // the lookup has to look inside a batch rather than at batch boundaries.
      const produced = await pythonJson<ProduceResult>('produce.py', [
        server().bootstrap, topic, String(n),
        '--partition', '0', '--compression', compression, '--linger-ms', '2000', '--value-pad', '500', '--metadata-first',
        '--timestamp-base', String(base), '--timestamp-step', String(step),
      ]);
      expect(produced.errors).toEqual([]);
      expect(produced.acked.map(([, , o, ts]) => [o, ts])).toEqual(Array.from({ length: n }, (_, i) => [i, base + i * step]));

      // The premise: the messages are stored in batches of the chosen codec, and some offset
      // lies inside a batch, not at its start.
      let inside = -1;
      const wire = await WireClient.connect(server().kafkaPort);
      try {
        const res = await wire.request(1, 11, fetchRequest(topic, 0, 0n));
        const batches = decodeBatches(res.body.responses[0].partitions[0].records);
        for (const b of batches) expect(b.compression).toBe(CODEC_ID[compression]);
        const starts = new Set(batches.map((b) => Number(b.baseOffset)));
        inside = Array.from({ length: n - 2 }, (_, i) => i + 2).find((o) => !starts.has(o)) ?? -1;
        expect(inside, `an offset inside a batch (batches start at ${[...starts].join(', ')})`).toBeGreaterThan(1);
      } finally {
        wire.close();
      }

      const read = await pythonJson<ConsumeAllResult>('consume_all.py', [server().bootstrap, topic]);
      expect(read.messages.map((m) => m.timestamp)).toEqual(Array.from({ length: n }, (_, i) => base + i * step));

      // Between two messages' timestamps: the later one, found inside its batch.
      const queries = [base - 60_000, base, base + 1, base + (inside - 1) * step + step / 2, base + 9 * step, base + 9 * step + 1];
      const found = await pythonJson<{ offsets: Array<number | { error: string }> }>('offsets_for_times.py', [
        server().bootstrap, topic, '0', ...queries.map(String),
      ]);
      expect(found.offsets).toEqual([0, 0, 1, inside, 9, -1]);
    });
  }
});
