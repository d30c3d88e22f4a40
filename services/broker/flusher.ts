// The flusher, the broker's one "write thread": every flush.ms, or as soon as flush.bytes
// are pending, it writes ONE WAL object holding the pending batches of all partitions,
// commits it with a fenced MetaStore transaction, and only then moves high watermarks.
// Puts may overlap (up to maxInflight); commits are applied strictly in flush order.
// Group commit: the commit records of every WAL object whose write finished while the previous
// commit was in flight go in one transaction (still in flush order), so a metadata store
// slower than the object store (etcd behind S3) bounds how often commits run, not how many
// WAL objects are acknowledged per second.
// Adaptive batching (minIntervalMs): a flush also starts whenever no WAL object is being
// written, once minIntervalMs have passed since the previous one started: when traffic is
// light at once, under load as soon as the write in progress ends, with whatever arrived
// meanwhile. A batch then waits about one write instead of up to flush.ms, objects grow with
// the load rather than with the timer, and the spacing bounds what flushes cost when writes
// are quick (each is a file, a sync and a commit). flush.ms remains the longest wait.
// Hedged writes (hedgeMs, for S3): commits go in flush order, so one slow PUT holds every
// later acknowledgement. A WAL object whose write has not landed after max(hedgeMs, 4 × the
// median of recent writes) is written again under a second key; the first copy to land is the
// one its commit record names, and the other is deleted once its write ends (GC takes it if
// that fails). At most one hedge is in flight, so a store that is slow for everyone gets at
// most one extra write at a time.
import type { Logger } from 'pino';
import type { ObjectStore } from '../storage/object-store.js';
import type { Compare, MetaStore, TxnResult } from '../meta/meta-store.js';
import { buildWalObject, encodeCommitRecord, type WalPart } from '../storage/wal-object.js';
import { Keys } from '../meta/keys.js';
import type { Entry, Partition } from './partition.js';
import { brokerMetrics as m } from './metrics.js';

export interface FlusherOptions {
  brokerId: number;
  flushMs: number;
  flushBytes: number;
  maxInflight: number;
  /**
   * Adaptive batching (see the top of the file): the least time between two flushes started
   * because no write was in progress. Undefined, or not below flushMs: the timer alone.
   */
  minIntervalMs?: number;
  /** Hedged writes (see the top of the file): the least time before a second copy; 0 or undefined, never. */
  hedgeMs?: number;
  store: ObjectStore;
  meta: MetaStore;
  log: Logger;
  /** Compares that hold only while this broker is the registered, unexpired owner. */
  fence: () => Compare[];
  /** Called when a commit is refused by the fence: the broker must stop writing. */
  onFenced: (err: FencedError) => void;
}

export class FencedError extends Error {
  constructor(message = 'broker registration changed: fenced') {
    super(message);
    this.name = 'FencedError';
  }
}

/**
 * Fenced after a commit attempt whose outcome is unknown (the metadata store failed to answer,
 * so the transaction may have applied): the batches may be durable after all. Producers are
 * told REQUEST_TIMED_OUT ("possibly persisted": an idempotent producer retries with the same
 * sequence numbers, which the partition's next owner recognises if they were written), not
 * NOT_LEADER_OR_FOLLOWER ("not persisted").
 */
export class CommitOutcomeUnknownError extends FencedError {
  constructor() {
    super('fenced after a commit attempt whose outcome is unknown: the write may be durable');
    this.name = 'CommitOutcomeUnknownError';
  }
}

export class FlusherClosedError extends Error {
  constructor() {
    super('flusher closed before the write was committed');
    this.name = 'FlusherClosedError';
  }
}

interface Job {
  parts: { partition: Partition; entries: Entry[] }[];
  bytes: number;
  /** When its oldest batch was appended (performance.now()). */
  since: number;
}

/** WAL keys reserved at a time, in multiples of maxInflight (see reserveAhead). */
const RESERVE_BATCH = 4;

/** Write times kept for the hedging threshold. */
const RECENT_WRITES = 32;

