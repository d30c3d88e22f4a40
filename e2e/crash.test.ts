// Crash durability of a real `skiff dev` (DESIGN.md §3 "Produce" steps 3–5, §4 Recovering):
// SIGKILLed again and again under live idempotent acks=all load, it must keep every
// acknowledged message exactly once, at the offset it was acknowledged with, with no gaps;
// and with acks=1 a crash may lose only what was acknowledged after the last flush.

import { afterAll, describe, expect, it } from 'vitest';
import { killAllProcs, Proc, pythonJson } from './support/procs.js';
import { startSkiff, type Skiff } from './support/skiff.js';
import { freePort, highWatermarks, JsonTail, pollUntil, readTopic, sleep, type Row } from './support/crash.js';

const servers: Skiff[] = [];
afterAll(async () => {
  killAllProcs();
  await Promise.allSettled(servers.splice(0).map((s) => s.dispose()));
});

async function createTopic(server: Skiff, topic: string, partitions: number): Promise<void> {
  const r = await pythonJson<{ ok: boolean; error?: string }>('admin.py', [server.bootstrap, 'create', topic, String(partitions)]);
  expect(r, `create ${topic}`).toEqual({ ok: true });
}

/** At most `n` items, for failure messages that stay readable. */
const few = <T>(xs: T[], n = 20): T[] => xs.slice(0, n);

type ProducerLine = {
  ready?: boolean;
  ack?: [key: string, seq: number, partition: number, offset: number];
  err?: [key: string, seq: number, partition: number, error: string, fatal: boolean];
  clientError?: string;
  fatal?: boolean;
  done?: boolean;
  produced?: number;
  unflushed?: number;
  lastSeq?: Record<string, number>;
  transportErrors?: number;
};

