// The broker: owns partitions, validates and appends produced batches, serves committed
// data from its tail cache or from object storage, checkpoints partitions, and hosts the
// group coordinator. It keeps no data of its own: everything durable is in the
// ObjectStore and the MetaStore, so any broker can take a partition over.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ObjectStore } from '../storage/object-store.js';
import type { MetaStore, Lease, Compare, KeyValue, Op, Watch } from '../meta/meta-store.js';
import { decodeAssignment, parseUnit, unitOfKey } from './assignments.js';
import { HW_SUBJECT, type Bus } from '../bus/bus.js';
import { Keys } from '../meta/keys.js';
import type { TopicRecord, TopicRegistry } from '../meta/topics.js';
import { ErrorCode } from '../protocol/errors.js';
import { BatchError, batchesOf, recordTimestamps, validateBatches } from '../protocol/record-batch.js';
import { decodeCommitRecord, verifyExtent, type Extent } from '../storage/wal-object.js';
import { SegmentBuilder, decodeSegmentIndex, segmentIndexRange, segmentKey, type SegmentBlock, type SegmentRef } from '../storage/segment.js';
import { Partition, PartitionUnavailableError, type Entry, type PartitionState, type StoredExtent } from './partition.js';
import { Flusher, FencedError, CommitOutcomeUnknownError } from './flusher.js';
import { brokerMetrics as m } from './metrics.js';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.js';
import { topicConfigValue } from '../meta/topic-config.js';
import { BlockCache } from './block-cache.js';
import type {
  BrokerClient,
  EpochEndResult,
  FetchInput,
  FetchResult,
  ListOffsetResult,
  PartitionStatus,
  ProduceResult,
} from './broker-client.js';

export interface BrokerConfig {
  brokerId: number;
  flushMs: number;
  flushBytes: number;
  flushMaxInflight: number;
  /** Adaptive batching: least time between flushes started because no write was in progress (Flusher). */
  flushMinMs?: number;
  /** Hedged WAL writes: the least time before a slow write gets a second copy (Flusher); 0, never. */
  putHedgeMs?: number;
  checkpointMs: number;
  cacheBytes: number;
  blockCacheBytes: number;
  /** Largest record set accepted in one produce partition (Kafka's message.max.bytes). */
  maxMessageBytes: number;
  leaseTtlSeconds: number;
  /** Read/verify unit inside segment objects. */
  segmentBlockBytes: number;
  /** How often partitions are checked for segment rolling and retention. */
  maintenanceMs: number;
  /** How often unreferenced objects are looked for; 0 disables (cluster: only the controller). */
  gcIntervalMs: number;
  /** Unreferenced objects younger than this are kept: they may be a flush about to commit. */
  gcGraceMs: number;
  /** 'all': own every partition (embedded); 'assigned': own what the controller assigns. */
  ownership: 'all' | 'assigned';
  /** Where proxies reach this broker (cluster mode), recorded in its registration. */
  advertise?: { host: string; port: number; httpPort: number };
}

/** The tail cache never makes a segment roll smaller than this (segmentBytesOf). */
const MIN_CAPPED_SEGMENT_BYTES = 1 << 20;
/** Above this many WAL extents a partition rolls a segment whatever segment.bytes says. */
const MAX_WAL_EXTENTS = 2000;
/** Bytes a segment roll indexes between two turns of the event loop. */
const ROLL_SLICE_BYTES = 4 << 20;
/** Operations per MetaStore transaction when moving partitions (etcd's default limit is 128). */
const TXN_OPS = 100;

export interface BrokerDeps {
  store: ObjectStore;
  meta: MetaStore;
  bus: Bus;
  topics: TopicRegistry;
  log: Logger;
}

export class Broker implements BrokerClient {
  private readonly partitionsByKey = new Map<string, Partition>();
  private flusher!: Flusher;
  private lease!: Lease;
  private regRevision = 0;
  private checkpointTimer?: NodeJS.Timeout;
  private maintenanceTimer?: NodeJS.Timeout;
  private gcTimer?: NodeJS.Timeout;
  /** Set by leave(): no partition is opened or kept here any more. */
  private leaving = false;
  /** The maintenance pass running, if any. */
  private maintaining?: Promise<void>;
  /** A partition filled a segment during a maintenance pass: run another right after it. */
  private maintainAgain = false;
  private maintainImmediate?: NodeJS.Immediate;
  /** When a pass last failed: until maintenanceMs later only the timer retries (no storm). */
  private maintainFailedAt = -Infinity;
  private lockWatch?: Watch;
  private assignWatch?: Watch;
  private readonly lockWaiters = new Map<string, () => void>();
  private syncing: Promise<void> = Promise.resolve();
  private syncTimer?: NodeJS.Timeout;
  /** High watermark each partition's last successful checkpoint covers, kept after it moves away. */
  private readonly checkpointed = new Map<string, number>();
  /** Committed entries in commit order across partitions, for the cache budget. */
  private cacheQueue: ({ p: Partition; e: Entry } | undefined)[] = [];
  private cacheHead = 0;
  private cacheBytes = 0;
  /** Partitions holding at least a full segment of WAL extents, with their segment.bytes. */
  private readonly rollDue = new Map<Partition, number>();
  private blocks: BlockCache;
  /** Committed WAL records not yet covered by checkpoints: name → partition key → last offset. */
  private walRecords = new Map<string, Map<string, number>>();
  private producerIds = { next: 0n, end: 0n };
  private unsubscribeTopics?: () => void;
  private fenced = false;
  private closing = false;
  private readonly log: Logger;
  /** In cluster mode only the controller collects garbage. */
  gcAllowed: () => boolean = () => true;

  constructor(
    private readonly cfg: BrokerConfig,
    private readonly deps: BrokerDeps,
  ) {
    this.log = deps.log.child({ component: 'broker', brokerId: cfg.brokerId });
    this.blocks = new BlockCache(cfg.blockCacheBytes);
  }

