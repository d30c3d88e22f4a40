// The flusher on its own, with an object store and a metadata store whose every write the
// test finishes by hand: when writes start, what they hold, and that nothing is acknowledged
// before both the WAL object and its commit record are durable.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { CommitOutcomeUnknownError, FencedError, Flusher, type FlusherOptions } from '../../services/broker/flusher.js';
import { Partition } from '../../services/broker/partition.js';
import { validateBatches } from '../../services/protocol/record-batch.js';
import type { ObjectStore, PutOptions } from '../../services/storage/object-store.js';
import { MemoryMetaStore } from '../support/memory-meta-store.js';
import { buildBatch } from '../support/batches.js';
import { decodeCommitRecord } from '../../services/storage/wal-object.js';

const log = pino({ level: 'silent' });

interface Held {
  what: string;
  parts: number;
  done: (err?: Error) => void;
}

/** A store and a metadata store whose puts and txns wait until the test lets them finish. */
function harness(over: Partial<FlusherOptions> = {}) {
  const puts: Held[] = [];
  const commits: Held[] = [];
  const hold = (list: Held[], what: string, parts: number) =>
    new Promise<void>((resolve, reject) => list.push({ what, parts, done: (err) => (err ? reject(err) : resolve()) }));
  const putOptions: (PutOptions | undefined)[] = [];
  const deletes: string[] = [];
  const store = {
    put: (key: string, body: Buffer | Buffer[], options?: PutOptions) => {
      putOptions.push(options);
      return hold(puts, key, Array.isArray(body) ? body.length - 2 : 1); // minus index and trailer
    },
    delete: async (key: string) => void deletes.push(key),
  } as unknown as ObjectStore;
  const meta = new MemoryMetaStore();
  const txn = meta.txn.bind(meta);
  meta.txn = async (compares, success, failure) => {
    await hold(commits, success.map((op) => ('key' in op ? op.key : '')).join(), success.length);
    return txn(compares, success, failure);
  };
  const flusher = new Flusher({ brokerId: 1, flushMs: 60_000, flushBytes: 1 << 30, maxInflight: 4, store, meta, log, fence: () => [], onFenced: () => undefined, minIntervalMs: 0, ...over });
  const p = new Partition('00000000-0000-0000-0000-000000000001', 't', 0, log, () => undefined);
  p.transition('Online');
  const produce = (value: string) => {
    const buf = buildBatch([{ value }]);
    const e = p.append(buf, validateBatches(buf));
    flusher.appended(p, buf.length);
    return e;
  };
  return { puts, commits, flusher, p, produce, putOptions, deletes, meta };
}

/** Waits, a few ms at a time, until `done()` holds (for steps driven by the flusher's timers). */
const until = async (done: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
};

const turns = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

const flushers: Flusher[] = [];
afterEach(() => {
  for (const f of flushers.splice(0)) f.abort();
});