/** Commit records per transaction, under etcd's default limit of 128 operations. */
const MAX_GROUP = 64;

/** A WAL object waiting for its commit record. */
interface Commit {
  key: string;
  value: Buffer;
  /** What its WAL object holds, partition by partition. */
  parts: Job['parts'];
  /** Its object is written (or its write failed, with `failed` set). */
  ready: boolean;
  failed?: Error;
  /** When its object was written: the commit stage is timed from here. */
  since: number;
  resolve: () => void;
  reject: (err: Error) => void;
  /** Settles once the commit record is durable, or with the error that ended the flush. */
  done: Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const backoff = (attempt: number) => Math.min(2000, 25 * 2 ** attempt) * (0.5 + Math.random() / 2);

export class Flusher {
  private dirty = new Set<Partition>();
  /** Appended, not yet committed (pending + in flight). */
  unflushedBytes = 0;
  private pendingBytes = 0;
  /** When the oldest pending batch was appended. */
  private pendingSince = 0;
  private timer?: NodeJS.Timeout;
  /** A pending adaptive flush: after this turn of the event loop, or after the spacing. */
  private soonImmediate?: NodeJS.Immediate;
  private soonTimer?: NodeJS.Timeout;
  private lastStart = -Infinity;
  private inflight = 0;
  /** Jobs whose WAL object is still being written (the rest of `inflight` is committing). */
  private writing = 0;
  private due = false;
  /** Commits in flush order; a prefix of ready ones goes out at a time. */
  private commits: Commit[] = [];
  /**
   * The group whose transaction has been sent and not yet answered (or failed without an
   * answer and is being retried): it may apply even after this broker is fenced. Empty when
   * no commit is in flight.
   */
  private sent: Commit[] = [];
  private seq = 0;
  private closed = false;
  private fenced = false;
  private readonly bootId = String(Date.now()).padStart(14, '0');
  private idleWaiters: (() => void)[] = [];
  /**
   * WAL objects written or committing now. They are written in place (unpublished), so GC must
   * not take one for a crash's leftover, however long its write has been going.
   */
  readonly objectsInFlight = new Set<string>();
  /**
   * Keys of the next WAL objects, reserved in the store ahead of their flushes (a local store
   * creates their files meanwhile, off the produce path). They count as in flight for GC.
   */
  private readonly reservedKeys = new Set<string>();
  /** The last RECENT_WRITES write times (ms), oldest first, for the hedging threshold. */
  private readonly recentWrites: number[] = [];
  private hedging = 0;

  constructor(private readonly o: FlusherOptions) {}

  appended(p: Partition, bytes: number): void {
    if (this.pendingBytes === 0) this.pendingSince = performance.now();
    this.dirty.add(p);
    this.unflushedBytes += bytes;
    this.pendingBytes += bytes;
    m.unflushedBytes.set(this.unflushedBytes);
    if (this.pendingBytes >= this.o.flushBytes) return this.flush();
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.o.flushMs);
    if (this.adaptive && this.writing === 0) this.flushSoon();
  }

  private get adaptive(): boolean {
    return this.o.minIntervalMs !== undefined && this.o.minIntervalMs < this.o.flushMs;
  }

  /**
   * An adaptive flush, once the spacing allows and not before the end of this turn of the
   * event loop: the other produce requests that arrived in the same read from the sockets
   * join this object instead of waiting for the next.
   */
  private flushSoon(): void {
    if (this.soonImmediate || this.soonTimer) return;
    const go = () => {
      this.soonImmediate = undefined;
      this.soonTimer = undefined;
      if (this.writing === 0) this.flush();
    };
    const wait = this.lastStart + this.o.minIntervalMs! - performance.now();
    if (wait >= 1) this.soonTimer = setTimeout(go, wait);
    else this.soonImmediate = setImmediate(go);
  }

  private cancelSoon(): void {
    if (this.soonImmediate) clearImmediate(this.soonImmediate);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    this.soonImmediate = undefined;
    this.soonTimer = undefined;
  }

