// Fencing a zombie broker (DESIGN.md §4 "Fenced", §5 "Fencing"): a broker frozen with SIGSTOP
// while a producer writes loses its lease, its partitions move to other brokers, and when it
// wakes up it must notice, move its partitions to Fenced, commit nothing, and come back as a
// new incarnation (exit code 3 for its orchestrator, or an in-process rejoin). Every
// acknowledged message is stored exactly once.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { killAllProcs } from '../support/procs.js';
import { createTopic, etcdKeys, eventually, few, partitionsOf, ProducerRun, startCluster, timeDeparture, unitOf, verifyTopic, waitAssigned, waitFor, type Cluster } from './support.js';

const TOPIC = 'fencing';
const PARTITIONS = 6;

let cluster: Cluster;
let keepLogs = false;

beforeAll(async () => {
  cluster = await startCluster({ brokers: 3, proxies: 2, leaseTtlSeconds: 2, advertiseMode: 'direct' });
});

afterAll(async () => {
  killAllProcs();
  await cluster?.stop({ keepLogs });
});

describe('a broker frozen past its lease', () => {
  it('is fenced when it wakes: it commits nothing, comes back as a new incarnation, and no acknowledged message is lost or doubled', { timeout: 90_000 }, async () => {
    await createTopic(cluster, TOPIC, PARTITIONS);
    // librdkafka's idempotence log (sequence errors, epoch bumps, retries) is kept with the
    // cluster's logs when the test fails: a doubled message needs the producer's side too.
    const producer = new ProducerRun(cluster.bootstrap, TOPIC, PARTITIONS, { rate: 300, debug: 'eos' });
    onTestFailed(() => {
      keepLogs = true;
      writeFileSync(path.join(cluster.dir, 'producer.log'), producer.proc.stderr);
      console.log(cluster.logTail(8));
    });
    await waitFor('an acknowledgement on every partition', () => {
      producer.alive();
      return new Set(producer.acks.map((a) => a[0])).size === PARTITIONS;
    }, 30_000);

    const before = await waitAssigned(cluster, TOPIC, PARTITIONS);
    const zombieId = before.brokers.find((b) => b !== before.controller && partitionsOf(before, TOPIC, b).length > 0)!;
    const affected = partitionsOf(before, TOPIC, zombieId);
    const zombie = cluster.broker(zombieId);
    const zombieWal = `/skiff/wal/${zombieId}/`;

    const stoppedAt = Date.now();
    zombie.kill('SIGSTOP');

    // The lease runs out and the controller hands its partitions to the others.
    const { registrationGoneMs, reassignedMs } = await timeDeparture(cluster, zombieId, affected.map((p) => unitOf(before, TOPIC, p)));
    const after = await waitAssigned(cluster, TOPIC, PARTITIONS, 30_000, [zombieId]);
    expect(after.brokers, 'the frozen broker is no longer registered').not.toContain(zombieId);
    // From here on the zombie can commit nothing: whatever it committed is already in etcd.
    const walBefore = await etcdKeys(cluster, zombieWal);

    // The new owners take writes for the moved partitions while the zombie is still frozen.
    const firstAck = new Map<number, number>();
    await waitFor(`acknowledgements on ${affected.join(', ')} from their new owners`, () => {
      producer.alive();
      for (const [p, , , t] of producer.acks) if (affected.includes(p) && t > stoppedAt + reassignedMs && !firstAck.has(p)) firstAck.set(p, t);
      return affected.every((p) => firstAck.has(p));
    }, 45_000, 20);

    const continuedAt = Date.now();
    const recordsBefore = zombie.records.length;
    zombie.kill('SIGCONT');
    await zombie.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('broker fenced'), 20_000, '"broker fenced" log line');
    // Two ways to come back are fine: exit with code 3 for the orchestrator to restart it (the
    // CLI contract this test was written against), or drop everything and rejoin in-process
    // with a new registration (what the broker does since commit 2269622). Either way it is a new
    // incarnation, and the old one must have committed nothing.
    // In-process, "back" means ready again: /readyz answers 200 (it turned 503 when the broker
    // logged that it was fenced).
    const outcome = await waitFor('the fenced broker to exit, or to rejoin and be ready again (/readyz 200)', async () => {
      if (zombie.exitInfo) return { exited: zombie.exitInfo };
      const ready = await fetch(`http://127.0.0.1:${zombie.httpPort}/readyz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
      return ready ? { rejoined: true } : undefined;
    }, 20_000, 100).catch((e: Error) => {
      const since = zombie.records.slice(recordsBefore).map((r) => `${String(r.msg)}${r.slot !== undefined ? ` slot ${String(r.slot)}` : ''}${r.partition !== undefined ? ` p${String(r.partition)} ${String(r.from)}→${String(r.to)}` : ''}`);
      throw new Error(`${e.message}; what it logged since SIGCONT:\n  ${since.join('\n  ')}`);
    });
    const outcomeMs = Date.now() - continuedAt;
    const afterWake = zombie.records.slice(recordsBefore).map((r) => JSON.stringify(r));
    expect(afterWake.some((l) => /"to":"Fenced"/.test(l)), `a transition to Fenced among:\n${afterWake.join('\n').slice(-4000)}`).toBe(true);
    if ('exited' in outcome) {
      expect(outcome.exited, zombie.logs().slice(-3000)).toEqual({ code: 3, signal: null });
    }

    // Commit records are named <boot id>-<sequence>; a new incarnation has a new boot id.
    const bootOf = (k: string) => k.slice(zombieWal.length).split('-')[0];
    const oldBoots = new Set(walBefore.map(bootOf));
    expect(oldBoots.size, `the zombie committed before it was frozen: ${walBefore.slice(-3).join(', ')}`).toBeGreaterThan(0);
    const walAfter = await etcdKeys(cluster, zombieWal);
    expect(walAfter.filter((k) => !walBefore.includes(k) && oldBoots.has(bootOf(k))), 'WAL objects the frozen incarnation committed after it lost its lease').toEqual([]);

    // How long each partition went without an acknowledgement while the zombie was frozen: its
    // own, and (collateral) those of live brokers.
    const others = [...Array(PARTITIONS).keys()].filter((p) => !affected.includes(p));
    const stall = (p: number) => {
      const ts = producer.acks.filter((a) => a[0] === p && a[3] >= stoppedAt - 5000).map((a) => a[3]);
      let gap = 0;
      for (let i = 1; i < ts.length; i++) if (ts[i] > stoppedAt && ts[i - 1] < continuedAt) gap = Math.max(gap, ts[i] - ts[i - 1]);
      return gap;
    };
    console.log(
      `[fencing] broker ${zombieId} SIGSTOPped: registration gone after ${registrationGoneMs} ms, partitions ${affected.join(', ')} reassigned after ${reassignedMs} ms; ` +
        `first ack from the new owner ${affected.map((p) => `p${p} +${firstAck.get(p)! - stoppedAt} ms`).join(', ')}; ` +
        `longest ack gap: moved partitions ${affected.map((p) => `p${p} ${stall(p)} ms`).join(', ')}, partitions of live brokers ${others.map((p) => `p${p} ${stall(p)} ms`).join(', ')}; ` +
        `after SIGCONT it ${'exited' in outcome ? 'exited with code 3' : 'rejoined in-process'} in ${outcomeMs} ms`,
    );

    // Back in the cluster (restarted by its "orchestrator" if it exited), the cluster stays whole.
    await producer.waitAcks(200, 30_000);
    if ('exited' in outcome) await zombie.restart();
    await eventually('the fenced broker registered again', async () => (await cluster.cluster()).brokers.includes(zombieId), 20_000);
    await producer.waitAcks(200, 30_000);

    const done = await producer.stop();
    expect(producer.clientErrors.filter((e) => e.fatal)).toEqual([]);
    expect(few(producer.errs), `${producer.errs.length} failed deliveries`).toEqual([]);
    expect(done.unflushed).toBe(0);
    expect(producer.acks.length).toBe(done.produced);
    const { rows, serious, misacked } = await verifyTopic(cluster, producer);
    expect(few(serious), `${serious.length} lost, doubled or misplaced messages among ${rows.length} stored`).toEqual([]);
    expect(rows.length).toBe(done.produced);

    expect.soft(few(misacked), `${misacked.length} acknowledgements naming an offset that holds another message`).toEqual([]);
    // The only exit nobody asked for may be the zombie's own, with code 3.
    expect(cluster.crashes()).toEqual('exited' in outcome ? [`broker-${zombieId} (pid ${zombie.exits[0].pid}) exited with 3`] : []);
  });
});
