// Catch-up reads (DESIGN.md §3 Fetch): a fetch whose offset lies well behind the high
// watermark is read by the proxy itself from the partition's segment objects, with range GETs
// through a block cache, so that read load scales with proxies rather than brokers. The tail,
// and anything uncertain, stays with the owning broker.
//
// Where the segments are comes from the partition checkpoints (/skiff/ckpt/<topicId>/<p>),
// read lazily, one `get` per partition when a fetch first names it, and kept (segments only)
// in a bounded LRU. No prefix watch: every checkpoint write (each changed partition, every
// checkpoint.ms) would stream its whole value, extents and producers included, to every proxy
// whether or not anyone reads that partition. A copy needs no invalidation to stay correct:
// segments are immutable and only ever appended (rolls) or dropped from the front
// (retention), so a stale copy can only miss new segments (the broker answers instead) or
// name a deleted one (the GET fails, the copy is dropped and the broker answers).
import type { Logger } from 'pino';
import type { MetaStore } from '../meta/meta-store.js';
import type { TopicRegistry } from '../meta/topics.js';
import { Keys } from '../meta/keys.js';
import { topicConfigValue } from '../meta/topic-config.js';
import { decodeCheckpoint } from '../broker/checkpoint.js';
import { BlockCache } from '../broker/block-cache.js';
import { ObjectNotFoundError, type ObjectStore } from '../storage/object-store.js';
import { decodeSegmentIndex, segmentIndexRange, type SegmentBlock, type SegmentRef } from '../storage/segment.js';
import { verifyExtent } from '../storage/wal-object.js';
import { batchesOf } from '../protocol/record-batch.js';

/** A copy is re-read at most this often per partition. */
const MIN_REFRESH_MS = 1000;
/** After the object store failed to open, the broker serves everything for this long. */
const STORE_RETRY_MS = 30_000;
/** Bound on the copies kept: one unit per partition plus one per segment (~200 bytes each). */
const MAX_KNOWN_WEIGHT = 100_000;

/** What the proxy knows of one partition's checkpoint. */
interface Known {
  /** Its segments when last read, oldest first. */
  segments: SegmentRef[];
  /** High watermark when it was read (the checkpoint's, or a later answer's). */
  readHw: number;
  readAt: number;
  /** Offsets one roll is expected to take: once the high watermark moved this far, re-read. */
  rollSpan: number;
  /** Latest high watermark a broker answer reported. */
  hw: number;
  /** The read under way, if any. */
  loading?: Promise<void>;
}

/** The segments a catch-up read may use: the one holding the offset, then older-than-tail ones. */
export interface CatchUpPlan {
  topicId: string;
  partition: number;
  segments: SegmentRef[];
}

export interface CatchUpRead {
  records: Buffer[];
  bytes: number;
  /** Last offset of the last batch read; -1 when none. */
  lastOffset: number;
}

export type FallbackReason = 'missing' | 'corrupt' | 'error';

/** A catch-up read that could not be served; the broker is asked instead. */
export class CatchUpError extends Error {
  constructor(
    readonly reason: FallbackReason,
    message: string,
  ) {
    super(message);
    this.name = 'CatchUpError';
  }
}

export class CatchUpReads {
  private readonly known = new Map<string, Known>();
  private weight = 0;
  private readonly blocks: BlockCache;
  private readonly reading = new Map<string, Promise<Buffer>>();
  private store?: Promise<ObjectStore>;
  private storeFailedAt = -Infinity;

  constructor(
    private readonly meta: MetaStore,
    private readonly topics: TopicRegistry,
    /** Opens the object store; called on the first catch-up read (the S3 SDK is large). */
    private readonly openStore: () => Promise<ObjectStore>,
    blockCacheBytes: number,
    private readonly log: Logger,
  ) {
    this.blocks = new BlockCache(blockCacheBytes);
  }