  async start(): Promise<void> {
    const { meta } = this.deps;
    this.lease = await meta.grantLease(this.cfg.leaseTtlSeconds);
    this.lease.onLost(() => this.fence(new FencedError('broker lease lost')));
    this.regRevision = await meta.put(
      Keys.broker(this.cfg.brokerId),
      Buffer.from(JSON.stringify({ id: this.cfg.brokerId, ...this.cfg.advertise, startedAt: Date.now() })),
      { lease: this.lease.id },
    );
    this.flusher = new Flusher({
      brokerId: this.cfg.brokerId,
      flushMs: this.cfg.flushMs,
      flushBytes: this.cfg.flushBytes,
      maxInflight: this.cfg.flushMaxInflight,
      minIntervalMs: this.cfg.flushMinMs,
      hedgeMs: this.cfg.putHedgeMs,
      store: this.deps.store,
      meta,
      log: this.log,
      fence: () => this.fenceCompares(),
      onFenced: (err) => this.fence(err),
    });
    this.flusher.onCommitted = (parts, name) => this.afterCommit(parts, name);

    this.lockWatch = await meta.watchPrefix('/skiff/locks/', (ev) => {
      if (ev.type === 'delete') this.lockWaiters.get(ev.key)?.();
    });
    if (this.cfg.ownership === 'all') {
      const wal = await this.loadWalRecords();
      for (const t of this.deps.topics.list()) await this.openTopic(t, wal);
      this.unsubscribeTopics = this.deps.topics.onChange((kind, t) => void this.onTopicChange(kind, t));
    } else {
      this.assignWatch = await meta.watchPrefix(Keys.assignPrefix, (ev) => {
        // Kept current here, not only per sync pass: a lock wait must stop as soon as the
        // partition is assigned elsewhere, even while a pass is still running.
        const u = parseUnit(unitOfKey(ev.key));
        if (u.kind === 'partition') {
          const key = `${u.topicId}/${u.partition}`;
          const a = ev.type === 'put' && ev.value ? decodeAssignment(ev.value) : undefined;
          if (a && a.broker === this.cfg.brokerId) this.assigned.set(key, a.epoch);
          else this.assigned.delete(key);
        }
        this.scheduleSync();
      });
      this.unsubscribeTopics = this.deps.topics.onChange((kind, t) => kind === 'deleted' && void this.dropTopic(t));
      await this.syncAssignments();
    }
    this.checkpointTimer = setInterval(() => void this.checkpoint().catch((err) => this.log.warn({ err }, 'checkpoint failed')), this.cfg.checkpointMs);
    this.maintenanceTimer = setInterval(() => {
      if (!this.maintaining) void this.maintain();
    }, this.cfg.maintenanceMs);
    if (this.cfg.gcIntervalMs > 0) {
      this.gcTimer = setInterval(() => {
        if (this.gcAllowed()) void this.collectGarbage().catch((err) => this.log.warn({ err }, 'garbage collection failed'));
      }, this.cfg.gcIntervalMs);
    }
    this.log.info({ partitions: this.partitionsByKey.size }, 'broker started');
  }

  private fenceCompares(): Compare[] {
    return [{ key: Keys.broker(this.cfg.brokerId), target: 'modRevision', op: '==', value: this.regRevision }];
  }

  private fence(err: Error): void {
    if (this.fenced || this.closing) return;
    this.fenced = true;
    this.log.error({ err }, 'broker fenced: dropping unacknowledged writes');
    // Writes whose commit was sent without an answer may still apply: their producers are told
    // REQUEST_TIMED_OUT ("possibly persisted"); the rest will never be committed.
    const inDoubt = this.flusher?.abort() ?? new Map<Partition, number>();
    for (const p of this.partitionsByKey.values()) {
      const through = inDoubt.get(p);
      p.abandonUncommitted(err, through === undefined ? undefined : { through, err: new CommitOutcomeUnknownError() });
      p.transition('Fenced', err.message);
    }
    this.onFenced?.(err);
  }

  /** Where proxies reach this broker; set before start() once the listener has its port. */
  setAdvertise(advertise: NonNullable<BrokerConfig['advertise']>): void {
    this.cfg.advertise = advertise;
  }

  /** Called once when the broker finds itself fenced; cluster mode exits and is restarted. */
  onFenced?: (err: Error) => void;

  get isFenced(): boolean {
    return this.fenced;
  }

  /** The lease the registration, the locks and (for the controller) the election hang on. */
  get registrationLease(): Lease {
    return this.lease;
  }

  // ---- partitions -------------------------------------------------------------------------

  private async loadWalRecords(): Promise<Map<string, { key: string; extent: Extent }[]>> {
    const byPartition = new Map<string, { key: string; extent: Extent }[]>();
    for (const kv of await this.deps.meta.getPrefix(Keys.walPrefix)) {
      let rec: ReturnType<typeof decodeCommitRecord>;
      try {
        rec = decodeCommitRecord(kv.value);
      } catch (err) {
        this.log.error({ err, key: kv.key }, 'unreadable WAL commit record skipped');
        continue;
      }
      const name = kv.key.slice(kv.key.lastIndexOf('/') + 1);
      const covers = new Map<string, number>();
      for (const e of rec.extents) {
        const k = `${e.topicId}/${e.partition}`;
        let list = byPartition.get(k);
        if (!list) byPartition.set(k, (list = []));
        list.push({ key: rec.objectKey, extent: e });
        covers.set(k, e.lastOffset);
      }
      if (kv.key.startsWith(Keys.walOf(this.cfg.brokerId))) this.walRecords.set(name, covers);
    }
    return byPartition;
  }

  private async openTopic(t: TopicRecord, wal?: Map<string, { key: string; extent: Extent }[]>): Promise<void> {
    const opened: Partition[] = [];
    for (let i = 0; i < t.partitions; i++) {
      if (this.partitionsByKey.has(`${t.id}/${i}`)) continue;
      const p = this.newPartition(t.id, t.name, i, 0);
      if (await this.lock(p, () => true)) opened.push(p);
    }
    if (opened.length === 0) return;
    const records = wal ?? (await this.loadWalRecords());
    for (const p of opened) await this.recover(p, records);
  }

  private newPartition(topicId: string, topic: string, index: number, epoch: number): Partition {
    const p = new Partition(topicId, topic, index, this.log, (_p, from, to) => this.counted(from, to));
    p.leaderEpoch = epoch;
    m.partitions.inc({ state: 'Offline' });
    this.partitionsByKey.set(p.key, p);
    return p;
  }

  private counted(from: PartitionState, to: PartitionState): void {
    m.partitions.dec({ state: from });
    m.partitions.inc({ state: to });
    m.transitions.inc({ from, to });
    if (to === 'Online') for (const w of this.onlineWaiters) w();
  }

  private onlineWaiters = new Set<() => void>();