  /** Starts a flush of everything pending, unless too many are already in flight. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.cancelSoon();
    if (this.dirty.size === 0 || this.fenced) return;
    if (this.inflight >= this.o.maxInflight) {
      this.due = true;
      return;
    }
    const job: Job = { parts: [], bytes: 0, since: this.pendingSince };
    for (const p of this.dirty) {
      const entries = p.takePending();
      if (entries.length === 0) continue;
      job.parts.push({ partition: p, entries });
      for (const e of entries) job.bytes += e.buf.length;
    }
    this.dirty.clear();
    this.pendingBytes = 0;
    if (job.parts.length === 0) return;
    this.lastStart = performance.now();
    this.inflight++;
    void this.run(job).finally(() => {
      this.inflight--;
      if (this.dirty.size > 0 && (this.due || this.pendingBytes >= this.o.flushBytes)) {
        this.due = false;
        this.flush();
      } else if (this.dirty.size > 0 && !this.timer) {
        this.timer = setTimeout(() => this.flush(), this.o.flushMs);
      }
      if (this.inflight === 0 && this.dirty.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async run(job: Job): Promise<void> {
    const started = performance.now();
    const name = this.walName(++this.seq);
    const objectKey = this.walKey(name);
    this.reservedKeys.delete(objectKey);
    this.reserveAhead();
    const parts: WalPart[] = job.parts.map(({ partition, entries }) => {
      let maxTimestamp = -1;
      const producers = [];
      for (const e of entries) {
        if (e.maxTimestamp > maxTimestamp) maxTimestamp = e.maxTimestamp;
        producers.push(...e.producers);
      }
      return {
        extent: {
          topicId: partition.topicId,
          partition: partition.index,
          baseOffset: entries[0].baseOffset,
          lastOffset: entries[entries.length - 1].lastOffset,
          maxTimestamp,
          producers,
        },
        chunks: entries.map((e) => e.buf),
        crcs: entries.map((e) => e.crc),
      };
    });
    const { body, size, extents, index } = buildWalObject(parts);
    m.flushStageSeconds.observe({ stage: 'wait' }, (started - job.since) / 1000);
    this.writing++;
    this.objectsInFlight.add(objectKey);
    const commit = this.queueCommit(Keys.wal(this.o.brokerId, name), encodeCommitRecord(objectKey, index), job.parts);
    /** The copy the commit record names: objectKey, or its hedge if that landed first. */
    let written = objectKey;
    void (async () => {
      try {
        written = await this.write(objectKey, body);
        if (written !== objectKey) commit.value = encodeCommitRecord(written, index);
        m.flushStageSeconds.observe({ stage: 'write' }, (performance.now() - started) / 1000);
      } catch (err) {
        commit.failed = err as Error;
      } finally {
        // What arrived during this write goes next, without waiting for the timer.
        if (--this.writing === 0 && this.adaptive && this.dirty.size > 0) this.flushSoon();
        commit.ready = true;
        commit.since = performance.now();
        this.pumpCommits();
      }
    })();
    try {
      await commit.done;
    } catch (err) {
      for (const { partition } of job.parts) partition.abandonUncommitted(err as Error);
      this.unflushedBytes -= job.bytes;
      m.unflushedBytes.set(this.unflushedBytes);
      if (err instanceof FencedError && !this.fenced) {
        this.fenced = true;
        this.o.onFenced(err);
      } else if (!(err instanceof FencedError)) {
        this.o.log.error({ err, objectKey }, 'flush abandoned');
      }
      return;
    } finally {
      this.objectsInFlight.delete(objectKey);
      this.objectsInFlight.delete(written);
    }
    job.parts.forEach(({ partition, entries }, i) => {
      const e = extents[i];
      partition.committed(entries, {
        key: written,
        position: e.position,
        length: e.length,
        baseOffset: e.baseOffset,
        lastOffset: e.lastOffset,
        maxTimestamp: e.maxTimestamp,
        crc: e.crc,
      });
    });
    this.unflushedBytes -= job.bytes;
    m.unflushedBytes.set(this.unflushedBytes);
    m.flushes.inc();
    m.flushBytes.observe(size);
    m.flushSeconds.observe((performance.now() - started) / 1000);
    this.onCommitted?.(job.parts, name);
  }

  /** Writes a WAL object (hedged, see the top of the file); resolves with the key that landed first. */
  private async write(key: string, body: Buffer[]): Promise<string> {
    const started = performance.now();
    // Unpublished: only the commit record makes the object visible to anyone.
    let decided = false;
    const put = (k: string) => this.retry('put', () => this.o.store.put(k, body, { unpublished: true }), () => decided).then(() => k);
    const first = put(key);
    const after = this.hedgeAfterMs();
    if (after === undefined || !(await this.outlasts(first, after)) || this.hedging > 0 || this.closed || this.fenced) {
      await first;
      this.noteWrite(performance.now() - started);
      return key;
    }
    this.hedging++;
    m.hedgedWrites.inc();
    const copy = `${key}.hedge`;
    this.objectsInFlight.add(copy);
    const second = put(copy);
    try {
      const winner = await Promise.any([first, second]);
      decided = true; // the slower copy stops retrying
      m.hedgeWins.inc({ copy: winner === copy ? 'hedge' : 'first' });
      this.noteWrite(performance.now() - started);
      const [loser, loserWrite] = winner === copy ? [key, first] : [copy, second];
      void loserWrite
        .then(() => this.o.store.delete(loser))
        .catch((err) => this.o.log.debug({ err, key: loser }, 'the slower copy of a hedged WAL object was not deleted (GC will)'))
        .finally(() => loser === copy && this.objectsInFlight.delete(copy));
      return winner;
    } catch (err) {
      this.objectsInFlight.delete(copy);
      throw (err as AggregateError).errors[0];
    } finally {
      this.hedging--;
    }
  }

  /** Whether `write` is still going after `ms` (false as soon as it ends, either way). */
  private async outlasts(write: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([write.then(() => false, () => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms)))]);
    clearTimeout(timer);
    return late;
  }

  /** How long a write may take before it is hedged; undefined when hedging is off. */
  private hedgeAfterMs(): number | undefined {
    if (!this.o.hedgeMs || this.o.hedgeMs <= 0) return undefined;
    const sorted = [...this.recentWrites].sort((a, b) => a - b);
    return Math.max(this.o.hedgeMs, 4 * (sorted[sorted.length >> 1] ?? 0));
  }

  private noteWrite(ms: number): void {
    if (!this.o.hedgeMs) return;
    this.recentWrites.push(ms);
    if (this.recentWrites.length > RECENT_WRITES) this.recentWrites.shift();
  }

  private walName(seq: number): string {
    return `${this.bootId}-${String(seq).padStart(10, '0')}`;
  }

  private walKey(name: string): string {
    return `wal/${this.o.brokerId}/${name}`;
  }

  /**
   * Keeps at least maxInflight keys reserved past this flush, topped up RESERVE_BATCH times
   * that many at once: the files of a batch share their directory syncs, so the disk's
   * journal commits a new entry once per batch rather than once per flush.
   */
  private reserveAhead(): void {
    const reserve = this.o.store.reserve;
    if (!reserve || this.closed || this.fenced || this.reservedKeys.size >= this.o.maxInflight) return;
    for (let seq = this.seq + 1; seq <= this.seq + RESERVE_BATCH * this.o.maxInflight; seq++) {
      const key = this.walKey(this.walName(seq));
      if (this.reservedKeys.has(key)) continue;
      this.reservedKeys.add(key);
      this.objectsInFlight.add(key);
      reserve.call(this.o.store, key);
    }
  }

  /** Gives back the reservations no flush will use. */
  private async unreserveAll(): Promise<void> {
    const keys = [...this.reservedKeys];
    this.reservedKeys.clear();
    await Promise.all(
      keys.map(async (key) => {
        await this.o.store.unreserve?.(key).catch((err) => this.o.log.warn({ err, key }, 'could not remove a reserved WAL object'));
        this.objectsInFlight.delete(key);
      }),
    );
  }

  /** Queues a WAL object's commit record behind those of earlier flushes. */
  private queueCommit(key: string, value: Buffer, parts: Job['parts']): Commit {
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const c: Commit = { key, value, parts, ready: false, since: 0, resolve, reject, done };
    this.commits.push(c);
    return c;
  }

  /**
   * Commits the ready prefix of the queue in one transaction, unless a commit is in flight
   * (it calls this again when it ends). A WAL object whose write failed is dropped from the
   * queue with its error; the ones after it still commit, as each is a whole flush of its own.
   */
  private pumpCommits(): void {
    if (this.sent.length > 0) return;
    if (this.fenced) {
      // Nothing is sent once fenced: a transaction sent now could still apply before the
      // metadata store expires the lease, and its producers have been told "not written".
      for (const c of this.commits.splice(0)) c.reject(new FencedError());
      return;
    }
    const group: Commit[] = [];
    while (group.length < MAX_GROUP && this.commits.length > 0 && this.commits[0].ready) {
      const c = this.commits.shift()!;
      if (c.failed) c.reject(c.failed);
      else group.push(c);
    }
    if (group.length === 0) return;
    this.sent = group;
    /** An attempt failed without an answer: it may have applied. */
    let uncertain = false;
    void this.retry('commit', async () => {
      let res: TxnResult;
      try {
        res = await this.o.meta.txn(
          this.o.fence(),
          group.map((c) => ({ type: 'put' as const, key: c.key, value: c.value })),
        );
      } catch (err) {
        uncertain = true;
        throw err;
      }
      if (!res.succeeded) throw uncertain ? new CommitOutcomeUnknownError() : new FencedError();
    }).then(
      () => {
        const now = performance.now();
        m.commitGroupSize.observe(group.length);
        for (const c of group) {
          m.flushStageSeconds.observe({ stage: 'commit' }, (now - c.since) / 1000);
          c.resolve();
        }
      },
      (err: Error) => {
        for (const c of group) c.reject(err);
      },
    ).finally(() => {
      this.sent = [];
      this.pumpCommits();
    });
  }

  /** Hook for the broker: what a committed WAL object held, partition by partition. */
  onCommitted?: (parts: { partition: Partition; entries: Entry[] }[], walName: string) => void;

  /** Retries storage and metadata failures with backoff; a fence, close or `giveUp()` ends it. */
  private async retry(stage: 'put' | 'commit', fn: () => Promise<void>, giveUp?: () => boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof FencedError || giveUp?.()) throw err;
        if (this.closed && attempt > 3) throw new FlusherClosedError();
        m.flushRetries.inc({ stage });
        this.o.log.warn({ err, stage, attempt }, 'flush step failed, retrying');
        await sleep(backoff(attempt));
      }
    }
  }

  /** Resolves when nothing is pending or in flight. */
  async drain(): Promise<void> {
    this.flush();
    if (this.inflight === 0 && this.dirty.size === 0) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /**
   * Fenced: stop flushing; in-flight steps give up instead of retrying, and no commit is sent
   * any more. Returns, per partition, the last offset whose commit was sent without an answer:
   * it may still apply (the metadata store may have it queued), so through that offset the
   * outcome is unknown; beyond it nothing will be committed.
   */
  abort(): Map<Partition, number> {
    const inDoubt = new Map<Partition, number>();
    for (const c of this.sent) {
      for (const { partition, entries } of c.parts) inDoubt.set(partition, Math.max(inDoubt.get(partition) ?? -1, entries[entries.length - 1].lastOffset));
    }
    this.fenced = true;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.cancelSoon();
    for (const w of this.idleWaiters.splice(0)) w();
    void this.unreserveAll();
    this.pumpCommits();
    return inDoubt;
  }

  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.cancelSoon();
    await this.unreserveAll();
  }
}
