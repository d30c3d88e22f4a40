// EmbeddedMetaStore: the in-process MetaStore for `skiff dev`, with etcd's semantics (one
// revision counter, per-key create/mod revisions and versions, txn compares, leases, watches).
// It owns its files: an fsynced, CRC32C-framed append-only log of committed changes, compacted
// now and then into a snapshot. A resolved write survives SIGKILL; leases never survive a restart.

import { crc32c } from '../protocol/native.js';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { MetaStoreClosedError, type Compare, type KeyValue, type Lease, type MetaStore, type Op, type TxnResult, type Watch, type WatchEvent } from './meta-store.js';

export interface EmbeddedMetaStoreOptions {
  /** Rewrite the log into a snapshot once it grows past this many bytes. Default 64 MiB. */
  compactThresholdBytes?: number;
  /**
   * Most compares, or ops per branch, in one txn. Default 128, etcd's own default
   * (--max-txn-ops), so code that works here does not fail against etcd.
   */
  maxTxnOps?: number;
}

/** Writing the log failed: memory is ahead of the disk, so the store refuses all further work. */
export class MetaStoreFailedError extends Error {
  constructor(cause: unknown) {
    super(`meta store log write failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'MetaStoreFailedError';
  }
}

export class MetaStoreCorruptError extends Error {
  constructor(file: string, reason: string) {
    super(`meta store file ${file} is corrupt: ${reason}`);
    this.name = 'MetaStoreCorruptError';
  }
}

export class LeaseNotFoundError extends Error {
  constructor(readonly leaseId: string) {
    super(`lease not found: ${leaseId}`);
    this.name = 'LeaseNotFoundError';
  }
}

/** Same rule as etcd: within one txn branch a key may be written only once. */
export class InvalidTxnError extends Error {
  constructor(reason: string) {
    super(`invalid txn: ${reason}`);
    this.name = 'InvalidTxnError';
  }
}

interface Entry {
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  lease?: string;
}

type Change = { type: 'put'; key: string; value: Buffer; lease?: string } | { type: 'delete'; key: string };

interface LogRecord {
  revision: number;
  changes: Change[];
  bytes: Buffer;
}

interface Waiter {
  revision: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Watcher {
  prefix: string;
  startRevision: number;
  cb: (ev: WatchEvent) => void;
  active: boolean;
}

interface LeaseState {
  id: string;
  ttlSeconds: number;
  keys: Set<string>;
  lost: boolean;
  lostCallbacks: (() => void)[];
}

const RECORD_HEADER = 8;
const REC_CHANGES = 1;
const CH_PUT = 1;
const CH_PUT_LEASED = 2;
const CH_DELETE = 3;
const SNAPSHOT_MAGIC = Buffer.from('SKIFFMS1');
/** Marks keys restored from a leased put while replaying; dropped once replay ends. */
const REPLAYED_LEASE = '\0replayed';

export class EmbeddedMetaStore implements MetaStore {
  private readonly kv = new Map<string, Entry>();
  private readonly leases = new Map<string, LeaseState>();
  private readonly watchers = new Set<Watcher>();
  private revision = 0;
  private durableRevision = 0;
  private pending: LogRecord[] = [];
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private logSize = 0;
  private syncs = 0;
  private failure: MetaStoreFailedError | undefined;
  private closed = false;

  private constructor(
    private readonly logPath: string,
    private readonly log: FileHandle,
    private readonly compactThreshold: number,
    private readonly maxTxnOps: number,
  ) {}

  static async open(filePath: string, options: EmbeddedMetaStoreOptions = {}): Promise<EmbeddedMetaStore> {
    const logPath = path.resolve(filePath);
    await mkdir(path.dirname(logPath), { recursive: true });
    await unlink(snapshotPath(logPath) + '.tmp').catch(() => undefined);
    // O_DSYNC: an append is on disk when its write returns, one call per group commit instead
    // of a write and an fdatasync.
    const log = await open(logPath, fsConstants.O_RDWR | fsConstants.O_CREAT | (fsConstants.O_DSYNC ?? 0), 0o644);
    // A new log file exists after a power cut only once its directory entry is on disk.
    if ((await log.stat()).size === 0) await syncDir(path.dirname(logPath));
    const store = new EmbeddedMetaStore(logPath, log, options.compactThresholdBytes ?? 64 * 1024 * 1024, options.maxTxnOps ?? 128);
    try {
      await store.load();
    } catch (err) {
      await log.close();
      throw err;
    }
    return store;
  }

  /** Number of log fsyncs so far; with concurrent writers it stays well below the write count. */
  get syncCount(): number {
    return this.syncs;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.assertUsable();
    const entry = this.kv.get(key);
    // Captured now: by the time the barrier passes, memory may hold later, not-yet-durable writes.
    const result = entry && toKeyValue(key, entry);
    await this.durable(this.revision);
    return result;
  }

  async getPrefix(prefix: string): Promise<KeyValue[]> {
    this.assertUsable();
    const keys: string[] = [];
    for (const key of this.kv.keys()) if (key.startsWith(prefix)) keys.push(key);
    keys.sort(compareKeys);
    const result = keys.map((key) => toKeyValue(key, this.kv.get(key)!));
    await this.durable(this.revision);
    return result;
  }

  async put(key: string, value: Buffer, opts?: { lease?: string }): Promise<number> {
    const { revision } = await this.txn([], [{ type: 'put', key, value, lease: opts?.lease }]);
    return revision;
  }

  async delete(key: string): Promise<void> {
    await this.txn([], [{ type: 'delete', key }]);
  }

  async deletePrefix(prefix: string): Promise<void> {
    await this.txn([], [{ type: 'deletePrefix', prefix }]);
  }

  async txn(compares: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    this.assertUsable();
    if (Math.max(compares.length, success.length, failure.length) > this.maxTxnOps) {
      throw new InvalidTxnError(`more than ${this.maxTxnOps} compares or ops in one branch`);
    }
    validateOps(success);
    validateOps(failure);
    const succeeded = compares.every((c) => this.evaluate(c));
    const ops = succeeded ? success : failure;
    for (const op of ops) {
      if (op.type === 'put' && op.lease !== undefined && !this.liveLease(op.lease)) throw new LeaseNotFoundError(op.lease);
    }
    const changes: Change[] = [];
    for (const op of ops) {
      if (op.type === 'put') {
        changes.push({ type: 'put', key: op.key, value: Buffer.from(op.value), lease: op.lease });
      } else if (op.type === 'delete') {
        if (this.kv.has(op.key)) changes.push({ type: 'delete', key: op.key });
      } else {
        const keys = [...this.kv.keys()].filter((k) => k.startsWith(op.prefix)).sort(compareKeys);
        for (const key of keys) changes.push({ type: 'delete', key });
      }
    }
    // Deleting nothing is not a change, and like etcd it does not take a revision.
    const revision = changes.length > 0 ? this.commit(changes) : this.revision;
    await this.durable(revision);
    return { succeeded, revision };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.assertUsable();
    if (!(ttlSeconds >= 1)) throw new RangeError(`lease TTL must be at least 1 second, got ${ttlSeconds}`);
    const state: LeaseState = { id: randomBytes(8).toString('hex'), ttlSeconds, keys: new Set(), lost: false, lostCallbacks: [] };
    this.leases.set(state.id, state);
    return new EmbeddedLease(this, state);
  }

  /**
   * Ends a lease as if it had not been kept alive: its keys go, and onLost callbacks fire.
   * (The store keeps its own leases alive, so nothing else expires them; tests use this.)
   */
  async expireLease(id: string): Promise<void> {
    this.assertUsable();
    const state = this.leases.get(id);
    if (!state) throw new LeaseNotFoundError(id);
    await this.endLease(state);
    state.lost = true;
    for (const cb of state.lostCallbacks.splice(0)) cb();
  }

  async revokeLease(id: string): Promise<void> {
    this.assertUsable();
    if (this.leases.has(id)) await this.expireLease(id);
  }

  async watchPrefix(prefix: string, cb: (ev: WatchEvent) => void): Promise<Watch> {
    this.assertUsable();
    const watcher: Watcher = { prefix, startRevision: this.revision + 1, cb, active: true };
    this.watchers.add(watcher);
    return {
      close: async () => {
        watcher.active = false;
        this.watchers.delete(watcher);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    this.watchers.clear();
    for (const lease of this.leases.values()) lease.lost = true;
    this.leases.clear();
    await this.log.close();
  }

  /** @internal Used by EmbeddedLease. */
  async endLease(state: LeaseState): Promise<void> {
    if (this.leases.get(state.id) !== state) return;
    this.assertUsable();
    this.leases.delete(state.id);
    const keys = [...state.keys].sort(compareKeys);
    state.keys.clear();
    const revision = keys.length > 0 ? this.commit(keys.map((key) => ({ type: 'delete', key }))) : this.revision;
    await this.durable(revision);
  }

  private liveLease(id: string): LeaseState | undefined {
    return this.leases.get(id);
  }

  private evaluate(c: Compare): boolean {
    const entry = this.kv.get(c.key);
    if (c.target === 'exists') return (entry !== undefined) === c.value;
    if (c.target === 'value') {
      // etcd: a value compare against a missing key fails whatever the operator.
      if (!entry) return false;
      const equal = entry.value.equals(c.value);
      return c.op === '==' ? equal : !equal;
    }
    const actual = entry ? entry[c.target] : 0;
    switch (c.op) {
      case '==':
        return actual === c.value;
      case '!=':
        return actual !== c.value;
      case '<':
        return actual < c.value;
      case '>':
        return actual > c.value;
    }
  }

  /** Applies changes in memory under a new revision and queues them for the log. */
  private commit(changes: Change[]): number {
    const revision = this.revision + 1;
    this.apply(revision, changes);
    this.pending.push({ revision, changes, bytes: encodeRecord(revision, changes) });
    if (!this.flushing) this.flushing = this.flushLoop();
    return revision;
  }

  private apply(revision: number, changes: Change[]): void {
    this.revision = revision;
    for (const ch of changes) {
      const prev = this.kv.get(ch.key);
      if (prev?.lease !== undefined) this.leases.get(prev.lease)?.keys.delete(ch.key);
      if (ch.type === 'delete') {
        this.kv.delete(ch.key);
        continue;
      }
      this.kv.set(ch.key, {
        value: ch.value,
        createRevision: prev ? prev.createRevision : revision,
        modRevision: revision,
        version: prev ? prev.version + 1 : 1,
        lease: ch.lease,
      });
      if (ch.lease !== undefined) this.leases.get(ch.lease)?.keys.add(ch.key);
    }
  }

  /** Group commit: whatever queued up during one synchronous write goes out in the next one. */
  private async flushLoop(): Promise<void> {
    // Let writes issued in the same tick join the first batch.
    await Promise.resolve();
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        const bytes = batch.length === 1 ? batch[0].bytes : Buffer.concat(batch.map((r) => r.bytes));
        await writeAll(this.log, bytes, this.logSize);
        if (fsConstants.O_DSYNC === undefined) await this.log.datasync();
        this.logSize += bytes.length;
        this.syncs++;
        this.durableRevision = batch[batch.length - 1].revision;
        this.releaseWaiters();
        for (const record of batch) this.dispatch(record);
        if (this.logSize > this.compactThreshold) await this.compact();
      }
    } catch (err) {
      this.failure = new MetaStoreFailedError(err);
      for (const w of this.waiters.splice(0)) w.reject(this.failure);
      this.pending = [];
    } finally {
      this.flushing = undefined;
    }
  }

  private durable(revision: number): Promise<void> {
    if (revision <= this.durableRevision) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ revision, resolve, reject }));
  }

  private releaseWaiters(): void {
    // Waiters are queued in non-decreasing revision order (each waits for the revision current when it was queued).
    let n = 0;
    while (n < this.waiters.length && this.waiters[n].revision <= this.durableRevision) n++;
    for (const w of this.waiters.splice(0, n)) w.resolve();
  }

  private dispatch(record: LogRecord): void {
    for (const watcher of this.watchers) {
      if (record.revision < watcher.startRevision) continue;
      for (const ch of record.changes) {
        if (!watcher.active || !ch.key.startsWith(watcher.prefix)) continue;
        const ev: WatchEvent =
          ch.type === 'put'
            ? { type: 'put', key: ch.key, value: Buffer.from(ch.value), modRevision: record.revision }
            : { type: 'delete', key: ch.key, modRevision: record.revision };
        try {
          watcher.cb(ev);
        } catch (err) {
          // Same as etcd3: a throwing watcher is reported as uncaught, and the log keeps going.
          setImmediate(() => {
            throw err;
          });
        }
      }
    }
  }

  /**
   * Snapshot of memory (which may run ahead of the log: that only makes pending writes durable
   * sooner), then an empty log. A crash between the two leaves log records the snapshot already
   * covers, which replay skips by revision.
   */
  private async compact(): Promise<void> {
    const snap = encodeSnapshot(this.revision, this.kv);
    const target = snapshotPath(this.logPath);
    const tmp = target + '.tmp';
    const fh = await open(tmp, 'w', 0o644);
    try {
      await writeAll(fh, snap, 0);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    await syncDir(path.dirname(target));
    await this.log.truncate(0);
    await this.log.datasync();
    this.logSize = 0;
  }

  private async load(): Promise<void> {
    const snapFile = snapshotPath(this.logPath);
    let snapshotRevision = 0;
    const snap = await readFile(snapFile).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (snap) {
      snapshotRevision = decodeSnapshot(snapFile, snap, this.kv);
      this.revision = snapshotRevision;
    }

    const log = await this.log.readFile();
    let pos = 0;
    while (pos + RECORD_HEADER <= log.length) {
      const len = log.readUInt32BE(pos);
      if (len === 0 || pos + RECORD_HEADER + len > log.length) break;
      const crc = crc32c(log.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + len), crc32c(log.subarray(pos, pos + 4)));
      if (crc !== log.readUInt32BE(pos + 4)) break;
      const decoded = decodeRecord(log.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + len));
      if (!decoded) break;
      if (decoded.revision > this.revision) {
        if (decoded.revision !== this.revision + 1) {
          throw new MetaStoreCorruptError(this.logPath, `revision ${decoded.revision} follows ${this.revision}`);
        }
        this.apply(decoded.revision, decoded.changes);
      }
      pos += RECORD_HEADER + len;
    }
    // Whatever follows the last good record was never acknowledged (its fsync did not return).
    // Cut it off, or new records appended after it would be unreachable on the next replay.
    if (pos < log.length) {
      await this.log.truncate(pos);
      await this.log.datasync();
    }
    this.logSize = pos;
    this.durableRevision = this.revision;

    // Leases die with the process, and so do their keys: delete them as a committed change.
    const orphaned: string[] = [];
    for (const [key, entry] of this.kv) if (entry.lease !== undefined) orphaned.push(key);
    if (orphaned.length > 0) {
      const revision = this.commit(orphaned.sort(compareKeys).map((key) => ({ type: 'delete', key })));
      await this.durable(revision);
    }
  }

  private assertUsable(): void {
    if (this.closed) throw new MetaStoreClosedError();
    if (this.failure) throw this.failure;
  }
}

class EmbeddedLease implements Lease {
  constructor(
    private readonly store: EmbeddedMetaStore,
    private readonly state: LeaseState,
  ) {}

  get id(): string {
    return this.state.id;
  }

  get ttlSeconds(): number {
    return this.state.ttlSeconds;
  }

  onLost(cb: () => void): void {
    // Registering after the loss still tells the caller, rather than never calling back.
    if (this.state.lost) queueMicrotask(cb);
    else this.state.lostCallbacks.push(cb);
  }

  async revoke(): Promise<void> {
    // Like etcd3, revoking our own lease is not "losing" it: onLost stays silent.
    this.state.lostCallbacks = [];
    await this.store.endLease(this.state);
  }
}

function validateOps(ops: Op[]): void {
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.type !== 'put') continue;
    if (puts.has(op.key)) throw new InvalidTxnError(`key '${op.key}' is put twice`);
    puts.add(op.key);
  }
  if (puts.size === 0) return;
  for (const op of ops) {
    if (op.type === 'delete' && puts.has(op.key)) throw new InvalidTxnError(`key '${op.key}' is both put and deleted`);
    if (op.type === 'deletePrefix') {
      for (const key of puts) {
        if (key.startsWith(op.prefix)) throw new InvalidTxnError(`key '${key}' is put inside deleted prefix '${op.prefix}'`);
      }
    }
  }
}

/** Values are copied out, as etcd hands out fresh buffers: a caller scribbling on one must not reach the store. */
function toKeyValue(key: string, e: Entry): KeyValue {
  const kv: KeyValue = { key, value: Buffer.from(e.value), createRevision: e.createRevision, modRevision: e.modRevision, version: e.version };
  if (e.lease !== undefined) kv.lease = e.lease;
  return kv;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function snapshotPath(logPath: string): string {
  return logPath + '.snapshot';
}

// --- encoding -------------------------------------------------------------------------------
// Record: u32 payload length | u32 CRC32C over (length, payload) | payload.
// Payload: u8 kind | u64 revision | u32 count | count × (u8 type | u32 keyLen | key | [u32 valLen | value]).
// Snapshot: magic | u64 length | u32 CRC32C | payload (u64 revision | u32 count | count × entry).

function encodeRecord(revision: number, changes: Change[]): Buffer {
  let size = RECORD_HEADER + 1 + 8 + 4;
  for (const ch of changes) {
    size += 1 + 4 + Buffer.byteLength(ch.key);
    if (ch.type === 'put') size += 4 + ch.value.length;
  }
  const buf = Buffer.allocUnsafe(size);
  let pos = RECORD_HEADER;
  pos = buf.writeUInt8(REC_CHANGES, pos);
  pos = writeU53(buf, revision, pos);
  pos = buf.writeUInt32BE(changes.length, pos);
  for (const ch of changes) {
    pos = buf.writeUInt8(ch.type === 'delete' ? CH_DELETE : ch.lease !== undefined ? CH_PUT_LEASED : CH_PUT, pos);
    pos = writeBytes(buf, Buffer.from(ch.key), pos);
    if (ch.type === 'put') pos = writeBytes(buf, ch.value, pos);
  }
  buf.writeUInt32BE(size - RECORD_HEADER, 0);
  buf.writeUInt32BE(crc32c(buf.subarray(RECORD_HEADER), crc32c(buf.subarray(0, 4))), 4);
  return buf;
}

/** undefined when the payload does not parse: treated like a torn record. */
function decodeRecord(payload: Buffer): { revision: number; changes: Change[] } | undefined {
  try {
    const r = new Reader(payload);
    if (r.u8() !== REC_CHANGES) return undefined;
    const revision = r.u53();
    const count = r.u32();
    const changes: Change[] = [];
    for (let i = 0; i < count; i++) {
      const type = r.u8();
      const key = r.bytes().toString();
      if (type === CH_DELETE) changes.push({ type: 'delete', key });
      // Copied out, or every value would pin the whole log file's buffer in memory.
      else if (type === CH_PUT) changes.push({ type: 'put', key, value: Buffer.from(r.bytes()) });
      else if (type === CH_PUT_LEASED) changes.push({ type: 'put', key, value: Buffer.from(r.bytes()), lease: REPLAYED_LEASE });
      else return undefined;
    }
    return r.atEnd() ? { revision, changes } : undefined;
  } catch {
    return undefined;
  }
}

function encodeSnapshot(revision: number, kv: Map<string, Entry>): Buffer {
  // Leased keys are left out: they would be dropped on load anyway.
  const entries = [...kv].filter(([, e]) => e.lease === undefined);
  const keys = entries.map(([k]) => Buffer.from(k));
  let size = 8 + 4;
  entries.forEach(([, e], i) => (size += 4 + keys[i].length + 4 + e.value.length + 8 * 3));
  const header = SNAPSHOT_MAGIC.length + 8 + 4;
  const buf = Buffer.allocUnsafe(header + size);
  let pos = header;
  pos = writeU53(buf, revision, pos);
  pos = buf.writeUInt32BE(entries.length, pos);
  entries.forEach(([, e], i) => {
    pos = writeBytes(buf, keys[i], pos);
    pos = writeBytes(buf, e.value, pos);
    pos = writeU53(buf, e.createRevision, pos);
    pos = writeU53(buf, e.modRevision, pos);
    pos = writeU53(buf, e.version, pos);
  });
  SNAPSHOT_MAGIC.copy(buf, 0);
  writeU53(buf, size, SNAPSHOT_MAGIC.length);
  buf.writeUInt32BE(crc32c(buf.subarray(header)), SNAPSHOT_MAGIC.length + 8);
  return buf;
}

/** The snapshot was fsynced before it was renamed into place, so any damage is real corruption. */
function decodeSnapshot(file: string, buf: Buffer, kv: Map<string, Entry>): number {
  const header = SNAPSHOT_MAGIC.length + 8 + 4;
  if (buf.length < header || !buf.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw new MetaStoreCorruptError(file, 'bad magic');
  }
  const size = new Reader(buf.subarray(SNAPSHOT_MAGIC.length)).u53();
  if (buf.length !== header + size) throw new MetaStoreCorruptError(file, 'bad length');
  const payload = buf.subarray(header);
  if (crc32c(payload) !== buf.readUInt32BE(SNAPSHOT_MAGIC.length + 8)) throw new MetaStoreCorruptError(file, 'bad checksum');
  const r = new Reader(payload);
  const revision = r.u53();
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const key = r.bytes().toString();
    const value = Buffer.from(r.bytes());
    kv.set(key, { value, createRevision: r.u53(), modRevision: r.u53(), version: r.u53() });
  }
  return revision;
}

function writeU53(buf: Buffer, n: number, pos: number): number {
  pos = buf.writeUInt32BE(Math.floor(n / 2 ** 32), pos);
  return buf.writeUInt32BE(n >>> 0, pos);
}

function writeBytes(buf: Buffer, bytes: Buffer, pos: number): number {
  pos = buf.writeUInt32BE(bytes.length, pos);
  return pos + bytes.copy(buf, pos);
}

class ReadPastEndError extends Error {
  constructor() {
    super('read past end of buffer');
    this.name = 'ReadPastEndError';
  }
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new ReadPastEndError();
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u53(): number {
    const hi = this.u32();
    return hi * 2 ** 32 + this.u32();
  }
  bytes(): Buffer {
    const len = this.u32();
    this.need(len);
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
  atEnd(): boolean {
    return this.pos === this.buf.length;
  }
}

async function writeAll(fh: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