  /**
   * The segments to serve a fetch at `offset` from, or undefined when the broker should answer.
   * Never waits: a partition seen for the first time (or whose copy looks stale) is read in
   * the background and this fetch goes to the broker.
   *
   * The rule: only a segment with a newer segment after it is served here. Whatever follows
   * the newest segment is under segment.bytes (a larger WAL part rolls) and the newest segment
   * itself was written at most one segment.bytes or segment.ms ago, so the tail — the last
   * one to two segments' worth of data, where the broker's cache of recent batches answers —
   * is always the broker's.
   */
  plan(topicId: string, partition: number, offset: number): CatchUpPlan | undefined {
    if (Date.now() - this.storeFailedAt < STORE_RETRY_MS) return undefined;
    const key = `${topicId}/${partition}`;
    const k = this.known.get(key);
    if (!k) {
      void this.refresh(topicId, partition);
      return undefined;
    }
    this.known.delete(key);
    this.known.set(key, k);
    const segs = k.segments;
    const i = findSegment(segs, offset);
    if (i >= 0 && i < segs.length - 1 && segs[i].baseOffset <= offset) return { topicId, partition, segments: segs.slice(i, segs.length - 1) };
    // Below the first segment is below the log start: nothing newer would help.
    if ((segs.length === 0 || offset >= segs[segs.length - 1].baseOffset) && this.stale(k, topicId)) void this.refresh(topicId, partition);
    return undefined;
  }

  /**
   * A copy may miss segments rolled since it was read. It is re-read once the high watermark
   * moved by about one segment's worth of offsets (a roll by size) or segment.ms passed (a
   * roll by age), at most once a second; a consumer at the tail so costs one read per roll.
   */
  private stale(k: Known, topicId: string): boolean {
    const age = Date.now() - k.readAt;
    if (k.loading || age < MIN_REFRESH_MS) return false;
    const segmentMs = Number(topicConfigValue(this.topics.getById(topicId)?.config ?? {}, 'segment.ms'));
    return k.hw - k.readHw >= k.rollSpan || age >= segmentMs;
  }

  /** Notes the high watermark a broker reported for a partition. */
  observe(topicId: string, partition: number, hw: number): void {
    const k = this.known.get(`${topicId}/${partition}`);
    if (k && hw > k.hw) k.hw = hw;
  }

  /** Reads the partition's checkpoint again; resolves once the copy is updated (or the read failed). */
  refresh(topicId: string, partition: number): Promise<void> {
    const key = `${topicId}/${partition}`;
    let k = this.known.get(key);
    if (k?.loading) return k.loading;
    if (!k) {
      // A placeholder, so that concurrent fetches start one read, not one each.
      k = { segments: [], readHw: 0, readAt: Date.now(), rollSpan: 1, hw: -1 };
      this.remember(key, k);
    }
    const old = k;
    old.loading = this.load(topicId, partition, old).then(
      (fresh) => {
        fresh.hw = Math.max(fresh.hw, old.hw);
        if (this.known.get(key) === old) this.remember(key, fresh);
      },
      (err: unknown) => {
        this.log.debug({ err, topicId, partition }, 'checkpoint read failed; the broker serves this partition');
        old.readAt = Date.now();
        old.loading = undefined;
      },
    );
    return old.loading;
  }

  private async load(topicId: string, partition: number, k: Known): Promise<Known> {
    const kv = await this.meta.get(Keys.ckpt(topicId, partition));
    const c = kv ? decodeCheckpoint(kv.value) : undefined;
    const segments = c?.segments ?? [];
    const last = segments[segments.length - 1];
    let walBytes = 0;
    for (const e of c?.extents ?? []) walBytes += e.length;
    const walOffsets = c && c.extents.length > 0 ? c.highWatermark - c.extents[0].baseOffset : 0;
    const segmentBytes = Number(topicConfigValue(this.topics.getById(topicId)?.config ?? {}, 'segment.bytes'));
    return {
      segments,
      readHw: Math.max(c?.highWatermark ?? 0, k.hw),
      readAt: Date.now(),
      // A roll by size takes about as many offsets as the newest segment holds, or, with none
      // yet, segment.bytes at the WAL part's bytes per offset.
      rollSpan: last ? last.lastOffset - last.baseOffset + 1 : walBytes > 0 ? Math.max(1, Math.ceil((segmentBytes * walOffsets) / walBytes)) : 1,
      hw: k.hw,
    };
  }