  whenOnline(topicId: string, count: number, timeoutMs: number): Promise<boolean> {
    const ready = () => {
      for (let i = 0; i < count; i++) if (this.partition(topicId, i)?.state !== 'Online') return false;
      return true;
    };
    if (ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.onlineWaiters.delete(check);
        resolve(ok);
      };
      const check = () => ready() && done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.onlineWaiters.add(check);
    });
  }

  /**
   * Acquiring, for many partitions at once (a rebalance moves hundreds): one transaction per
   * chunk takes every lock of the chunk if all are free; a chunk where some lock is still held
   * (its previous owner is draining, or dead with its lease running) waits lock by lock.
   */
  private async lockAll(ps: Partition[]): Promise<Partition[]> {
    const me = Buffer.from(String(this.cfg.brokerId));
    const stillMine = (p: Partition) => !this.fenced && !this.closing && this.assigned.has(p.key);
    const taken: Partition[] = [];
    const contended: Partition[] = [];
    for (let i = 0; i < ps.length; i += TXN_OPS) {
      // Those no longer ours go through lock() too, which turns them Offline at once.
      const chunk = ps.slice(i, i + TXN_OPS);
      const free = chunk.filter(stillMine);
      contended.push(...chunk.filter((p) => !stillMine(p)));
      if (free.length === 0) continue;
      for (const p of free) p.transition('Acquiring');
      const keys = free.map((p) => Keys.lock(p.topicId, p.index));
      const res = await this.deps.meta.txn(
        keys.map((key): Compare => ({ key, target: 'exists', value: false })),
        keys.map((key): Op => ({ type: 'put', key, value: me, lease: this.lease.id })),
      );
      (res.succeeded ? taken : contended).push(...free);
    }
    const waited = await Promise.all(contended.map(async (p) => ((await this.lock(p, () => stillMine(p))) ? p : undefined)));
    return [...taken, ...waited.filter((p): p is Partition => p !== undefined)];
  }

  /** The checkpoints of `ps`, read per topic in one range read when many are wanted. */
  private async loadCheckpoints(ps: Partition[]): Promise<Map<string, KeyValue | null>> {
    const out = new Map<string, KeyValue | null>();
    const byTopic = new Map<string, Partition[]>();
    for (const p of ps) byTopic.set(p.topicId, [...(byTopic.get(p.topicId) ?? []), p]);
    await Promise.all(
      [...byTopic].map(async ([topicId, list]) => {
        if (list.length < 8) return; // read one by one in recover()
        const found = new Map((await this.deps.meta.getPrefix(Keys.ckptOfTopic(topicId))).map((kv) => [kv.key, kv]));
        for (const p of list) out.set(p.key, found.get(Keys.ckpt(p.topicId, p.index)) ?? null);
      }),
    );
    return out;
  }

  /**
   * Draining many partitions at once: one flush, then per chunk one transaction that writes
   * their checkpoints and releases their locks, fenced like writeCheckpoint. A chunk that
   * fails its compares (a lock already lost) goes partition by partition.
   */
  private async drainAll(ps: Partition[], why: string): Promise<void> {
    if (ps.length === 0) return;
    await Promise.all(
      ps.map((p) =>
        p.exclusive(async () => {
          if (p.state === 'Online') p.transition('Draining', why);
        }),
      ),
    );
    await this.flusher.drain();
    const me = Buffer.from(String(this.cfg.brokerId));
    const slow: Partition[] = [];
    // Two operations per partition within etcd's default limit of 128 per transaction.
    for (let i = 0; i < ps.length; i += TXN_OPS / 2) {
      const chunk = ps.slice(i, i + TXN_OPS / 2).filter((p) => p.state === 'Draining');
      if (chunk.length === 0 || this.fenced) {
        slow.push(...chunk);
        continue;
      }
      const hws = chunk.map((p) => p.highWatermark);
      const res = await this.deps.meta
        .txn(
          [...this.fenceCompares(), ...chunk.map((p): Compare => ({ key: Keys.lock(p.topicId, p.index), target: 'value', op: '==', value: me }))],
          chunk.flatMap((p): Op[] => [
            { type: 'put', key: Keys.ckpt(p.topicId, p.index), value: this.encodeCheckpointOf(p) },
            { type: 'delete', key: Keys.lock(p.topicId, p.index) },
          ]),
        )
        .catch((err) => {
          this.log.warn({ err }, 'batched drain failed; draining one by one');
          return { succeeded: false };
        });
      if (!res.succeeded) {
        slow.push(...chunk);
        continue;
      }
      m.checkpoints.inc(chunk.length);
      chunk.forEach((p, j) => {
        this.checkpointed.set(p.key, hws[j]);
        p.abandonUncommitted(new PartitionUnavailableError('Draining'));
        p.transition('Offline', why);
        this.forget(p);
      });
    }
    // Whatever was not released above (fenced, lock lost, not Online when the drain began).
    const rest = ps.filter((p) => this.partitionsByKey.get(p.key) === p);
    await Promise.all(rest.map((p) => p.exclusive(() => this.drainPartition(p, why))));
  }

  /**
   * Acquiring: takes the partition's write lock (a key bound to this broker's lease), waiting
   * while another broker holds it — it is draining, or dead and its lease about to expire —
   * for as long as `stillMine()` says the partition is ours.
   */
  private async lock(p: Partition, stillMine: () => boolean): Promise<boolean> {
    const { meta } = this.deps;
    p.transition('Acquiring');
    const lockKey = Keys.lock(p.topicId, p.index);
    const me = Buffer.from(String(this.cfg.brokerId));
    for (;;) {
      if (this.fenced || this.closing || !stillMine()) break;
      const freed = new Promise<void>((resolve) => {
        this.lockWaiters.set(lockKey, resolve);
        setTimeout(resolve, 1000); // a missed watch event only costs a second
      });
      const res = await meta.txn([{ key: lockKey, target: 'exists', value: false }], [{ type: 'put', key: lockKey, value: me, lease: this.lease.id }]);
      if (res.succeeded || (await meta.get(lockKey))?.value.equals(me)) {
        this.lockWaiters.delete(lockKey);
        return true;
      }
      await freed;
      this.lockWaiters.delete(lockKey);
    }
    p.transition('Offline', 'partition no longer assigned here');
    this.forget(p);
    return false;
  }

  /** Recovering → Online: rebuild from the checkpoint and the WAL records committed after it. */
  private async recover(p: Partition, wal: Map<string, { key: string; extent: Extent }[]>, checkpoint?: KeyValue | null): Promise<void> {
    const { meta } = this.deps;
    const epoch = p.leaderEpoch;
    p.transition('Recovering');
    // null: read beforehand and absent; undefined: not read yet.
    const ck = checkpoint === undefined ? await meta.get(Keys.ckpt(p.topicId, p.index)) : (checkpoint ?? undefined);
    if (ck) {
      const c = decodeCheckpoint(ck.value);
      p.logStartOffset = c.logStartOffset;
      p.highWatermark = c.highWatermark;
      p.leaderEpoch = Math.max(c.leaderEpoch, epoch);
      p.segments = c.segments;
      for (const e of c.extents) p.addExtent(e, Date.now());
      for (const b of c.producers) p.producers.record(b, false);
    }
    const replay = (wal.get(p.key) ?? []).sort((a, b) => a.extent.baseOffset - b.extent.baseOffset);
    for (const { key, extent: e } of replay) {
      if (e.lastOffset < p.highWatermark) continue;
      if (e.baseOffset !== p.highWatermark) {
        this.log.error({ topic: p.topic, partition: p.index, expected: p.highWatermark, found: e.baseOffset }, 'gap in committed WAL records');
      }
      p.addExtent({ key, position: e.position, length: e.length, baseOffset: e.baseOffset, lastOffset: e.lastOffset, maxTimestamp: e.maxTimestamp, crc: e.crc }, Date.now());
      for (const b of e.producers) p.producers.record(b, false);
      p.highWatermark = e.lastOffset + 1;
      p.dirty = true;
    }
    p.nextOffset = p.highWatermark;
    p.transition('Online');
  }

  private forget(p: Partition): void {
    if (this.partitionsByKey.get(p.key) !== p) return;
    this.partitionsByKey.delete(p.key);
    this.rollDue.delete(p);
    m.partitions.dec({ state: p.state });
    p.cache = [];
  }

  // ---- assignments (cluster mode) ---------------------------------------------------------

  private scheduleSync(): void {
    if (this.syncTimer || this.closing) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.syncAssignments();
    }, 10);
  }

  /** Opens partitions assigned here and drains those assigned elsewhere; one pass at a time. */
  syncAssignments(): Promise<void> {
    this.syncing = this.syncing.then(() => this.syncOnce()).catch((err) => {
      this.log.warn({ err }, 'assignment sync failed; retrying');
      setTimeout(() => this.scheduleSync(), 200);
    });
    return this.syncing;
  }

  private assigned = new Map<string, number>();

  private async syncOnce(): Promise<void> {
    if (this.fenced || this.closing) return;
    const mine = new Map<string, number>();
    for (const kv of await this.deps.meta.getPrefix(Keys.assignPrefix)) {
      const u = parseUnit(unitOfKey(kv.key));
      const a = decodeAssignment(kv.value);
      if (u.kind === 'partition' && a.broker === this.cfg.brokerId && !this.leaving) mine.set(`${u.topicId}/${u.partition}`, a.epoch);
    }
    this.assigned = mine;
    const leaving = [...this.partitionsByKey.values()].filter((p) => !mine.has(p.key));
    const arriving: Partition[] = [];
    for (const [key, epoch] of mine) {
      if (this.partitionsByKey.has(key)) continue;
      const cut = key.lastIndexOf('/');
      const topicId = key.slice(0, cut);
      const t = this.deps.topics.getById(topicId);
      if (!t) continue;
      arriving.push(this.newPartition(topicId, t.name, Number(key.slice(cut + 1)), epoch));
    }
    const started = performance.now();
    await this.drainAll(leaving, 'assigned to another broker');
    const drainedAt = performance.now();
    const locked = await this.lockAll(arriving);
    const lockedAt = performance.now();
    if (locked.length > 0) {
      // WAL records and checkpoints are read after the locks are ours: they include the
      // previous owner's last commits.
      const [wal, checkpoints] = await Promise.all([this.loadWalRecords(), this.loadCheckpoints(locked)]);
      for (const p of locked) await this.recover(p, wal, checkpoints.get(p.key));
    }
    if (locked.length === 0 && leaving.length === 0) return;
    const ms = (t: number) => Math.round(t);
    this.log.info(
      { opened: locked.length, drained: leaving.length, owned: this.partitionsByKey.size, drainMs: ms(drainedAt - started), lockMs: ms(lockedAt - drainedAt), recoverMs: ms(performance.now() - lockedAt) },
      'assignments applied',
    );
  }

  /** Draining → Offline: commit what is pending, checkpoint, release the lock. */
  private async drainPartition(p: Partition, why: string): Promise<void> {
    if (p.state === 'Online' || p.state === 'Draining') {
      p.transition('Draining', why);
      await this.flusher.drain();
      if (!this.fenced) {
        await this.writeCheckpoint(p).catch((err) => this.log.warn({ err, topic: p.topic, partition: p.index }, 'final checkpoint failed'));
      }
    }
    p.abandonUncommitted(new PartitionUnavailableError('Draining'));
    const lockKey = Keys.lock(p.topicId, p.index);
    await this.deps.meta
      .txn([{ key: lockKey, target: 'value', op: '==', value: Buffer.from(String(this.cfg.brokerId)) }], [{ type: 'delete', key: lockKey }])
      .catch((err) => this.log.warn({ err }, 'lock release failed; it expires with the lease'));
    p.transition('Offline', why);
    this.forget(p);
  }

  /**
   * SIGTERM in cluster mode: gives every partition up now, in bulk, while the controller
   * reassigns them, instead of waiting for the reassignment to reach this broker in waves.
   * Nothing is opened here any more.
   */
  async leave(): Promise<void> {
    this.leaving = true;
    await this.syncAssignments();
  }

  /** Partitions owned right now (cluster mode drains until this reaches zero). */
  get ownedCount(): number {
    return this.partitionsByKey.size;
  }

  private async onTopicChange(kind: 'created' | 'deleted' | 'updated', t: TopicRecord): Promise<void> {
    try {
      if (kind === 'deleted') await this.dropTopic(t);
      else await this.openTopic(t);
    } catch (err) {
      this.log.error({ err, topic: t.name, kind }, 'topic change not applied');
    }
  }

  private async dropTopic(t: TopicRecord): Promise<void> {
    const { meta } = this.deps;
    for (const p of [...this.partitionsByKey.values()]) {
      if (p.topicId !== t.id) continue;
      p.abandonUncommitted(new PartitionUnavailableError('Offline'));
      p.transition('Offline', 'topic deleted');
      this.forget(p);
    }
    await meta.deletePrefix(Keys.ckptOfTopic(t.id));
    await meta.deletePrefix(`/skiff/locks/${t.id}/`);
  }

  private partition(topicId: string, index: number): Partition | undefined {
    return this.partitionsByKey.get(`${topicId}/${index}`);
  }

  /**
   * The error for a partition this broker does not host. As in Kafka: one that exists lives on
   * another broker, or is on its way here (NOT_LEADER_OR_FOLLOWER: clients refresh metadata and
   * retry); only a topic or partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION.
   */
  private notHosted(topicId: string, index: number): number {
    const t = this.deps.topics.getById(topicId);
    return t && index >= 0 && index < t.partitions ? ErrorCode.NOT_LEADER_OR_FOLLOWER : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
  }

  // ---- produce ----------------------------------------------------------------------------

  async produce(topicId: string, index: number, records: Buffer, acks: number, timeoutMs: number): Promise<ProduceResult> {
    const p = this.partition(topicId, index);
    if (!p) return { errorCode: this.notHosted(topicId, index), baseOffset: -1, logStartOffset: -1 };
    if (p.state !== 'Online') return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, baseOffset: -1, logStartOffset: -1 };
    if (records.length > this.cfg.maxMessageBytes) {
      return { errorCode: ErrorCode.MESSAGE_TOO_LARGE, baseOffset: -1, logStartOffset: -1, errorMessage: `record set of ${records.length} bytes exceeds ${this.cfg.maxMessageBytes}` };
    }
    let batches;
    try {
      batches = validateBatches(records);
    } catch (err) {
      const e = err as BatchError;
      const errorCode = e.problem === 'magic' ? ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT : e.problem === 'corrupt' ? ErrorCode.CORRUPT_MESSAGE : ErrorCode.INVALID_RECORD;
      this.log.warn({ topic: p.topic, partition: index, err: e.message }, 'rejected record set');
      return { errorCode, baseOffset: -1, logStartOffset: p.logStartOffset, errorMessage: e.message };
    }
    // Idempotence: one verdict per request, from its first batch (clients send one batch per partition).
    const first = batches[0];
    if (first.producerId >= 0n) {
      const last = batches[batches.length - 1];
      const v = p.producers.check(first.producerId, first.producerEpoch, first.baseSequence, last.baseSequence + last.lastOffsetDelta);
      if (v.kind === 'duplicate') {
        if (acks === -1) await this.awaitCommit(p, v.lastOffset, timeoutMs);
        return { errorCode: ErrorCode.NONE, baseOffset: v.baseOffset, logStartOffset: p.logStartOffset };
      }
      if (v.kind === 'outOfOrder' && !v.live) {
        // The first batch this owner sees from the producer skips sequence numbers: the batch
        // before it was most likely refused while the partition moved here (NOT_LEADER), and
        // its retry is on the way. Clients send to the proxy, which hides the move, so the two
        // can straddle it. OUT_OF_ORDER_SEQUENCE_NUMBER would make librdkafka bump its epoch and
        // renumber its unacknowledged batches, duplicating any that had been written; a
        // retriable "not written" answer lets the retry come first.
        return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, baseOffset: -1, logStartOffset: p.logStartOffset, errorMessage: 'sequence gap from a producer not yet seen since this partition opened here' };
      }
      if (v.kind !== 'ok') {
        const errorCode =
          v.kind === 'outOfOrder' ? ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER : v.kind === 'unknownProducer' ? ErrorCode.UNKNOWN_PRODUCER_ID : ErrorCode.INVALID_PRODUCER_EPOCH;
        return { errorCode, baseOffset: -1, logStartOffset: p.logStartOffset };
      }
    }
    const entry = p.append(records, batches);
    let count = 0;
    for (const b of batches) count += b.recordsCount;
    m.bytesIn.inc(records.length);
    m.recordsIn.inc(count);
    this.flusher.appended(p, records.length);
    if (acks === -1) {
      try {
        await this.awaitCommit(p, entry.lastOffset, timeoutMs);
      } catch (err) {
        // Possibly persisted (a timeout, or a commit whose outcome is unknown): the client must
        // retry with the same sequence numbers; NOT_LEADER_OR_FOLLOWER would say "not written".
        const errorCode = err instanceof TimeoutError || err instanceof CommitOutcomeUnknownError ? ErrorCode.REQUEST_TIMED_OUT : ErrorCode.NOT_LEADER_OR_FOLLOWER;
        return { errorCode, baseOffset: -1, logStartOffset: p.logStartOffset, errorMessage: (err as Error).message };
      }
    }
    return { errorCode: ErrorCode.NONE, baseOffset: entry.baseOffset, logStartOffset: p.logStartOffset };
  }

  private awaitCommit(p: Partition, offset: number, timeoutMs: number): Promise<void> {
    const wait = p.waitCommitted(offset);
    if (offset < p.highWatermark) return wait;
    let timer: NodeJS.Timeout;
    return Promise.race([
      wait,
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`not committed within ${timeoutMs} ms`)), Math.max(timeoutMs, 1));
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private afterCommit(parts: { partition: Partition; entries: Entry[] }[], walName: string): void {
    const covers = new Map<string, number>();
    // One notification per commit, listing (topic id, partition, high watermark) triples.
    const note = Buffer.allocUnsafe(parts.length * 28);
    let at = 0;
    // Whether a partition now holds a full segment of WAL extents (segment.bytes read once per
    // topic: a commit may list a thousand partitions of the same one).
    let full = false;
    let segTopic = '';
    let segBytes = Infinity;
    for (const { partition: p, entries } of parts) {
      covers.set(p.key, p.highWatermark - 1);
      if (p.topicId !== segTopic) {
        segTopic = p.topicId;
        segBytes = this.segmentBytesOf(p);
      }
      if (p.walBytes >= segBytes) {
        full = true;
        this.rollDue.set(p, segBytes);
      }
      at += note.write(p.topicId.replace(/-/g, ''), at, 16, 'hex');
      at = note.writeInt32BE(p.index, at);
      at = note.writeBigInt64BE(BigInt(p.highWatermark), at);
      for (const e of entries) {
        this.cacheQueue.push({ p, e });
        this.cacheBytes += e.buf.length;
      }
    }
    this.walRecords.set(walName, covers);
    this.trimCache();
    // A full segment rolls now rather than at the next maintenance tick: under load the tail
    // cache would otherwise have dropped its oldest batches, and the roll would read them back.
    if (full) {
      m.rollBacklogBytes.set(this.rollBacklogBytes());
      this.maintainSoon();
    }
    this.deps.bus.publish(`${HW_SUBJECT}.${this.cfg.brokerId}`, note);
  }

  private trimCache(): void {
    while (this.cacheBytes > this.cfg.cacheBytes && this.cacheHead < this.cacheQueue.length) {
      const { p, e } = this.cacheQueue[this.cacheHead]!;
      // Release the evicted batch now, not when the queue is next compacted.
      this.cacheQueue[this.cacheHead++] = undefined;
      this.cacheBytes -= e.buf.length;
      if (p.cache[0] === e) p.cache.shift();
    }
    if (this.cacheHead > 4096 && this.cacheHead * 2 > this.cacheQueue.length) {
      this.cacheQueue = this.cacheQueue.slice(this.cacheHead);
      this.cacheHead = 0;
    }
    m.cacheBytes.set(this.cacheBytes);
  }

  unflushedBytes(): number {
    return this.flusher?.unflushedBytes ?? 0;
  }

  /**
   * WAL bytes beyond one full segment in the partitions waiting for a roll. Rolls write every
   * byte a second time; under sustained load at the disk's limit they fell behind, the backlog
   * grew without bound and every roll read its batches back from storage (the tail cache had
   * moved on). Producers are held back above `max-roll-backlog-bytes` instead.
   */
  rollBacklogBytes(): number {
    let n = 0;
    for (const [p, segBytes] of this.rollDue) {
      if (p.walBytes < segBytes || this.partitionsByKey.get(p.key) !== p) this.rollDue.delete(p);
      else n += p.walBytes - segBytes;
    }
    return n;
  }

  // ---- fetch ------------------------------------------------------------------------------

  async fetch(inputs: FetchInput[], budget: number): Promise<FetchResult[]> {
    const out: FetchResult[] = [];
    let remaining = budget;
    for (const i of inputs) {
      const p = this.partition(i.topicId, i.partition);
      if (!p) {
        out.push({ errorCode: this.notHosted(i.topicId, i.partition), highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, records: [], bytes: 0 });
        continue;
      }
      const base = { highWatermark: p.highWatermark, lastStableOffset: p.highWatermark, logStartOffset: p.logStartOffset };
      if (p.state !== 'Online' && p.state !== 'Draining') {
        out.push({ errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, ...base, records: [], bytes: 0 });
        continue;
      }
      if (i.fetchOffset < p.logStartOffset || i.fetchOffset > p.highWatermark) {
        out.push({ errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, ...base, records: [], bytes: 0 });
        continue;
      }
      // KIP-74: once something is in the response, later partitions only fill what is left.
      const limit = Math.min(i.maxBytes, remaining > 0 ? remaining : 0);
      if (limit <= 0 && budget - remaining > 0) {
        out.push({ errorCode: ErrorCode.NONE, ...base, records: [], bytes: 0 });
        continue;
      }
      try {
        const records = await this.read(p, i.fetchOffset, Math.max(limit, 1));
        let bytes = 0;
        for (const r of records) bytes += r.length;
        remaining -= bytes;
        out.push({ errorCode: ErrorCode.NONE, ...base, records, bytes });
      } catch (err) {
        this.log.error({ err, topic: p.topic, partition: p.index, offset: i.fetchOffset }, 'read failed');
        out.push({ errorCode: ErrorCode.KAFKA_STORAGE_ERROR, ...base, records: [], bytes: 0 });
      }
    }
    return out;
  }

  /** Committed batches from `offset`: the tail cache first, object storage otherwise. */
  private async read(p: Partition, offset: number, maxBytes: number): Promise<Buffer[]> {
    if (offset >= p.highWatermark) return [];
    const cached = p.readCache(offset, maxBytes);
    if (cached) {
      let n = 0;
      for (const c of cached) n += c.length;
      m.bytesOut.inc({ source: 'cache' }, n);
      return cached;
    }
    const out: Buffer[] = [];
    let bytes = 0;
    for await (const unit of this.units(p, offset)) {
      const data = await this.readUnit(unit);
      for (const b of batchesOf(data)) {
        if (b.baseOffset + b.lastOffsetDelta < offset) continue;
        if (bytes > 0 && bytes + b.size > maxBytes) return this.served(out, bytes);
        out.push(data.subarray(b.position, b.position + b.size));
        bytes += b.size;
      }
      if (bytes >= maxBytes) break;
    }
    return this.served(out, bytes);
  }

  /**
   * The verified read units of a partition from the one holding `offset` on: blocks of
   * segments, then WAL extents. Each unit is a byte range with its own CRC.
   */
  private async *units(p: Partition, offset: number): AsyncGenerator<StoredExtent> {
    let si = p.findSegment(offset);
    for (; si >= 0 && si < p.segments.length; si++) {
      const seg = p.segments[si];
      const blocks = await this.segmentBlocks(seg);
      for (const blk of blocks) {
        if (blk.lastOffset < offset) continue;
        yield { key: seg.key, ...blk };
      }
    }
    let idx = p.findExtent(offset);
    if (idx < 0) idx = p.extents.findIndex((e) => e.baseOffset > offset);
    for (; idx >= 0 && idx < p.extents.length; idx++) {
      if (p.extents[idx].baseOffset >= p.highWatermark) return;
      yield p.extents[idx];
    }
  }

  private served(out: Buffer[], bytes: number): Buffer[] {
    m.bytesOut.inc({ source: 'storage' }, bytes);
    return out;
  }

  private readonly segmentIndexes = new Map<string, SegmentBlock[]>();

  private async segmentBlocks(seg: SegmentRef): Promise<SegmentBlock[]> {
    const hit = this.segmentIndexes.get(seg.key);
    if (hit) return hit;
    let blocks: SegmentBlock[];
    try {
      blocks = decodeSegmentIndex(await this.deps.store.get(seg.key, segmentIndexRange(seg)));
    } catch (err) {
      m.corruptReads.inc();
      throw new CorruptDataError(`unreadable index of ${seg.key}: ${(err as Error).message}`);
    }
    if (this.segmentIndexes.size > 10_000) this.segmentIndexes.clear();
    this.segmentIndexes.set(seg.key, blocks);
    return blocks;
  }

  /** Reads one unit from storage (through the block cache) and checks its CRC; corrupt data is never served. */
  private async readUnit(ext: StoredExtent): Promise<Buffer> {
    const id = `${ext.key}@${ext.position}`;
    const hit = this.blocks.get(id);
    if (hit) return hit;
    const data = await this.deps.store.get(ext.key, { start: ext.position, end: ext.position + ext.length });
    if (!verifyExtent(ext, data)) {
      m.corruptReads.inc();
      m.storageReads.inc({ result: 'corrupt' });
      throw new CorruptDataError(`checksum mismatch in ${ext.key} at ${ext.position}`);
    }
    m.storageReads.inc({ result: 'ok' });
    this.blocks.set(id, data);
    return data;
  }

  // ---- offsets ----------------------------------------------------------------------------

  async listOffset(topicId: string, index: number, timestamp: number): Promise<ListOffsetResult> {
    const p = this.partition(topicId, index);
    if (!p) return { errorCode: this.notHosted(topicId, index), offset: -1, timestamp: -1, leaderEpoch: -1 };
    if (p.state !== 'Online') return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, offset: -1, timestamp: -1, leaderEpoch: -1 };
    const result = (offset: number, ts = -1) => ({ errorCode: ErrorCode.NONE, offset, timestamp: ts, leaderEpoch: p.leaderEpoch });
    if (timestamp === -1) return result(p.highWatermark);
    if (timestamp === -2 || timestamp === -4 || timestamp === -5) return result(p.logStartOffset);
    if (timestamp < -3) return { errorCode: ErrorCode.INVALID_REQUEST, offset: -1, timestamp: -1, leaderEpoch: -1 };
    // Every read unit carries its max timestamp: together they are the sparse time index.
    // -3 (KIP-734) asks for the record with the largest timestamp.
    let target = timestamp;
    if (timestamp === -3) {
      target = -1;
      for await (const u of this.units(p, p.logStartOffset)) if (u.maxTimestamp > target) target = u.maxTimestamp;
      if (target < 0) return result(-1);
    }
    for await (const u of this.units(p, p.logStartOffset)) {
      if (u.maxTimestamp < target) continue;
      const data = await this.readUnit(u);
      for (const b of batchesOf(data)) {
        if (b.maxTimestamp < target || b.baseOffset + b.lastOffsetDelta < p.logStartOffset) continue;
        try {
          for (const r of recordTimestamps(data, b)) {
            if (r.timestamp >= target && r.offset >= p.logStartOffset) return result(r.offset, r.timestamp);
          }
        } catch (err) {
          this.log.warn({ err, topic: p.topic, partition: p.index, offset: b.baseOffset }, 'records of a stored batch are unreadable');
        }
        // A batch whose codec the broker cannot read (zstd): answer with its start.
        return result(Math.max(b.baseOffset, p.logStartOffset), b.maxTimestamp);
      }
    }
    return result(-1);
  }

  async offsetForLeaderEpoch(topicId: string, index: number, leaderEpoch: number): Promise<EpochEndResult> {
    const p = this.partition(topicId, index);
    if (!p) return { errorCode: this.notHosted(topicId, index), leaderEpoch: -1, endOffset: -1 };
    if (p.state !== 'Online') return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, leaderEpoch: -1, endOffset: -1 };
    // One epoch per ownership; every epoch up to the current one ends at the high watermark.
    if (leaderEpoch > p.leaderEpoch) return { errorCode: ErrorCode.NONE, leaderEpoch: -1, endOffset: -1 };
    return { errorCode: ErrorCode.NONE, leaderEpoch: p.leaderEpoch, endOffset: p.highWatermark };
  }

  async deleteRecords(topicId: string, index: number, offset: number): Promise<{ errorCode: number; lowWatermark: number }> {
    const p = this.partition(topicId, index);
    if (!p) return { errorCode: this.notHosted(topicId, index), lowWatermark: -1 };
    if (p.state !== 'Online') return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, lowWatermark: -1 };
    const target = offset === -1 ? p.highWatermark : offset;
    if (target < 0 || target > p.highWatermark) return { errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, lowWatermark: p.logStartOffset };
    if (target > p.logStartOffset) await p.exclusive(() => this.moveLogStart(p, target));
    return { errorCode: ErrorCode.NONE, lowWatermark: p.logStartOffset };
  }

  async initProducerId(): Promise<{ producerId: bigint; producerEpoch: number }> {
    if (this.producerIds.next >= this.producerIds.end) {
      // Producer ids come in blocks reserved with a compare-and-swap, unique cluster-wide.
      for (;;) {
        const kv = await this.deps.meta.get(Keys.producerIdBlock);
        const start = kv ? BigInt(kv.value.toString()) : 1000n;
        const end = start + 1000n;
        const res = await this.deps.meta.txn(
          kv ? [{ key: Keys.producerIdBlock, target: 'modRevision', op: '==', value: kv.modRevision }] : [{ key: Keys.producerIdBlock, target: 'exists', value: false }],
          [{ type: 'put', key: Keys.producerIdBlock, value: Buffer.from(String(end)) }],
        );
        if (res.succeeded) {
          this.producerIds = { next: start, end };
          break;
        }
      }
    }
    return { producerId: this.producerIds.next++, producerEpoch: 0 };
  }

  leaderEpoch(topicId: string, index: number): number {
    const p = this.partition(topicId, index);
    return p && p.state === 'Online' ? p.leaderEpoch : -1;
  }

  partitions(): PartitionStatus[] {
    return [...this.partitionsByKey.values()].map((p) => ({
      topic: p.topic,
      topicId: p.topicId,
      partition: p.index,
      state: p.state,
      highWatermark: p.highWatermark,
      logStartOffset: p.logStartOffset,
      nextOffset: p.nextOffset,
      leaderEpoch: p.leaderEpoch,
      extents: p.extents.length,
      cachedBatches: p.cache.length,
    }));
  }

  // ---- checkpoints ------------------------------------------------------------------------

  /**
   * Fenced twice over: by this broker's registration (a zombie cannot write) and by the
   * partition's lock (a broker the partition moved away from cannot overwrite the new
   * owner's checkpoint).
   */
  private encodeCheckpointOf(p: Partition): Buffer {
    return encodeCheckpoint({
      logStartOffset: p.logStartOffset,
      highWatermark: p.highWatermark,
      leaderEpoch: p.leaderEpoch,
      segments: p.segments,
      extents: p.extents,
      producers: p.producers.snapshot(),
    });
  }

  private async writeCheckpoint(p: Partition): Promise<void> {
    const hw = p.highWatermark;
    const res = await this.deps.meta.txn(
      [...this.fenceCompares(), { key: Keys.lock(p.topicId, p.index), target: 'value', op: '==', value: Buffer.from(String(this.cfg.brokerId)) }],
      [
        { type: 'put', key: Keys.ckpt(p.topicId, p.index), value: this.encodeCheckpointOf(p) },
      ],
    );
    if (!res.succeeded) {
      const reg = await this.deps.meta.get(Keys.broker(this.cfg.brokerId));
      if (!reg || reg.modRevision !== this.regRevision) {
        const err = new FencedError('checkpoint refused: broker registration changed');
        this.fence(err);
        throw err;
      }
      p.abandonUncommitted(new PartitionUnavailableError('Offline'));
      p.transition('Offline', 'write lock lost');
      this.forget(p);
      throw new PartitionUnavailableError('Offline');
    }
    this.checkpointed.set(p.key, hw);
    m.checkpoints.inc();
  }

  /** Drops whole segments and extents below `target`; their objects go once unreferenced. */
  private async moveLogStart(p: Partition, target: number): Promise<void> {
    if (target <= p.logStartOffset) return;
    p.logStartOffset = target;
    const dropped = p.segments.filter((g) => g.lastOffset < target);
    p.segments = p.segments.filter((g) => g.lastOffset >= target);
    const keep = p.extents.filter((e) => e.lastOffset >= target);
    const gone = p.extents.length - keep.length;
    for (const e of p.extents.slice(0, gone)) p.walBytes -= e.length;
    p.extents = keep;
    while (p.cache.length > 0 && p.cache[0].lastOffset < target) p.cache.shift();
    await this.writeCheckpoint(p);
    // Segments belong to one partition: once the checkpoint no longer names them they can go.
    for (const g of dropped) {
      this.segmentIndexes.delete(g.key);
      await this.deps.store.delete(g.key).catch((err) => this.log.warn({ err, key: g.key }, 'segment delete failed; GC will retry'));
    }
  }

  /** Writes every changed partition's checkpoint, then drops WAL records they cover. */
  async checkpoint(): Promise<void> {
    if (this.fenced) return;
    for (const p of [...this.partitionsByKey.values()]) {
      if ((p.state !== 'Online' && p.state !== 'Draining') || !p.dirty) continue;
      p.dirty = false;
      await this.writeCheckpoint(p).catch((err) => {
        if (!(err instanceof PartitionUnavailableError)) throw err;
      });
    }
    // A WAL record goes once a checkpoint this broker wrote covers every range in it (or the
    // topic is gone); a partition that left without a checkpoint keeps its records for the
    // new owner's recovery.
    for (const [name, parts] of this.walRecords) {
      let done = true;
      for (const [k, last] of parts) {
        const topicGone = !this.deps.topics.getById(k.slice(0, k.lastIndexOf('/')));
        if (!topicGone && (this.checkpointed.get(k) ?? -1) <= last) done = false;
      }
      if (!done) continue;
      await this.deps.meta.delete(Keys.wal(this.cfg.brokerId, name));
      this.walRecords.delete(name);
    }
  }

  // ---- segments, retention, garbage ------------------------------------------------------

  /**
   * The size at which a partition's WAL extents roll into a segment: the topic's segment.bytes,
   * but at most half the tail cache, so that a roll still finds its batches in memory. A
   * larger segment read most of itself back from storage while producers waited on the roll
   * backlog: with 1 GiB segments and the default 256 MiB cache, produce p99 at 211k msg/s of
   * 1 KiB went from 35-68 ms to 0.9-1.2 s. Kafka's segment.bytes is a maximum too.
   */
  private segmentBytesOf(p: Partition, cfg = this.deps.topics.getById(p.topicId)?.config ?? {}): number {
    const configured = Number(topicConfigValue(cfg, 'segment.bytes'));
    return this.cfg.cacheBytes > 0 ? Math.min(configured, Math.max(this.cfg.cacheBytes / 2, MIN_CAPPED_SEGMENT_BYTES)) : configured;
  }

  /** A maintenance pass after this turn of the event loop, or right after the one running. */
  private maintainSoon(): void {
    if (performance.now() - this.maintainFailedAt < this.cfg.maintenanceMs) return;
    if (this.maintaining) {
      this.maintainAgain = true;
      return;
    }
    this.maintainImmediate ??= setImmediate(() => {
      this.maintainImmediate = undefined;
      if (!this.maintaining) void this.maintain();
    });
  }

  /**
   * One pass over the partitions: roll segments that are due, then apply retention. With a
   * pass already running, waits for it and then runs a whole pass of its own.
   */
  async maintain(): Promise<void> {
    while (this.maintaining) await this.maintaining;
    if (this.fenced || this.closing) return;
    this.maintainAgain = false;
    this.maintaining = this.maintainPass().finally(() => {
      this.maintaining = undefined;
      if (this.maintainAgain) this.maintainSoon();
    });
    return this.maintaining;
  }

  private async maintainPass(): Promise<void> {
    try {
      const now = Date.now();
      for (const p of this.partitionsByKey.values()) {
        if (p.state !== 'Online') continue;
        const cfg = this.deps.topics.getById(p.topicId)?.config ?? {};
        const segBytes = this.segmentBytesOf(p, cfg);
        const segMs = Number(topicConfigValue(cfg, 'segment.ms'));
        // By size only full segments roll; by age (or too many extents) everything does.
        // Either way a backlog becomes several segments of at most segment.bytes each.
        const all = p.extents.length > 0 && (now - p.walSince >= segMs || p.extents.length >= MAX_WAL_EXTENTS);
        await p.exclusive(async () => {
          while (!this.closing && p.extents.length > 0 && (all || p.walBytes >= segBytes)) await this.roll(p, segBytes);
          await this.retain(p, cfg, now);
        });
      }
    } catch (err) {
      this.maintainFailedAt = performance.now();
      this.log.warn({ err }, 'maintenance pass failed; will retry');
    }
  }

  /** Rewrites the partition's WAL extents as one segment object and swaps it in by checkpoint. */
  private async roll(p: Partition, maxBytes: number): Promise<void> {
    let count = 0;
    for (let bytes = 0; count < p.extents.length && (count === 0 || bytes + p.extents[count].length <= maxBytes); count++) {
      bytes += p.extents[count].length;
    }
    if (count === 0) return;
    const rolled = p.extents.slice(0, count);
    const seg = new SegmentBuilder(this.cfg.segmentBlockBytes);
    let maxTimestamp = -1;
    let sinceYield = 0;
    for (const e of rolled) {
      // The tail cache usually still holds what rolls: no read back, and no CRC pass either
      // (the block CRCs follow from the batch CRCs checked when the batches were produced).
      // Either way the store is told where the bytes already are: a local directory links
      // them instead of writing them a second time.
      const stored = { key: e.key, start: e.position, end: e.position + e.length };
      const cached = p.cachedExtent(e);
      if (cached) {
        seg.addStored(cached, stored);
        m.segmentBytes.inc({ source: 'cache' }, e.length);
      } else {
        const data = await this.deps.store.get(e.key, { start: e.position, end: e.position + e.length });
        if (!verifyExtent(e, data)) {
          m.corruptReads.inc();
          throw new CorruptDataError(`checksum mismatch in ${e.key} at ${e.position} while rolling`);
        }
        seg.addStored([data], stored);
        m.segmentBytes.inc({ source: 'storage' }, e.length);
      }
      if (e.maxTimestamp > maxTimestamp) maxTimestamp = e.maxTimestamp;
      // A segment is up to segment.bytes of batches to index: let requests in now and then.
      sinceYield += e.length;
      if (sinceYield >= ROLL_SLICE_BYTES) {
        sinceYield = 0;
        await yieldToEventLoop();
      }
    }
    const { body, blocks, dataLength, indexLength } = seg.finish();
    const baseOffset = rolled[0].baseOffset;
    const lastOffset = rolled[count - 1].lastOffset;
    const key = segmentKey(p.topicId, p.index, baseOffset, lastOffset);
    // While rolls are behind by half a segment or more (producers will soon be held back), the
    // roll goes fast (bulk) rather than gently around WAL writes. At 106k msg/s of 1 KiB (half
    // the 1-partition peak) p99 was 42–44 ms this way, 63–85 ms going bulk from an eighth.
    await this.deps.store.put(key, body, { bulk: () => this.rollBacklogBytes() >= maxBytes / 2 });
    p.rolled({ key, baseOffset, lastOffset, maxTimestamp, dataLength, indexLength }, count, Date.now());
    this.segmentIndexes.set(key, blocks);
    await this.writeCheckpoint(p);
    m.segmentsRolled.inc();
    m.rollBacklogBytes.set(this.rollBacklogBytes());
    this.log.debug({ topic: p.topic, partition: p.index, baseOffset, lastOffset, bytes: dataLength }, 'segment rolled');
  }

  /** retention.ms and retention.bytes drop whole segments from the start of the log. */
  private async retain(p: Partition, cfg: Record<string, string>, now: number): Promise<void> {
    const retentionMs = Number(topicConfigValue(cfg, 'retention.ms'));
    const retentionBytes = Number(topicConfigValue(cfg, 'retention.bytes'));
    let target = p.logStartOffset;
    if (retentionMs >= 0) {
      for (const g of p.segments) {
        if (g.maxTimestamp >= now - retentionMs) break;
        target = Math.max(target, g.lastOffset + 1);
      }
    }
    if (retentionBytes >= 0) {
      let total = p.walBytes;
      for (const g of p.segments) total += g.dataLength;
      for (const g of p.segments) {
        if (total - g.dataLength < retentionBytes) break;
        total -= g.dataLength;
        target = Math.max(target, g.lastOffset + 1);
      }
    }
    if (target > p.logStartOffset) {
      this.log.info({ topic: p.topic, partition: p.index, from: p.logStartOffset, to: target }, 'retention moved the log start');
      await this.moveLogStart(p, target);
    }
  }

  /**
   * Deletes objects nothing in metadata refers to: WAL objects fully rolled into segments,
   * dropped segments, and orphans of flushes that never committed. Metadata is read in the
   * order references move (WAL records, then checkpoints, then memory), so a reference in
   * flight is never missed; the grace period covers writes not yet committed.
   */
  async collectGarbage(): Promise<number> {
    const referenced = new Set<string>();
    // Commit records of any broker (one that died leaves its own behind) go once current
    // checkpoints cover every range in them; the rest keep their objects referenced.
    const covered = new Map<string, number>();
    for (const kv of await this.deps.meta.getPrefix(Keys.ckptPrefix)) {
      const c = decodeCheckpoint(kv.value);
      covered.set(kv.key.slice(Keys.ckptPrefix.length), c.highWatermark);
    }
    for (const kv of await this.deps.meta.getPrefix(Keys.walPrefix)) {
      let rec;
      try {
        rec = decodeCommitRecord(kv.value);
      } catch {
        return 0; // An unreadable record could hide a reference: delete nothing.
      }
      const done = rec.extents.every((e) => !this.deps.topics.getById(e.topicId) || (covered.get(`${e.topicId}/${e.partition}`) ?? -1) > e.lastOffset);
      if (done) await this.deps.meta.delete(kv.key);
      else referenced.add(rec.objectKey);
    }
    for (const kv of await this.deps.meta.getPrefix(Keys.ckptPrefix)) {
      const c = decodeCheckpoint(kv.value);
      for (const g of c.segments) referenced.add(g.key);
      for (const e of c.extents) referenced.add(e.key);
    }
    for (const p of this.partitionsByKey.values()) {
      for (const g of p.segments) referenced.add(g.key);
      for (const e of p.extents) referenced.add(e.key);
    }
    for (const key of this.flusher?.objectsInFlight ?? []) referenced.add(key);
    const now = Date.now();
    let deleted = 0;
    for (const prefix of ['wal/', 'segments/']) {
      for (const o of await this.deps.store.list(prefix)) {
        if (referenced.has(o.key) || now - o.lastModified.getTime() < this.cfg.gcGraceMs) continue;
        await this.deps.store.delete(o.key);
        deleted++;
      }
    }
    if (deleted > 0) {
      m.gcDeleted.inc(deleted);
      this.log.info({ deleted }, 'unreferenced objects deleted');
    }
    return deleted;
  }

  /** Draining: flush, commit, checkpoint and release every partition's lock. */
  async close(): Promise<void> {
    this.closing = true;
    this.unsubscribeTopics?.();
    clearInterval(this.checkpointTimer);
    clearInterval(this.maintenanceTimer);
    if (this.maintainImmediate) clearImmediate(this.maintainImmediate);
    clearInterval(this.gcTimer);
    clearTimeout(this.syncTimer);
    // With the metadata store gone (the usual reason to be fenced) nothing here may hang.
    await bounded(this.assignWatch?.close());
    await bounded(this.lockWatch?.close());
    for (const w of this.lockWaiters.values()) w();
    for (const p of this.partitionsByKey.values()) if (p.state === 'Online') p.transition('Draining', 'shutdown');
    if (!this.fenced) {
      await this.flusher?.close();
      await this.checkpoint().catch((err) => this.log.warn({ err }, 'final checkpoint failed'));
    } else {
      this.flusher?.abort();
    }
    for (const p of [...this.partitionsByKey.values()]) {
      p.transition('Offline', 'shutdown');
      this.forget(p);
    }
    await bounded(this.lease?.revoke());
  }
}

/** Waits for a cleanup step at most a couple of seconds, ignoring its failure. */
export async function bounded(step: Promise<unknown> | undefined, ms = 2000): Promise<void> {
  if (!step) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([step.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

export class CorruptDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptDataError';
  }
}
