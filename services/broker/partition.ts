// One partition on its owning broker: the state machine (DESIGN.md §4), offsets (next,
// high watermark, log start), batches waiting for the flusher, the cache of recently
// committed batches, the extent map of everything in object storage, and producer state.
import type { Logger } from 'pino';
import { assignOffset, batchesCrc, batchesOf, type BatchInfo } from '../protocol/record-batch.js';
import type { ProducerBatch } from '../storage/wal-object.js';
import type { SegmentRef } from '../storage/segment.js';
import { ProducerStates } from './producer-state.js';

export type PartitionState = 'Offline' | 'Acquiring' | 'Recovering' | 'Online' | 'Draining' | 'Fenced';

/** Where committed bytes live in storage. */
export interface StoredExtent {
  key: string;
  position: number;
  length: number;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  crc: number;
}

/** A produce request's record set, offsets assigned, waiting for or past its commit. */
export interface Entry {
  buf: Buffer;
  /** CRC-32C of `buf` as stored (offsets assigned), derived from the batch CRCs. */
  crc: number;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  producers: ProducerBatch[];
}

interface CommitWaiter {
  offset: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class PartitionUnavailableError extends Error {
  constructor(readonly state: PartitionState) {
    super(`partition is ${state}`);
    this.name = 'PartitionUnavailableError';
  }
}

export type StateListener = (p: Partition, from: PartitionState, to: PartitionState) => void;

export class Partition {
  state: PartitionState = 'Offline';
  /** Offset the next appended record gets. */
  nextOffset = 0;
  /** Everything below is committed: durable and visible to consumers. */
  highWatermark = 0;
  logStartOffset = 0;
  leaderEpoch = 0;

  pending: Entry[] = [];
  pendingBytes = 0;
  /** Committed entries still in memory, oldest first; trimmed by the broker's cache budget. */
  cache: Entry[] = [];
  /** Rolled segments, oldest first; everything after the last one is in `extents`. */
  segments: SegmentRef[] = [];
  /** Committed ranges still in WAL objects, oldest first. */
  extents: StoredExtent[] = [];
  /** Bytes in `extents`, and when the oldest of them was committed (for segment.ms). */
  walBytes = 0;
  walSince = 0;
  readonly producers = new ProducerStates();
  /** Committed since the last checkpoint. */
  dirty = false;

  private waiters: CommitWaiter[] = [];
  private chain: Promise<unknown> = Promise.resolve();

  /** Runs maintenance (roll, retention, DeleteRecords) one at a time per partition. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  constructor(
    readonly topicId: string,
    readonly topic: string,
    readonly index: number,
    private readonly log: Logger,
    private readonly onState: StateListener,
  ) {}

  get key(): string {
    return `${this.topicId}/${this.index}`;
  }

  transition(to: PartitionState, why?: string): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.log.info({ topic: this.topic, partition: this.index, from, to, why }, 'partition state');
    this.onState(this, from, to);
  }

  /**
   * Assigns offsets to validated batches and queues them for the flusher. Returns the
   * entry; the caller decides whether to wait for its commit (acks=-1) or not (acks=1).
   */
  append(buf: Buffer, batches: BatchInfo[]): Entry {
    if (this.state !== 'Online') throw new PartitionUnavailableError(this.state);
    const baseOffset = this.nextOffset;
    let next = baseOffset;
    let maxTimestamp = -1;
    const producers: ProducerBatch[] = [];
    for (const b of batches) {
      assignOffset(buf, b.position, next, this.leaderEpoch);
      const lastOffset = next + b.lastOffsetDelta;
      if (b.producerId >= 0n) {
        const pb: ProducerBatch = {
          producerId: b.producerId,
          producerEpoch: b.producerEpoch,
          baseSequence: b.baseSequence,
          lastSequence: b.baseSequence + b.lastOffsetDelta,
          baseOffset: next,
          lastOffset,
        };
        producers.push(pb);
        this.producers.record(pb);
      }
      if (b.maxTimestamp > maxTimestamp) maxTimestamp = b.maxTimestamp;
      next = lastOffset + 1;
    }
    this.nextOffset = next;
    // Taken after the offsets are written: they lie outside the batch CRCs but inside this one.
    const crc = batchesCrc(buf, batches);
    const entry: Entry = { buf, crc, baseOffset, lastOffset: next - 1, maxTimestamp, producers };
    this.pending.push(entry);
    this.pendingBytes += buf.length;
    return entry;
  }

  /** Hands every pending entry to the flusher. */
  takePending(): Entry[] {
    const out = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    return out;
  }

  /** Called by the flusher, in commit order, once the entries' WAL object is committed. */
  committed(entries: Entry[], extent: StoredExtent): void {
    this.addExtent(extent, Date.now());
    for (const e of entries) this.cache.push(e);
    this.highWatermark = extent.lastOffset + 1;
    this.dirty = true;
    this.wakeWaiters();
  }

