// Group coordinator failover (DESIGN.md §3 "Consumer groups", §6): committed offsets live in
// etcd, so when the broker owning the group's coordinator slot is SIGKILLed they survive, a
// live member can commit again through the slot's new owner, and a new member resumes
// exactly at the last commit: nothing committed is consumed again, nothing is skipped.

import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { killAllProcs, Proc, PYTHON, pythonJson } from '../support/procs.js';
import { CLUSTER_PY_DIR, coordinatorOf, createTopic, eventually, few, saveOutput, startCluster, timeDeparture, waitFor, type Cluster } from './support.js';

const TOPIC = 'groups';
const GROUP = 'groups-resume';
const PARTITIONS = 6;
const COUNT = 1200;

let cluster: Cluster;
let keepLogs = false;
const children: Proc[] = [];

beforeAll(async () => {
  cluster = await startCluster({ brokers: 3, proxies: 2, leaseTtlSeconds: 2, advertiseMode: 'direct' });
});

afterAll(async () => {
  killAllProcs();
  await cluster?.stop({ keepLogs });
});

type StepLine = { m?: [number, number, string]; committed?: Record<string, number>; errors?: string[]; step?: number; error?: string; closed?: boolean; paused?: boolean };
type Committed = { partitions: Array<{ partition: number; committed: number; error: string | null; low: number; high: number }> };

async function committedOffsets(): Promise<Record<string, number>> {
  const r = await pythonJson<Committed>('committed.py', [cluster.bootstrap, GROUP, TOPIC, String(PARTITIONS)], { timeoutMs: 30_000 });
  const errors = r.partitions.filter((p) => p.error);
  if (errors.length > 0) throw new Error(`OffsetFetch errors: ${JSON.stringify(errors)}`);
  return Object.fromEntries(r.partitions.map((p) => [String(p.partition), p.committed]));
}

describe('group coordinator failover', () => {
  it('keeps committed offsets when the coordinator broker is SIGKILLed, and a new member resumes exactly there', { timeout: 90_000 }, async () => {
    onTestFailed(() => {
      keepLogs = true;
      for (const p of children) saveOutput(cluster, p);
      console.log(cluster.logTail(8));
    });
    await createTopic(cluster, TOPIC, PARTITIONS);
    const produced = await pythonJson<{ acked: unknown[]; errors: unknown[]; unflushed: number }>(
      'produce.py', [cluster.bootstrap, TOPIC, String(COUNT), '--idempotent', '--round-robin', String(PARTITIONS), '--id-prefix', 'g-'], { timeoutMs: 60_000 });
    expect(produced.errors).toEqual([]);
    expect(produced.acked.length).toBe(COUNT);

    const a = new Proc('member-a', PYTHON, ['-u', path.join(CLUSTER_PY_DIR, 'group_step.py'), cluster.bootstrap, GROUP, TOPIC, '--first', '300', '--second', '300']);
    children.push(a);
    const step1 = await a.waitForJson<StepLine>((l) => l.step === 1, 45_000, 'the first commit');
    expect(step1.errors, 'per-partition commit errors').toEqual([]);
    const committed1 = step1.committed!;
    expect(await committedOffsets(), 'offsets read back after the first commit').toEqual(fill(committed1));

    const before = await eventually('the group coordinator slot owner', async () => coordinatorOf(await cluster.cluster(), GROUP), 20_000);
    const victim = cluster.broker(before.broker);
    victim.kill('SIGKILL');
    const departure = timeDeparture(cluster, victim.nodeId, [`__groups/${before.slot}`]);
    await victim.waitExit(10_000);
    const { reassignedMs } = await departure;
    const after = await eventually('the slot reassigned to a live broker', async () => {
      const v = await cluster.cluster();
      const c = coordinatorOf(v, GROUP);
      return c && c.broker !== victim.nodeId && v.brokers.includes(c.broker) ? c : undefined;
    }, 30_000);
    expect(await committedOffsets(), 'offsets read back through the new coordinator').toEqual(fill(committed1));

    // The live member goes on and commits through the new coordinator.
    a.child.kill('SIGUSR1');
    const step2 = await a.waitForJson<StepLine>((l) => l.step === 2, 60_000, 'the second commit');
    expect(step2.errors).toEqual([]);
    await a.waitForJson<StepLine>((l) => l.closed === true, 30_000, 'close');
    // librdkafka commits only the partitions whose position moved since the last commit.
    const committed2 = fill({ ...committed1, ...step2.committed! });
    for (let p = 0; p < PARTITIONS; p++) expect(committed2[p], `partition ${p} commit went backwards`).toBeGreaterThanOrEqual(fill(committed1)[p]);
    expect(await committedOffsets(), 'offsets read back after the second commit').toEqual(committed2);
    const aErrors = a.json<StepLine>().filter((l) => l.error).map((l) => l.error);
    console.log(`[groups] coordinator slot ${before.slot ?? '?'} moved from broker ${before.broker} to ${after.broker} in ${reassignedMs} ms; member errors meanwhile: ${JSON.stringify(few(aErrors, 5))}`);

    // A new member resumes at the commit: per partition, exactly offsets committed..end.
    const b = new Proc('member-b', PYTHON, ['-u', path.join(CLUSTER_PY_DIR, '..', 'python', 'group_consumer.py'), cluster.bootstrap, GROUP, TOPIC, 'b']);
    const remaining = Object.values(committed2).reduce((s, c) => s + COUNT / PARTITIONS - Math.max(0, c), 0);
    children.push(b);
    type Ev = { event: string; partition?: number; offset?: number };
    const got = () => b.json<Ev>().filter((e) => e.event === 'message');
    await waitFor(`member b to consume the ${remaining} uncommitted messages`, () => {
      if (!b.running) throw new Error(`member b exited\n${b.stderr.slice(-2000)}`);
      return got().length >= remaining;
    }, 45_000, 100);
    await b.stop('SIGTERM', 20_000);
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = got().filter((e) => e.partition === p).map((e) => e.offset!);
      const end = COUNT / PARTITIONS;
      expect(offsets, `partition ${p}: offsets read by the new member (committed ${committed2[p]})`).toEqual(range(committed2[p], end));
    }
    expect(cluster.crashes()).toEqual([]);
  });
});

/** Committed offsets of every partition (a partition A never read keeps -1001, "none"). */
function fill(c: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (let p = 0; p < PARTITIONS; p++) out[String(p)] = c[String(p)] ?? -1001;
  return out;
}

function range(from: number, to: number): number[] {
  const start = from < 0 ? 0 : from;
  return Array.from({ length: Math.max(0, to - start) }, (_, i) => start + i);
}