  private remember(key: string, k: Known): void {
    this.forget(key);
    this.known.set(key, k);
    this.weight += 1 + k.segments.length;
    for (const old of this.known.keys()) {
      if (this.weight <= MAX_KNOWN_WEIGHT) break;
      this.forget(old);
    }
  }

  private forget(key: string): void {
    const old = this.known.get(key);
    if (!old) return;
    this.known.delete(key);
    this.weight -= 1 + old.segments.length;
  }

  /**
   * Committed batches from `offset` out of the plan's segments, up to `maxBytes` (at least one
   * batch, KIP-74), cut exactly as the broker cuts a read from storage. Every block's CRC is
   * checked before it is served or cached. Rejects with CatchUpError when anything is off.
   */
  async read(plan: CatchUpPlan, offset: number, maxBytes: number): Promise<CatchUpRead> {
    const out: CatchUpRead = { records: [], bytes: 0, lastOffset: -1 };
    try {
      const store = await this.objectStore();
      for (const seg of plan.segments) {
        for (const blk of await this.index(store, seg)) {
          if (blk.lastOffset < offset) continue;
          const data = await this.block(store, seg.key, blk);
          for (const b of batchesOf(data)) {
            if (b.baseOffset + b.lastOffsetDelta < offset) continue;
            if (out.bytes > 0 && out.bytes + b.size > maxBytes) return out;
            out.records.push(data.subarray(b.position, b.position + b.size));
            out.bytes += b.size;
            out.lastOffset = b.baseOffset + b.lastOffsetDelta;
          }
          if (out.bytes >= maxBytes) return out;
        }
      }
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        // Retention or GC removed it: this copy is out of date.
        this.forget(`${plan.topicId}/${plan.partition}`);
        throw new CatchUpError('missing', err.message);
      }
      if (err instanceof CatchUpError) throw err;
      throw new CatchUpError('error', (err as Error).message);
    }
    return out;
  }

  /** The segment's block index; its raw bytes share the block cache's budget. */
  private async index(store: ObjectStore, seg: SegmentRef): Promise<SegmentBlock[]> {
    const raw = await this.cached(`${seg.key}#index`, async () => {
      const data = await store.get(seg.key, segmentIndexRange(seg));
      this.decodeIndex(seg, data); // checked before it is cached
      return data;
    });
    return this.decodeIndex(seg, raw);
  }

  private decodeIndex(seg: SegmentRef, raw: Buffer): SegmentBlock[] {
    try {
      return decodeSegmentIndex(raw);
    } catch (err) {
      throw new CatchUpError('corrupt', `unreadable index of ${seg.key}: ${(err as Error).message}`);
    }
  }

  private block(store: ObjectStore, key: string, blk: SegmentBlock): Promise<Buffer> {
    return this.cached(`${key}@${blk.position}`, async () => {
      const data = await store.get(key, { start: blk.position, end: blk.position + blk.length });
      if (!verifyExtent(blk, data)) throw new CatchUpError('corrupt', `checksum mismatch in ${key} at ${blk.position}`);
      return data;
    });
  }

  /**
   * A verified range from the block cache, or read once however many fetches want it at the
   * same time (consumers replaying a topic together ask for the same blocks).
   */
  private async cached(id: string, read: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.blocks.get(id);
    if (hit) return hit;
    let p = this.reading.get(id);
    if (!p) {
      p = read().finally(() => this.reading.delete(id));
      this.reading.set(id, p);
      const data = await p;
      this.blocks.set(id, data);
      return data;
    }
    return p;
  }

  private objectStore(): Promise<ObjectStore> {
    if (!this.store) {
      this.store = this.openStore();
      this.store.catch((err) => {
        this.log.warn({ err }, 'object store unavailable; brokers serve catch-up reads for now');
        this.storeFailedAt = Date.now();
        this.store = undefined;
      });
    }
    return this.store;
  }

  async close(): Promise<void> {
    const s = this.store;
    this.store = undefined;
    await (await s?.catch(() => undefined))?.close();
  }
}

/** Index of the segment holding `offset`, else of the first one after it, else -1. */
function findSegment(s: SegmentRef[], offset: number): number {
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s[mid].lastOffset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo < s.length ? lo : -1;
}