  addExtent(extent: StoredExtent, now: number): void {
    if (this.extents.length === 0) this.walSince = now;
    this.extents.push(extent);
    this.walBytes += extent.length;
  }

  /** Replaces the oldest `count` WAL extents by a segment that holds the same offsets. */
  rolled(segment: SegmentRef, count: number, now: number): void {
    this.segments.push(segment);
    for (const e of this.extents.splice(0, count)) this.walBytes -= e.length;
    this.walSince = now;
    this.dirty = true;
  }

  /** Index of the segment holding `offset`, else of the first one after it, else -1. */
  findSegment(offset: number): number {
    const i = firstIndex(this.segments, (s) => s.lastOffset >= offset);
    return i < this.segments.length ? i : -1;
  }

  /** Resolves once every offset up to and including `offset` is committed. */
  waitCommitted(offset: number): Promise<void> {
    if (offset < this.highWatermark) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ offset, resolve, reject }));
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0) return;
    const still: CommitWaiter[] = [];
    for (const w of this.waiters) {
      if (w.offset < this.highWatermark) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /**
   * Drops everything not committed (fencing, failed flush): producers see a retriable error.
   * Waiters through `inDoubt.through` get `inDoubt.err` instead: their commit was sent and may
   * yet apply.
   */
  abandonUncommitted(err: Error, inDoubt?: { through: number; err: Error }): void {
    for (const w of this.waiters) w.reject(inDoubt && w.offset <= inDoubt.through ? inDoubt.err : err);
    this.waiters = [];
    this.pending = [];
    this.pendingBytes = 0;
    this.nextOffset = this.highWatermark;
  }

  /**
   * Committed batches from the cache starting at the batch that holds `offset`, up to
   * `maxBytes` (always at least one batch, KIP-74). Undefined when the cache does not reach
   * back to `offset`.
   */
  readCache(offset: number, maxBytes: number): Buffer[] | undefined {
    const cache = this.cache;
    if (cache.length === 0 || offset < cache[0].baseOffset) return undefined;
    // The last record set starting at or before `offset`.
    const lo = firstIndex(cache, (e) => e.baseOffset > offset) - 1;
    const out: Buffer[] = [];
    let bytes = 0;
    for (let i = lo; i < cache.length; i++) {
      const e = cache[i];
      if (e.baseOffset >= this.highWatermark) break;
      if (i === lo && offset > e.baseOffset) {
        // Start at the batch holding `offset` inside a multi-batch record set.
        for (const b of batchesOf(e.buf)) {
          const last = b.baseOffset + b.lastOffsetDelta;
          if (last < offset) continue;
          if (bytes > 0 && bytes + b.size > maxBytes) return out;
          out.push(e.buf.subarray(b.position, b.position + b.size));
          bytes += b.size;
        }
        continue;
      }
      if (bytes > 0 && bytes + e.buf.length > maxBytes) {
        // Whole record sets may overshoot; split to whole batches to stay under the limit.
        for (const b of batchesOf(e.buf)) {
          if (bytes > 0 && bytes + b.size > maxBytes) return out;
          out.push(e.buf.subarray(b.position, b.position + b.size));
          bytes += b.size;
        }
        return out;
      }
      out.push(e.buf);
      bytes += e.buf.length;
      if (bytes >= maxBytes) break;
    }
    return out;
  }

  /**
   * The cached entries that make up a committed extent, exactly (a flush writes a partition's
   * pending entries back to back), or undefined when the cache no longer holds all of them.
   */
  cachedExtent(extent: StoredExtent): Buffer[] | undefined {
    const cache = this.cache;
    const lo = firstIndex(cache, (e) => e.baseOffset >= extent.baseOffset);
    if (lo >= cache.length || cache[lo].baseOffset !== extent.baseOffset) return undefined;
    const out: Buffer[] = [];
    let bytes = 0;
    for (let i = lo; i < cache.length && bytes < extent.length; i++) {
      out.push(cache[i].buf);
      bytes += cache[i].buf.length;
      if (cache[i].lastOffset === extent.lastOffset) return bytes === extent.length ? out : undefined;
    }
    return undefined;
  }

  /** Index of the extent holding `offset`, or -1. */
  findExtent(offset: number): number {
    const i = firstIndex(this.extents, (e) => e.lastOffset >= offset);
    return i < this.extents.length && this.extents[i].baseOffset <= offset ? i : -1;
  }
}

/** Binary search: the first index whose item satisfies `pred` (false up to it, true from it on), or the length. */
function firstIndex<T>(items: readonly T[], pred: (item: T) => boolean): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pred(items[mid])) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
