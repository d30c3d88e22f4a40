// Scaling brokers out and in under load (DESIGN.md §4 "Draining", §5): a third broker added to
// two gets its fair share of a 12-partition topic, and a broker stopped with SIGTERM drains
// (flush, commit, checkpoint, release) and exits 0 while a producer keeps writing: the
// producer sees only retriable errors and every message is acknowledged and stored once.

import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { readTopic } from '../support/crash.js';
import { killAllProcs } from '../support/procs.js';
import { checkTopic, createTopic, splitProblems, eventually, few, partitionsOf, ProducerRun, shares, startCluster, timeDeparture, unitOf, verifyTopic, waitAssigned, waitFor, type Cluster, type ClusterView } from './support.js';

const TOPIC = 'scale';
const PARTITIONS = 12;

let cluster: Cluster;
let keepLogs = false;

beforeAll(async () => {
  cluster = await startCluster({ brokers: 2, proxies: 2, leaseTtlSeconds: 2, advertiseMode: 'direct' });
});

afterAll(async () => {
  killAllProcs();
  await cluster?.stop({ keepLogs });
});

/** Longest time between two consecutive acknowledgements on partition p after `from`. */
function longestGap(producer: ProducerRun, p: number, from: number): number {
  const ts = producer.acks.filter((a) => a[0] === p).map((a) => a[3]);
  let gap = 0;
  for (let i = 1; i < ts.length; i++) if (ts[i] > from) gap = Math.max(gap, ts[i] - Math.max(ts[i - 1], from));
  return gap;
}

describe('scaling brokers', () => {
  it('gives an added broker its fair share and drains a SIGTERMed one, losing nothing under load', { timeout: 90_000 }, async () => {
    onTestFailed(() => {
      keepLogs = true;
      console.log(cluster.logTail(8));
    });
    const initial = await createTopic(cluster, TOPIC, PARTITIONS);
    expect(Object.fromEntries(shares(initial, TOPIC)), JSON.stringify(initial.raw)).toEqual({ 1: 6, 2: 6 });

    const producer = new ProducerRun(cluster.bootstrap, TOPIC, PARTITIONS, { rate: 300 });
    await producer.waitAcks(300, 30_000);

    // Scale out.
    const addedAt = Date.now();
    const third = await cluster.addBroker();
    let balanced: ClusterView | undefined;
    try {
      balanced = await eventually(`broker ${third.nodeId} to own 4 of ${PARTITIONS} partitions and the others 4 each`, async () => {
        producer.alive();
        const v = await cluster.cluster();
        balanced = v;
        const s = shares(v, TOPIC);
        return v.brokers.length === 3 && [...s.values()].every((n) => n === 4) && s.get(third.nodeId) === 4 ? v : undefined;
      }, 30_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nlast view: ${JSON.stringify(balanced?.raw).slice(0, 3000)}`);
    }
    const balancedMs = Date.now() - addedAt;
    const movedIn = partitionsOf(balanced, TOPIC, third.nodeId);
    // The new owner takes writes on what it received.
    const firstAck = new Map<number, number>();
    const readyAt = Date.now();
    await waitFor(`acknowledgements on ${movedIn.join(', ')} after the move`, () => {
      producer.alive();
      for (const [p, , , t] of producer.acks) if (movedIn.includes(p) && t > readyAt && !firstAck.has(p)) firstAck.set(p, t);
      return movedIn.every((p) => firstAck.has(p));
    }, 30_000, 20);
    const rowsNow = await readTopic(cluster.bootstrap, TOPIC);
    const mid = splitProblems(checkTopic(rowsNow, producer));
    expect(few(mid.serious), 'data produced before and during the scale-out, read back').toEqual([]);
    for (const p of movedIn) {
      const rows = await cluster.partitions(third);
      const row = rows.find((r) => r.topic === TOPIC && r.partition === p);
      expect(row?.state, `partition ${p} on the new broker: ${JSON.stringify(row)}`).toBe('Online');
    }
    console.log(
      `[scale] broker ${third.nodeId} added: balanced 4/4/4 after ${balancedMs} ms; it took partitions ${movedIn.join(', ')}; ` +
        `longest ack gap on them ${movedIn.map((p) => `p${p} ${longestGap(producer, p, addedAt)} ms`).join(', ')}`,
    );

    // Scale in: SIGTERM drains one broker (not the controller) while the producer runs.
    const view = await cluster.cluster();
    const leavingId = view.brokers.find((b) => b !== view.controller)!;
    const leaving = cluster.broker(leavingId);
    const handedOver = partitionsOf(view, TOPIC, leavingId);
    await producer.waitAcks(200, 30_000);
    const termAt = Date.now();
    leaving.kill('SIGTERM');
    const departure = timeDeparture(cluster, leavingId, handedOver.map((p) => unitOf(view, TOPIC, p)));
    const exit = await leaving.waitExit(30_000);
    const drainMs = Date.now() - termAt;
    const { registrationGoneMs, reassignedMs } = await departure;
    expect(exit, leaving.logs().slice(-3000)).toEqual({ code: 0, signal: null });
    const after = await waitAssigned(cluster, TOPIC, PARTITIONS, 30_000, [leavingId]);
    expect(after.brokers).not.toContain(leavingId);
    expect([...shares(after, TOPIC).values()].sort(), JSON.stringify(after.raw)).toEqual([6, 6]);
    const resumed = new Map<number, number>();
    await waitFor(`acknowledgements on ${handedOver.join(', ')} from their new owners`, () => {
      producer.alive();
      for (const [p, , , t] of producer.acks) if (handedOver.includes(p) && t > termAt && !resumed.has(p)) resumed.set(p, t);
      return handedOver.every((p) => resumed.has(p));
    }, 30_000, 20);
    await producer.waitAcks(300, 30_000);
    console.log(
      `[scale] broker ${leavingId} SIGTERMed: partitions ${handedOver.join(', ')} reassigned after ${reassignedMs} ms, exited ${exit.code} after ${drainMs} ms, registration gone after ${registrationGoneMs} ms; ` +
        handedOver.map((p) => `p${p} longest ack gap ${longestGap(producer, p, termAt)} ms`).join(', '),
    );

    const done = await producer.stop();
    expect(producer.clientErrors.filter((e) => e.fatal), 'fatal producer errors').toEqual([]);
    expect(few(producer.errs), `${producer.errs.length} failed deliveries (non-retriable or timed out)`).toEqual([]);
    if (producer.clientErrors.length > 0) console.log(`[scale] retriable client errors seen: ${[...new Set(producer.clientErrors.map((e) => e.code))].join(', ')}`);
    expect(done.unflushed).toBe(0);
    expect(producer.acks.length).toBe(done.produced);
    const { rows, serious, misacked } = await verifyTopic(cluster, producer);
    expect(few(serious), `${serious.length} lost, doubled or misplaced messages among ${rows.length} stored`).toEqual([]);
    expect(rows.length).toBe(done.produced);
    expect.soft(few(misacked), `${misacked.length} acknowledgements naming an offset that holds another message`).toEqual([]);
    expect(cluster.crashes()).toEqual([]);
  });
});