describe('flusher', () => {
  it('writes each WAL object as an unpublished put, acknowledged only after its commit', async () => {
    const h = harness();
    flushers.push(h.flusher);
    const e = h.produce('a');
    let acked = false;
    void h.p.waitCommitted(e.lastOffset).then(() => (acked = true));
    await turns();
    expect(h.putOptions).toEqual([{ unpublished: true }]);
    h.puts[0].done();
    await turns();
    expect(acked).toBe(false);
    h.commits[0].done();
    await turns();
    expect(acked).toBe(true);
  });

  it('adaptive: writes at once when nothing is being written, not after flush.ms', async () => {
    const h = harness();
    flushers.push(h.flusher);
    h.produce('a');
    h.produce('b'); // same turn of the event loop: same object
    await turns();
    expect(h.puts.map((x) => x.parts)).toEqual([2]);
  });

  it('adaptive: what arrives during a write goes out in one object as soon as that write ends', async () => {
    const h = harness();
    flushers.push(h.flusher);
    h.produce('first');
    await turns();
    expect(h.puts).toHaveLength(1);
    for (const v of ['x', 'y', 'z']) {
      h.produce(v);
      await turns();
    }
    // One write at a time: the three wait for the first, not for the timer either.
    expect(h.puts).toHaveLength(1);
    h.puts[0].done();
    await turns();
    expect(h.puts.map((x) => x.parts)).toEqual([1, 3]);
    // The first commit runs while the second object is written.
    expect(h.commits).toHaveLength(1);
  });

  it('adaptive: keeps flushes at least minIntervalMs apart', async () => {
    const h = harness({ minIntervalMs: 50 });
    flushers.push(h.flusher);
    const started = performance.now();
    h.produce('a');
    await turns();
    h.puts[0].done();
    await turns();
    h.commits[0].done();
    h.produce('b');
    await turns();
    expect(h.puts).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 80));
    expect(h.puts).toHaveLength(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(50);
  });

  it('without adaptive batching, waits for flush.ms (or flush.bytes)', async () => {
    const h = harness({ minIntervalMs: undefined, flushMs: 30 });
    flushers.push(h.flusher);
    h.produce('a');
    await turns();
    expect(h.puts).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 60));
    expect(h.puts).toHaveLength(1);
    const big = harness({ minIntervalMs: undefined, flushBytes: 1 });
    flushers.push(big.flusher);
    big.produce('b');
    expect(big.puts).toHaveLength(1);
  });

  it('acknowledges only after the WAL object and then its commit record are durable', async () => {
    const h = harness();
    flushers.push(h.flusher);
    const e1 = h.produce('one');
    let acked1 = false;
    void h.p.waitCommitted(e1.lastOffset).then(() => (acked1 = true));
    await turns();
    h.produce('two');
    let acked2 = false;
    const e2 = h.p.pending[0];
    void h.p.waitCommitted(e2.lastOffset).then(() => (acked2 = true));
    await turns();
    expect(h.commits).toHaveLength(0); // no commit record before its object is written
    h.puts[0].done();
    await turns();
    expect(h.commits).toHaveLength(1);
    expect(acked1).toBe(false); // object durable, commit record not yet
    // The second object is written before the first commit is durable; still no ack for either.
    h.puts[1].done();
    await turns();
    expect(h.commits).toHaveLength(1); // commits stay in flush order
    expect([acked1, acked2]).toEqual([false, false]);
    h.commits[0].done();
    await turns();
    expect([acked1, acked2, h.p.highWatermark]).toEqual([true, false, 1]);
    h.commits[1].done();
    await turns();
    expect([acked2, h.p.highWatermark]).toEqual([true, 2]);
  });

  it('group commit: objects written while a commit is in flight are committed together, in flush order', async () => {
    const h = harness({ minIntervalMs: undefined }); // one object per produce, by hand
    flushers.push(h.flusher);
    const acked: string[] = [];
    const produce = async (v: string) => {
      const e = h.produce(v);
      void h.p.waitCommitted(e.lastOffset).then(() => acked.push(v));
      h.flusher.flush();
      await turns();
    };
    await produce('a');
    h.puts[0].done();
    await turns();
    expect(h.commits.map((c) => c.parts)).toEqual([1]); // the first commit is in flight
    await produce('b');
    await produce('c');
    await produce('d');
    expect(h.puts).toHaveLength(4);
    // b's and d's objects are written, c's is not: only b may join the next commit.
    h.puts[1].done();
    h.puts[3].done();
    await turns();
    expect(h.commits).toHaveLength(1);
    h.commits[0].done();
    await turns();
    expect(h.commits.map((c) => c.parts)).toEqual([1, 1]);
    expect(h.commits[1].what.endsWith(h.puts[1].what.slice('wal/1/'.length))).toBe(true);
    h.puts[2].done();
    await turns();
    expect(h.commits).toHaveLength(2); // c and d wait for b's commit
    h.commits[1].done();
    await turns();
    expect(h.commits.map((c) => c.parts)).toEqual([1, 1, 2]); // c and d: one transaction
    expect(acked).toEqual(['a', 'b']);
    h.commits[2].done();
    await turns();
    expect(acked).toEqual(['a', 'b', 'c', 'd']);
    expect(h.p.highWatermark).toBe(4);
  });

  it('reserves the keys of the next WAL objects in batches, keeps them from GC, and gives back the unused ones on close', async () => {
    const calls: string[] = [];
    const short = (key: string) => Number(key.split('-')[1]);
    const store = {
      put: async (key: string) => void calls.push(`put ${short(key)}`),
      reserve: (key: string) => void calls.push(`reserve ${short(key)}`),
      unreserve: async (key: string) => void calls.push(`unreserve ${short(key)}`),
    } as unknown as ObjectStore;
    const h = harness({ store, maxInflight: 2 });
    flushers.push(h.flusher);
    const inFlight = () => [...h.flusher.objectsInFlight].map(short).sort((a, b) => a - b);
    const flushOne = async (i: number) => {
      const e = h.produce(String(i));
      await turns();
      h.commits[i].done();
      await h.p.waitCommitted(e.lastOffset);
    };
    // The first flush reserves 4 x maxInflight keys past its own, before its put.
    await flushOne(0);
    expect(calls).toEqual([2, 3, 4, 5, 6, 7, 8, 9].map((n) => `reserve ${n}`).concat('put 1'));
    expect(inFlight()).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    calls.length = 0;
    // The next ones put reserved keys, and reserve again only when fewer than maxInflight are left.
    for (let i = 1; i <= 6; i++) await flushOne(i);
    expect(calls).toEqual(['put 2', 'put 3', 'put 4', 'put 5', 'put 6', 'put 7']);
    calls.length = 0;
    await flushOne(7);
    expect(calls).toEqual([9, 10, 11, 12, 13, 14, 15, 16].map((n) => `reserve ${n}`).concat('put 8').filter((c) => c !== 'reserve 9'));
    calls.length = 0;
    await h.flusher.close();
    expect(calls.map((c) => Number(c.split(' ')[1])).sort((a, b) => a - b)).toEqual([9, 10, 11, 12, 13, 14, 15, 16]);
    expect(calls.every((c) => c.startsWith('unreserve'))).toBe(true);
    expect(h.flusher.objectsInFlight.size).toBe(0);
  });

  it('hedged writes: a slow WAL write gets a second copy, the first copy to land is committed and the other deleted', async () => {
    const h = harness({ hedgeMs: 30 });
    flushers.push(h.flusher);
    const e = h.produce('a');
    let acked = false;
    void h.p.waitCommitted(e.lastOffset).then(() => (acked = true));
    await until(() => h.puts.length === 2); // the first write is held past 30 ms
    const [slow, copy] = h.puts.map((x) => x.what);
    expect(copy).toBe(`${slow}.hedge`);
    expect(h.flusher.objectsInFlight.has(copy)).toBe(true); // kept from GC while written
    h.puts[1].done();
    await until(() => h.commits.length === 1);
    h.commits[0].done();
    await until(() => acked);
    // The commit record and the partition's extent name the copy that landed.
    const [record] = await h.meta.getPrefix('/skiff/wal/');
    expect(decodeCommitRecord(record.value).objectKey).toBe(copy);
    expect(h.p.extents.map((x) => x.key)).toEqual([copy]);
    expect(h.deletes).toEqual([]); // the slow write is still going
    h.puts[0].done();
    await until(() => h.deletes.length === 1);
    expect(h.deletes).toEqual([slow]);
    expect([...h.flusher.objectsInFlight]).toEqual([]);
    // A quick write is not hedged.
    const e2 = h.produce('b');
    await until(() => h.puts.length === 3);
    h.puts[2].done();
    await until(() => h.commits.length === 2);
    h.commits[1].done();
    await h.p.waitCommitted(e2.lastOffset);
    expect(h.puts).toHaveLength(3);
  });

  it('hedged writes: at most one second copy in flight, whatever the number of slow writes', async () => {
    const h = harness({ hedgeMs: 30, minIntervalMs: undefined });
    flushers.push(h.flusher);
    h.produce('a');
    h.flusher.flush();
    h.produce('b');
    h.flusher.flush();
    await until(() => h.puts.length === 3);
    await new Promise((r) => setTimeout(r, 100)); // well past the threshold of both writes
    expect(h.puts.map((x) => x.what.endsWith('.hedge'))).toEqual([false, false, true]);
    for (const x of h.puts) x.done();
    let drained = false;
    void h.flusher.drain().then(() => (drained = true));
    let released = 0;
    await until(() => {
      while (released < h.commits.length) h.commits[released++].done();
      return drained;
    });
    expect(h.puts).toHaveLength(3);
  });

  it('fenced after a commit attempt that got no answer: the batches are "possibly persisted", not "not written"', async () => {
    // The registration the fence compares; a test deletes it to fence the broker.
    const REG = '/skiff/brokers/1';
    for (const unanswered of [true, false]) {
      const fencedWith: Error[] = [];
      const h = harness({ fence: () => [{ key: REG, target: 'exists', value: true }], onFenced: (err) => void fencedWith.push(err) });
      flushers.push(h.flusher);
      await h.meta.put(REG, Buffer.from('1'));
      const e = h.produce('a');
      const outcome = h.p.waitCommitted(e.lastOffset).then(() => undefined, (err: Error) => err);
      await until(() => h.puts.length === 1);
      h.puts[0].done();
      await until(() => h.commits.length === 1);
      if (unanswered) {
        // The metadata store fails to answer (it may have applied the transaction), the
        // broker's lease runs out, and the retry is refused by the fence.
        h.commits[0].done(new Error('deadline exceeded'));
        await until(() => h.commits.length === 2);
      }
      await h.meta.delete(REG);
      h.commits[h.commits.length - 1].done();
      const err = await outcome;
      expect(err).toBeInstanceOf(FencedError);
      expect(err instanceof CommitOutcomeUnknownError, `after ${unanswered ? 'an unanswered attempt' : 'a refused attempt alone'}`).toBe(unanswered);
      expect(fencedWith).toHaveLength(1);
    }
  });

  it('a failed write acknowledges nothing and its batches are retried in the next write', async () => {
    const h = harness({ flushMs: 60_000 });
    flushers.push(h.flusher);
    const e = h.produce('a');
    let acked = false;
    void h.p.waitCommitted(e.lastOffset).then(() => (acked = true));
    await turns();
    h.puts[0].done(new Error('disk full'));
    await new Promise((r) => setTimeout(r, 80)); // the retry backoff
    expect(acked).toBe(false);
    expect(h.puts).toHaveLength(2);
    expect(h.puts[1].what).toBe(h.puts[0].what); // the same object, again
    h.puts[1].done();
    await turns();
    h.commits[0].done();
    await turns();
    expect(acked).toBe(true);
  });
});