describe('crash durability', () => {
  it('keeps every acknowledged message exactly once across 20 SIGKILLs under idempotent acks=all load', { timeout: 150_000 }, async () => {
    const KILLS = 20;
    const KEYS = 16;
    const PARTITIONS = 4;
    const topic = 'crash-idempotent';
    const started = Date.now();

    // librdkafka reconnects to the address it was given, so every restart must reuse the port.
    const port = await freePort();
    const server = await startSkiff({ args: ['--port', String(port)] });
    servers.push(server);
    expect(server.kafkaPort).toBe(port);
    await createTopic(server, topic, PARTITIONS);

    const producer = Proc.python('crash-producer', 'crash_producer.py', [
      server.bootstrap, topic, '--keys', String(KEYS), '--partitions', String(PARTITIONS), '--rate', '3000',
    ]);
    const out = new JsonTail<ProducerLine>(producer);
    const acks: NonNullable<ProducerLine['ack']>[] = [];
    const errs: NonNullable<ProducerLine['err']>[] = [];
    const fatal: string[] = [];
    const drain = () => {
      const fresh = out.poll();
      for (const l of fresh) {
        if (l.ack) acks.push(l.ack);
        else if (l.err) errs.push(l.err);
        else if (l.clientError) fatal.push(l.clientError);
      }
      return fresh;
    };
    const alive = () => {
      if (!producer.running) throw new Error(`producer exited (${JSON.stringify(producer.exitInfo)})\n${producer.stderr.slice(-3000)}`);
      if (fatal.length > 0) throw new Error(`producer hit a fatal error: ${fatal.join('; ')}`);
    };
    /** Waits for an acknowledgement that only the current server process can have given. */
    const waitForLiveAck = async (what: string) => {
      const hw = await highWatermarks(server, topic);
      const from = acks.length;
      await pollUntil(
        what,
        () => {
          drain();
          alive();
          return acks.slice(from).some(([, , p, o]) => o >= (hw.get(p)?.highWatermark ?? 0));
        },
        30_000,
      );
    };

    await waitForLiveAck('the first acknowledgement');
    const restartMs: number[] = [];
    const ackedAtKill: number[] = [];
    for (let kill = 1; kill <= KILLS; kill++) {
      await sleep(100 + Math.floor(Math.random() * 600)); // load between kills: the test's input
      drain();
      alive();
      ackedAtKill.push(acks.length);
      await server.kill9();
      expect(server.lastExit?.signal, server.logs().slice(-3000)).toBe('SIGKILL');
      const t0 = Date.now();
      await server.restart();
      restartMs.push(Date.now() - t0);
      expect(server.kafkaPort).toBe(port);
      await waitForLiveAck(`an acknowledgement from the server restarted after kill ${kill}`);
    }

    // Graceful end: the producer flushes everything it still holds, then reports.
    const exit = await producer.stop('SIGTERM', 90_000);
    drain();
    expect(exit, producer.stderr.slice(-3000)).toEqual({ code: 0, signal: null });
    const done = out.items.find((l) => l.done);
    expect(done, 'final report of the producer').toBeDefined();
    expect(fatal).toEqual([]);
    expect(few(errs), `${errs.length} failed delivery reports`).toEqual([]);
    expect(done!.unflushed).toBe(0);
    expect(acks.length).toBe(done!.produced);

    const hw = await highWatermarks(server, topic);
    const rows = await readTopic(server.bootstrap, topic);

    // 1. Offsets are contiguous per partition, from 0 to the high watermark.
    const gaps: string[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = rows.filter((r) => r.partition === p).map((r) => r.offset);
      const state = hw.get(p);
      expect(state?.logStartOffset, `log start of partition ${p}`).toBe(0);
      if (offsets.length !== state?.highWatermark) gaps.push(`partition ${p}: ${offsets.length} messages read, high watermark ${state?.highWatermark}`);
      offsets.forEach((o, i) => {
        if (o !== i) gaps.push(`partition ${p}: offset ${o} at position ${i}`);
      });
    }
    expect(few(gaps), 'gaps in the offsets').toEqual([]);

    // 2. No value is stored twice (idempotence), and every stored value was produced.
    const parse = (r: Row) => {
      const [key, seq] = (r.payload ?? '').split(':');
      return { key, seq: Number(seq) };
    };
    const where = new Map<string, Row[]>();
    for (const r of rows) {
      const { key, seq } = parse(r);
      const id = `${key}:${seq}`;
      where.set(id, [...(where.get(id) ?? []), r]);
    }
    const dups = [...where].filter(([, rs]) => rs.length > 1).map(([id, rs]) => `${id} at ${rs.map((r) => `${r.partition}/${r.offset}`).join(', ')}`);
    expect(few(dups), `${dups.length} values stored more than once`).toEqual([]);
    const unknown = rows.filter((r) => {
      const { key, seq } = parse(r);
      return r.key !== key || !(seq >= 0 && seq <= (done!.lastSeq?.[key] ?? -1));
    });
    expect(few(unknown), 'stored values that were never produced').toEqual([]);

    // 3. Every acknowledgement is unique and names exactly where its message is read back.
    const ackedIds = new Set<string>();
    const ackedAt = new Set<string>();
    const bad: string[] = [];
    const byOffset = new Map(rows.map((r) => [`${r.partition}/${r.offset}`, r]));
    for (const [key, seq, p, o] of acks) {
      const id = `${key}:${seq}`;
      if (ackedIds.has(id)) bad.push(`${id} acknowledged twice`);
      if (ackedAt.has(`${p}/${o}`)) bad.push(`offset ${p}/${o} acknowledged twice`);
      ackedIds.add(id);
      ackedAt.add(`${p}/${o}`);
      const r = byOffset.get(`${p}/${o}`);
      if (!r) bad.push(`${id} acknowledged at ${p}/${o}: no message there (lost)`);
      else if (r.payload?.startsWith(`${id}:`) !== true) bad.push(`${id} acknowledged at ${p}/${o}: found ${r.payload?.slice(0, 20)} there`);
    }
    expect(few(bad), `${bad.length} acknowledged messages lost, duplicated or misplaced`).toEqual([]);
    // Everything was acknowledged in the end (no delivery errors), so nothing else is stored.
    expect(rows.length).toBe(acks.length);

    // 4. Per key, sequence numbers are stored in order, each key on its own partition.
    const order: string[] = [];
    const lastSeq = new Map<string, number>();
    for (const r of rows) {
      const { key, seq } = parse(r);
      if (Number(key.slice(1)) % PARTITIONS !== r.partition) order.push(`${key} found on partition ${r.partition}`);
      if (seq !== (lastSeq.get(key) ?? -1) + 1) order.push(`${key}: seq ${seq} at ${r.partition}/${r.offset} after seq ${lastSeq.get(key) ?? 'none'}`);
      lastSeq.set(key, seq);
    }
    expect(few(order), 'per-key order').toEqual([]);

    const seconds = (Date.now() - started) / 1000;
    const avg = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
    console.log(
      `[crash] ${KILLS} SIGKILLs under load in ${seconds.toFixed(1)} s: ${acks.length} messages acknowledged (acks=all, idempotent), ` +
        `${rows.length} read back exactly once, high watermarks ${[...hw.values()].map((s) => s.highWatermark).join('/')}; ` +
        `restart ${avg(restartMs)} ms avg (max ${Math.max(...restartMs)} ms); acked at each kill: ${ackedAtKill.join(',')}; ` +
        `producer transport errors ${done!.transportErrors}`,
    );
    await server.dispose();
  });

  it('acks=1 loses at most the unflushed window', { timeout: 90_000 }, async () => {
    const topic = 'crash-acks1';
    const PARTITIONS = 2;
    const FIRST = 2000;
    const BURST = 2000;
    const FLUSH_MS = 2000;
    const server = await startSkiff({ args: ['--flush-ms', String(FLUSH_MS), '--flush-bytes', String(1 << 30)] });
    servers.push(server);
    await createTopic(server, topic, PARTITIONS);

    type Burst = { acked: [string, number, number][]; errors: [string, string][]; unflushed: number; burstMs: number };
    const first = await pythonJson<Burst>('crash_acks1.py', [server.bootstrap, topic, String(FIRST), '--prefix', 'first-', '--partitions', String(PARTITIONS)]);
    expect(first.errors).toEqual([]);
    expect(first.acked).toHaveLength(FIRST);
    // acks=1 answers before the flush; wait until the flush has committed all of the first set.
    const needed = new Map<number, number>();
    for (const [, p, o] of first.acked) needed.set(p, Math.max(needed.get(p) ?? 0, o + 1));
    await pollUntil(
      'the first set to be committed (high watermarks covering it)',
      async () => {
        const hw = await highWatermarks(server, topic);
        return [...needed].every(([p, end]) => (hw.get(p)?.highWatermark ?? 0) >= end);
      },
      3 * FLUSH_MS + 10_000,
      50,
    );

    // Second burst: acknowledged with acks=1, then SIGKILL at once, inside the flush window.
    const burst = Proc.python('acks1-burst', 'crash_acks1.py', [server.bootstrap, topic, String(BURST), '--prefix', 'second-', '--partitions', String(PARTITIONS)]);
    const second = await burst.waitForJson<Burst>((d) => Array.isArray(d.acked), 30_000, 'the burst report');
    await server.kill9();
    await burst.exited;
    expect(second.errors).toEqual([]);
    expect(second.acked).toHaveLength(BURST);

    await server.restart();
    const hw = await highWatermarks(server, topic);
    const rows = await readTopic(server.bootstrap, topic);
    const at = new Map(rows.map((r) => [`${r.partition}/${r.offset}`, r.payload]));

    // Offsets contiguous from 0, no value twice.
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = rows.filter((r) => r.partition === p).map((r) => r.offset);
      expect(offsets, `offsets of partition ${p}`).toEqual(offsets.map((_, i) => i));
      expect(offsets.length).toBe(hw.get(p)?.highWatermark);
    }
    expect(new Set(rows.map((r) => r.payload)).size).toBe(rows.length);

    // Nothing committed before the last flush is lost.
    const lostFirst = first.acked.filter(([v, p, o]) => at.get(`${p}/${o}`) !== v);
    expect(few(lostFirst), 'committed acks=1 messages lost').toEqual([]);

    // Of the burst, what survived is where it was acknowledged; what is lost is a suffix of
    // each partition (a crash drops the unflushed tail, never a hole in the middle).
    const survived = second.acked.filter(([v, p, o]) => at.get(`${p}/${o}`) === v);
    const lost = second.acked.length - survived.length;
    for (let p = 0; p < PARTITIONS; p++) {
      const mine = second.acked.filter(([, q]) => q === p).sort((a, b) => a[2] - b[2]);
      const kept = mine.filter(([v, , o]) => at.get(`${p}/${o}`) === v).length;
      expect(mine.slice(0, kept).every(([v, , o]) => at.get(`${p}/${o}`) === v), `partition ${p}: burst survivors are a prefix`).toBe(true);
      // Every burst message beyond the survivors is gone, not moved elsewhere.
      const stored = new Set(rows.filter((r) => r.partition === p).map((r) => r.payload));
      expect(mine.slice(kept).filter(([v]) => stored.has(v)), `partition ${p}: lost burst messages found elsewhere`).toEqual([]);
    }
    expect(lost).toBeLessThanOrEqual(BURST);
    console.log(
      `[crash] acks=1 with --flush-ms ${FLUSH_MS}: ${FIRST} committed messages all kept; burst of ${BURST} acknowledged in ${second.burstMs} ms, ` +
        `SIGKILL right after its last ack: ${lost} acknowledged messages lost (${survived.length} survived)`,
    );
    await server.dispose();
  });
});
