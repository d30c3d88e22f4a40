// FsObjectStore: the embedded ObjectStore adapter, one file per object under a root directory
// ('/' in a key is a subdirectory). It owns durability on a local disk: a put() resolves only
// after the data and the directory entry pointing at it have reached the disk.
//
// A put is on the path of every durable produce (one WAL object per flush), so it is kept to
// few file-system calls, each a round trip through libuv's thread pool: the temp file is
// opened O_DSYNC (a write returns once its data and the file size are on disk: no separate
// fdatasync), and directories stay open for their fsyncs, which puts finishing together share.
// An unpublished put (a WAL object, read only once committed) skips the temp file and rename:
// it opens the object itself and syncs the directory while the data is written, two round
// trips where an atomic put takes four. A reserved one (the flusher reserves its next WAL
// objects' keys) finds its file created and its directory entry synced beforehand, and only
// writes: creating a file and syncing its directory wait on the filesystem journal, which
// under a steady durable load made up most of a put's tail (p99 of the open 16 ms and of the
// directory sync 26 ms at 150 MB/s on one disk, beside 32 ms for the whole put).
//
// A put whose body holds stored ranges (a segment rolled out of WAL objects) does not write
// those bytes again: the object becomes a directory, `<key>.skiff-parts/`, of hard links to
// the files that hold them, a file of whatever bytes had to be written, and a manifest of the
// spans in order. Deleting a WAL object then only drops its name; its bytes live on as long as
// a segment links them. Ranges under half of their file are copied, so a file shared by many
// partitions is not kept alive for the sake of a small part of it.

import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { storageMetrics as m } from './metrics.js';
import {
  ObjectNotFoundError,
  bodyBuffers,
  type ByteRange,
  type ObjectInfo,
  type ObjectStore,
  type PutBody,
  type PutOptions,
  type StoredRange,
} from './object-store.js';

/** Temp files share directories with objects; keys may not use this name prefix. */
const TEMP_PREFIX = '.skiff-tmp-';
/** A composed object is a directory named after its key plus this; keys may not end with it. */
const COMPOSED_SUFFIX = '.skiff-parts';
const MANIFEST = 'manifest';
/** The file of written bytes in a composed object; links are named 1, 2, … */
const COPIED = '0';
/** A stored range is linked when it is at least this share of the file holding it, else copied. */
const LINK_MIN_SHARE = 0.5;
/**
 * Temp entries older than this are what a crash left behind (a put takes seconds at most), and
 * list() removes them: a temp directory of links would otherwise keep WAL files' bytes forever.
 */
const STALE_TEMP_MS = 3_600_000;
/** Manifests of composed objects kept in memory (about 5 KB each for a 128 MiB segment). */
const MAX_MANIFESTS = 1024;
/** Where the platform has no O_DSYNC, each write is followed by an fdatasync instead. */
const DSYNC = fsConstants.O_DSYNC ?? 0;
const TEMP_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | DSYNC;
/** An unpublished object is written in place; a retry replaces what a failed attempt left. */
const IN_PLACE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | DSYNC;
/** Directories kept open (WAL objects go to one per broker; a segment roll touches one more). */
const MAX_OPEN_DIRS = 16;

export class InvalidObjectKeyError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`invalid object key '${key}': ${reason}`);
    this.name = 'InvalidObjectKeyError';
  }
}

export interface FsObjectStoreOptions {
  /**
   * Objects larger than this (segments) are written and flushed to disk in slices of
   * `sliceBytes`: one flush of a whole 128 MiB segment would hold up every other flush on the
   * filesystem (WAL objects, the metadata log) for a quarter of a second; in slices they wait
   * behind one slice at most. Smaller objects (WAL objects) are flushed once, at the end.
   * 1 MiB slices (about 2 ms of disk each) keep a segment roll under load from adding more than
   * that to a produce's wait: with 4 MiB slices, produce p99 at half of the peak load was 75–98 ms,
   * with 1 MiB 59–69 ms (`npm run bench`, latency scenario); 256 KiB gained nothing more.
   */
  largeObjectBytes?: number;
  sliceBytes?: number;
  /**
   * Slices of bulk puts (segment rolls that have fallen behind). Every flush to disk of a
   * growing file waits for the filesystem journal, so small slices cap a roll's speed: rolling
   * 128 MiB segments under a sustained 1-partition load kept up with about 150 MB/s of produce
   * in 1 MiB slices, 260 MB/s in 2 or 4 MiB slices and 290 MB/s in 8 MiB slices.
   */
  bulkSliceBytes?: number;
}

/** A composed object: which file holds each span of its bytes, in order. */
interface Manifest {
  /** Directory of the parts. */
  dir: string;
  size: number;
  /** Part file names. */
  files: string[];
  /** [file index, position in the file, length], in object order. */
  spans: Array<[number, number, number]>;
  /** Where each span starts in the object. */
  starts: number[];
  lastModified: Date;
}

/** How a body's stored ranges will be kept: linked files, and the bytes written instead. */
interface CompositionPlan {
  /** Paths of the files to link, in part order (part i + 1). */
  linked: string[];
  /** Bytes that are written (into part 0). */
  copied: Buffer[];
  spans: Array<[number, number, number]>;
}

/** A directory objects are written to: made durable once, then kept open for its fsyncs. */
interface Dir {
  path: string;
  handle: FileHandle;
  /** Puts between getting it and their directory fsync: it is not closed under them. */
  users: number;
  /** Out of the cache (evicted, or pruned by delete()); closed once idle. */
  dropped: boolean;
  closed: boolean;
  /** The fsync in progress, and the next one, shared by every rename that finished meanwhile. */
  running?: Promise<void>;
  queued?: Promise<void>;
}

export class FsObjectStore implements ObjectStore {
  private readonly root: string;
  private readonly largeObject: number;
  private readonly slice: number;
  private readonly bulkSlice: number;
  /** Open directories, least recently used first. */
  private readonly dirs = new Map<string, Promise<Dir>>();
  private readonly tempPrefix = TEMP_PREFIX + randomBytes(4).toString('hex') + '-';
  private temps = 0;
  /** Manifests of composed objects read lately, least recently used first. */
  private readonly manifests = new Map<string, Manifest>();
  /** reserve()d keys: their files, open for writing once created and their entries synced. */
  private readonly reserved = new Map<string, Promise<FileHandle>>();

  constructor(rootDir: string, options: FsObjectStoreOptions = {}) {
    this.root = path.resolve(rootDir);
    this.largeObject = options.largeObjectBytes ?? 16 << 20;
    this.slice = options.sliceBytes ?? 1 << 20;
    this.bulkSlice = options.bulkSliceBytes ?? 8 << 20;
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    m.requests.inc({ store: 'fs', request: 'PutObject' });
    const file = this.pathOf(key);
    this.manifests.delete(key);
    // WAL objects (every durable produce waits on one) are plain buffers: no planning for them.
    const plan = Buffer.isBuffer(body) || body.every((part) => Buffer.isBuffer(part)) ? undefined : await this.planComposition(body);
    if (plan) {
      try {
        await this.putComposed(key, file, plan, options);
        return;
      } catch (err) {
        // A file system without hard links, or a linked file deleted meanwhile: write it all.
        if (!['EXDEV', 'EPERM', 'EMLINK', 'ENOENT', 'ENOTSUP', 'EOPNOTSUPP'].includes(errCode(err) ?? '')) throw err;
      }
    }
    if (options.unpublished) {
      const fh = await this.takeReserved(key);
      return fh ? this.putReserved(file, fh, body, options) : this.putInPlace(file, body, options);
    }
    const dirPath = path.dirname(file);
    const tmp = path.join(dirPath, this.tempPrefix + String(++this.temps));
    let fh: FileHandle | undefined;
    let dir: Dir | undefined;
    try {
      dir = await this.usableDir(dirPath, async () => {
        fh = await open(tmp, TEMP_FLAGS);
      });
      try {
        await this.writeBody(fh!, bodyBuffers(body), options);
        // Renaming an open file is fine; its close need not hold up the rename.
        const closed = fh!.close();
        fh = undefined;
        await Promise.all([closed, rename(tmp, file)]);
        this.manifests.delete(key);
        await this.syncDir(dir);
      } catch (err) {
        await fh?.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
    } finally {
      if (dir) this.release(dir);
    }
  }

  /**
   * Writes an unpublished object under its own name. Its directory entry exists once the file
   * is open, so the directory's sync runs alongside the data's O_DSYNC writes.
   */
  private async putInPlace(file: string, body: PutBody, options: PutOptions): Promise<void> {
    let fh: FileHandle | undefined;
    let dir: Dir | undefined;
    try {
      dir = await this.usableDir(path.dirname(file), async () => {
        fh = await open(file, IN_PLACE_FLAGS);
      });
      const written = this.writeBody(fh!, bodyBuffers(body), options);
      try {
        await Promise.all([written, this.syncDir(dir)]);
      } catch (err) {
        await written.catch(() => undefined);
        await unlink(file).catch(() => undefined);
        throw err;
      }
      // Durable already (O_DSYNC data, synced entry): the close need not hold up the caller.
      fh!.close().catch(() => undefined);
      fh = undefined;
    } finally {
      await fh?.close().catch(() => undefined);
      if (dir) this.release(dir);
    }
  }

  /** Writes a reserved object: its file exists and its directory entry is on disk already. */
  private async putReserved(file: string, fh: FileHandle, body: PutBody, options: PutOptions): Promise<void> {
    try {
      await this.writeBody(fh, bodyBuffers(body), options);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(file).catch(() => undefined);
      throw err;
    }
    // Durable already (O_DSYNC data): the close need not hold up the caller.
    fh.close().catch(() => undefined);
  }

  reserve(key: string): void {
    if (this.reserved.has(key)) return;
    const file = this.pathOf(key);
    const ready = (async () => {
      let fh: FileHandle | undefined;
      const dir = await this.usableDir(path.dirname(file), async () => {
        fh = await open(file, IN_PLACE_FLAGS);
      });
      try {
        await this.syncDir(dir);
        return fh!;
      } catch (err) {
        await fh!.close().catch(() => undefined);
        await unlink(file).catch(() => undefined);
        throw err;
      } finally {
        this.release(dir);
      }
    })();
    // A reservation that failed is only a put that creates its file itself.
    ready.catch(() => undefined);
    this.reserved.set(key, ready);
  }

  async unreserve(key: string): Promise<void> {
    if (this.reserved.has(key)) await this.delete(key);
  }

  /** A reservation's file, now the caller's, once made; undefined if none or it failed. */
  private async takeReserved(key: string): Promise<FileHandle | undefined> {
    const reserved = this.reserved.get(key);
    if (!reserved) return undefined;
    this.reserved.delete(key);
    return reserved.catch(() => undefined);
  }

  /**
   * The open directory at `dirPath`, once `create` has made a temp entry in it. delete()
   * prunes empty directories, so a directory made here can vanish before the temp entry is
   * created in it; that race is retried rather than locked against.
   */
  private async usableDir(dirPath: string, create: () => Promise<void>): Promise<Dir> {
    let dir: Dir | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        dir = await this.useDir(dirPath, dir);
        await create();
        return dir;
      } catch (err) {
        if (dir) this.release(dir);
        dir = undefined;
        this.dropDir(dirPath);
        if (errCode(err) !== 'ENOENT' || attempt >= 5) throw err;
      }
    }
  }

  private async writeBody(fh: FileHandle, chunks: Buffer[], options: PutOptions): Promise<void> {
    let size = 0;
    for (const c of chunks) size += c.length;
    const { bulk } = options;
    const slice = () => ((typeof bulk === 'function' ? bulk() : bulk) ? this.bulkSlice : this.slice);
    if (size <= this.largeObject) await writeAll(fh, chunks, Infinity, () => Infinity);
    else await writeAll(fh, chunks, Math.min(this.slice, this.bulkSlice), slice);
  }

  /** Which stored ranges of a body to link; undefined when none is worth it. */
  private async planComposition(body: Array<Buffer | StoredRange>): Promise<CompositionPlan | undefined> {
    const sizes = new Map<string, Promise<number>>();
    const sizeOf = (key: string): Promise<number> => {
      let size = sizes.get(key);
      if (!size) {
        size = stat(this.pathOf(key)).then(
          (st) => (st.isFile() ? st.size : -1),
          () => -1,
        );
        sizes.set(key, size);
      }
      return size;
    };
    const linkable = await Promise.all(
      body.map(async (part) => {
        if (Buffer.isBuffer(part)) return false;
        const size = await sizeOf(part.key);
        return part.end <= size && part.end - part.start >= size * LINK_MIN_SHARE;
      }),
    );
    if (!linkable.includes(true)) return undefined;
    const plan: CompositionPlan = { linked: [], copied: [], spans: [] };
    const fileOf = new Map<string, number>();
    let copiedBytes = 0;
    const addSpan = (file: number, position: number, length: number): void => {
      if (length === 0) return;
      const last = plan.spans[plan.spans.length - 1];
      if (last && last[0] === file && last[1] + last[2] === position) last[2] += length;
      else plan.spans.push([file, position, length]);
    };
    body.forEach((part, i) => {
      if (linkable[i]) {
        const { key, start, end } = part as StoredRange;
        let file = fileOf.get(key);
        if (file === undefined) {
          plan.linked.push(this.pathOf(key));
          file = plan.linked.length;
          fileOf.set(key, file);
        }
        addSpan(file, start, end - start);
        return;
      }
      for (const b of Buffer.isBuffer(part) ? [part] : part.bytes) {
        plan.copied.push(b);
        addSpan(0, copiedBytes, b.length);
        copiedBytes += b.length;
      }
    });
    return plan;
  }

  /**
   * Writes a composed object: links and written bytes in a temp directory, made durable, then
   * renamed into place (replacing an earlier copy of the object, as when a roll is redone).
   */
  private async putComposed(key: string, file: string, plan: CompositionPlan, options: PutOptions): Promise<void> {
    const dirPath = path.dirname(file);
    const tmp = path.join(dirPath, this.tempPrefix + String(++this.temps));
    const dir = await this.usableDir(dirPath, () => mkdir(tmp).then(() => undefined));
    try {
      const files = [COPIED, ...plan.linked.map((_, i) => String(i + 1))];
      await Promise.all(plan.linked.map((src, i) => link(src, path.join(tmp, files[i + 1]))));
      const data = await open(path.join(tmp, COPIED), TEMP_FLAGS);
      try {
        await this.writeBody(data, plan.copied, options);
      } finally {
        await data.close();
      }
      let size = 0;
      for (const [, , length] of plan.spans) size += length;
      const manifest = await open(path.join(tmp, MANIFEST), TEMP_FLAGS);
      try {
        await manifest.writeFile(JSON.stringify({ version: 1, size, files, spans: plan.spans }));
      } finally {
        await manifest.close();
      }
      // The links are durable once the directory holding them is.
      await syncDir(tmp);
      const composed = file + COMPOSED_SUFFIX;
      await this.removeTree(composed);
      await rename(tmp, composed);
      await unlink(file).catch((err) => {
        if (!isMissing(err)) throw err;
      });
      await this.syncDir(dir);
      // A get() that ran meanwhile may have cached the manifest this replaced.
      this.manifests.delete(key);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    } finally {
      this.release(dir);
    }
  }

  /** Removes a directory tree at once (renamed aside first, so no reader sees half of it). */
  private async removeTree(p: string): Promise<boolean> {
    const aside = path.join(path.dirname(p), this.tempPrefix + String(++this.temps));
    try {
      await rename(p, aside);
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
    await rm(aside, { recursive: true, force: true });
    return true;
  }

  /** The manifest of the composed object at `key`, or undefined when there is none. */
  private async manifestOf(key: string, file: string): Promise<Manifest | undefined> {
    const known = this.manifests.get(key);
    if (known) {
      this.manifests.delete(key);
      this.manifests.set(key, known);
      return known;
    }
    const dir = file + COMPOSED_SUFFIX;
    let text: string;
    let lastModified: Date;
    try {
      const fh = await open(path.join(dir, MANIFEST), 'r');
      try {
        lastModified = (await fh.stat()).mtime;
        text = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    const raw = JSON.parse(text) as { version: number; size: number; files: string[]; spans: Array<[number, number, number]> };
    if (raw.version !== 1) throw new Error(`composed object ${key}: manifest version ${raw.version} is not supported`);
    const starts: number[] = [];
    let at = 0;
    for (const [, , length] of raw.spans) {
      starts.push(at);
      at += length;
    }
    if (at !== raw.size) throw new Error(`composed object ${key}: manifest spans ${at} bytes, not ${raw.size}`);
    const manifest: Manifest = { dir, size: raw.size, files: raw.files, spans: raw.spans, starts, lastModified };
    this.manifests.set(key, manifest);
    if (this.manifests.size > MAX_MANIFESTS) this.manifests.delete(this.manifests.keys().next().value!);
    return manifest;
  }

  private async readComposed(key: string, m: Manifest, range?: ByteRange): Promise<Buffer> {
    const start = range ? Math.min(Math.max(range.start, 0), m.size) : 0;
    const end = range ? Math.min(Math.max(range.end, start), m.size) : m.size;
    const out = Buffer.allocUnsafe(end - start);
    let i = firstIndex(m.starts.length, (j) => m.starts[j] + m.spans[j][2] > start);
    const reads: Array<Promise<void>> = [];
    for (; i < m.spans.length && m.starts[i] < end; i++) {
      const [file, position, length] = m.spans[i];
      const from = Math.max(start, m.starts[i]);
      const to = Math.min(end, m.starts[i] + length);
      reads.push(readExactly(path.join(m.dir, m.files[file]), out.subarray(from - start, to - start), position + (from - m.starts[i])));
    }
    try {
      await Promise.all(reads);
    } catch (err) {
      if (isMissing(err)) {
        this.manifests.delete(key);
        throw new ObjectNotFoundError(key);
      }
      throw err;
    }
    return out;
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    m.requests.inc({ store: 'fs', request: 'GetObject' });
    const file = this.pathOf(key);
    const known = this.manifests.get(key);
    if (known) return this.readComposed(key, known, range);
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if (!isMissing(err)) throw err;
      const composed = await this.manifestOf(key, file);
      if (!composed) throw new ObjectNotFoundError(key);
      return this.readComposed(key, composed, range);
    }
    try {
      if (!range) return await fh.readFile();
      const { size } = await fh.stat();
      // Clamped like an HTTP range: reading past the end returns what exists.
      const start = Math.min(Math.max(range.start, 0), size);
      const end = Math.min(Math.max(range.end, start), size);
      const buf = Buffer.allocUnsafe(end - start);
      let done = 0;
      while (done < buf.length) {
        const { bytesRead } = await fh.read(buf, done, buf.length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === buf.length ? buf : buf.subarray(0, done);
    } catch (err) {
      // open() succeeds on a directory (the 'a' of an 'a/b' key); reading it is what fails.
      if (errCode(err) === 'EISDIR') throw new ObjectNotFoundError(key);
      throw err;
    } finally {
      await fh.close();
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    m.requests.inc({ store: 'fs', request: 'HeadObject' });
    const file = this.pathOf(key);
    if (this.reserved.has(key)) return undefined;
    try {
      const st = await stat(file);
      if (st.isFile()) return { key, size: st.size, lastModified: st.mtime };
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    const composed = await this.manifestOf(key, file);
    return composed && { key, size: composed.size, lastModified: composed.lastModified };
  }

  async delete(key: string): Promise<void> {
    m.requests.inc({ store: 'fs', request: 'DeleteObject' });
    const file = this.pathOf(key);
    await (await this.takeReserved(key))?.close().catch(() => undefined);
    this.manifests.delete(key);
    let existed = true;
    try {
      await unlink(file);
    } catch (err) {
      if (!isMissing(err)) throw err;
      existed = false;
    }
    if (await this.removeTree(file + COMPOSED_SUFFIX)) existed = true;
    if (!existed) return;
    // Objects are keyed by topic and partition, so directories would pile up forever after
    // topics are deleted; prune the ones this delete emptied.
    for (let dir = path.dirname(file); dir !== this.root && dir.startsWith(this.root); dir = path.dirname(dir)) {
      try {
        await rmdir(dir);
        this.dropDir(dir);
      } catch {
        break;
      }
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    m.requests.inc({ store: 'fs', request: 'ListObjectsV2' });
    // Start the walk at the deepest directory the prefix pins down instead of the root.
    const slash = prefix.lastIndexOf('/');
    const baseKey = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    const out: ObjectInfo[] = [];
    await this.walk(baseKey, prefix, out);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    // A key both plain and composed (a put replacing the other kind) is listed once; a
    // reserved key is no object until its put.
    return out.filter((o, i) => (i === 0 || out[i - 1].key !== o.key) && !this.reserved.has(o.key));
  }

  async close(): Promise<void> {
    await Promise.all([...this.reserved.keys()].map((key) => this.unreserve(key).catch(() => undefined)));
    for (const p of [...this.dirs.keys()]) this.dropDir(p);
  }

  private async walk(dirKey: string, prefix: string, out: ObjectInfo[]): Promise<void> {
    const dir = dirKey === '' ? this.root : path.join(this.root, ...dirKey.slice(0, -1).split('/'));
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    await Promise.all(
      entries.map(async (entry) => {
        if (entry.name.startsWith(TEMP_PREFIX)) {
          await removeIfStale(path.join(dir, entry.name));
          return;
        }
        const key = dirKey + entry.name;
        if (entry.isDirectory() && entry.name.endsWith(COMPOSED_SUFFIX)) {
          const objectKey = key.slice(0, -COMPOSED_SUFFIX.length);
          if (!objectKey.startsWith(prefix)) return;
          const composed = await this.manifestOf(objectKey, path.join(dir, objectKey.slice(dirKey.length)));
          if (composed) out.push({ key: objectKey, size: composed.size, lastModified: composed.lastModified });
          return;
        }
        if (entry.isDirectory()) {
          const sub = key + '/';
          // Only descend where keys could still start with the prefix.
          if (sub.startsWith(prefix) || prefix.startsWith(sub)) await this.walk(sub, prefix, out);
          return;
        }
        if (!entry.isFile() || !key.startsWith(prefix)) return;
        try {
          const st = await stat(path.join(dir, entry.name));
          out.push({ key, size: st.size, lastModified: st.mtime });
        } catch (err) {
          // Deleted while we were listing: it is simply not in the listing.
          if (!isMissing(err)) throw err;
        }
      }),
    );
  }

  private pathOf(key: string): string {
    if (key.length === 0) throw new InvalidObjectKeyError(key, 'empty');
    if (key.includes('\0')) throw new InvalidObjectKeyError(key, 'contains NUL');
    const parts = key.split('/');
    for (const part of parts) {
      if (part === '' || part === '.' || part === '..') {
        throw new InvalidObjectKeyError(key, 'empty, "." or ".." path segment');
      }
      if (part.startsWith(TEMP_PREFIX)) throw new InvalidObjectKeyError(key, `segment starts with ${TEMP_PREFIX}`);
      if (part.endsWith(COMPOSED_SUFFIX)) throw new InvalidObjectKeyError(key, `segment ends with ${COMPOSED_SUFFIX}`);
    }
    return path.join(this.root, ...parts);
  }

  /** The open directory at `p` (made durable first if new), counted as used until release(). */
  private async useDir(p: string, previous?: Dir): Promise<Dir> {
    if (previous) this.release(previous);
    for (;;) {
      let made = this.dirs.get(p);
      if (made) {
        this.dirs.delete(p);
        this.dirs.set(p, made);
      } else {
        const opening = this.makeDirDurable(p).then(async (): Promise<Dir> => ({ path: p, handle: await open(p, 'r'), users: 0, dropped: false, closed: false }));
        made = opening;
        this.dirs.set(p, opening);
        opening.catch(() => this.dirs.get(p) === opening && this.dirs.delete(p));
        if (this.dirs.size > MAX_OPEN_DIRS) this.dropDir(this.dirs.keys().next().value!);
      }
      const dir = await made;
      // Dropped while we waited (and maybe closed): take the current one instead.
      if (dir.dropped) continue;
      dir.users++;
      return dir;
    }
  }

  private release(dir: Dir): void {
    dir.users--;
    this.closeIfIdle(dir);
  }

  /** Forgets the directory at `p`; its handle closes once no put needs it any more. */
  private dropDir(p: string): void {
    const made = this.dirs.get(p);
    if (!made) return;
    this.dirs.delete(p);
    made.then(
      (dir) => {
        dir.dropped = true;
        this.closeIfIdle(dir);
      },
      () => undefined,
    );
  }

  private closeIfIdle(dir: Dir): void {
    if (!dir.dropped || dir.closed || dir.users > 0 || dir.running || dir.queued) return;
    dir.closed = true;
    void dir.handle.close().catch(() => undefined);
  }

  /** mkdir -p, plus an fsync of the parent of every directory it created, so the new path survives a crash. */
  private async makeDirDurable(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true });
    if (first === undefined) return;
    for (let d = dir; ; d = path.dirname(d)) {
      await syncDir(path.dirname(d));
      if (d === first || path.dirname(d) === d) break;
    }
  }

  /**
   * fsync(dir) for a rename that has finished: joins the next fsync to start, never one
   * already running (it may have begun before the rename). Objects written at the same time
   * share one directory fsync.
   */
  private syncDir(dir: Dir): Promise<void> {
    if (dir.queued) return dir.queued;
    if (!dir.running) return this.startDirSync(dir);
    const queued = dir.running
      .catch(() => undefined)
      .then(() => {
        dir.queued = undefined;
        return this.startDirSync(dir);
      });
    dir.queued = queued;
    return queued;
  }

  private startDirSync(dir: Dir): Promise<void> {
    const run = dir.handle.sync().finally(() => {
      if (dir.running === run) dir.running = undefined;
      this.closeIfIdle(dir);
    });
    dir.running = run;
    return run;
  }
}

/**
 * Writes the chunks in order with vectored writes of at most `sliceBytes()` each (asked before
 * each write; chunks are first cut to at most `cut`) and 1024 buffers, the most one call takes:
 * on an O_DSYNC file each is on disk when it returns.
 */
async function writeAll(fh: FileHandle, body: Buffer[], cut: number, sliceBytes: () => number): Promise<void> {
  const chunks: Buffer[] = [];
  for (const b of body) {
    for (let at = 0; at < b.length; at += cut) chunks.push(at === 0 && b.length <= cut ? b : b.subarray(at, at + cut));
  }
  let i = 0;
  let position = 0;
  while (i < chunks.length) {
    const slice = sliceBytes();
    let n = 1;
    let bytes = chunks[i].length;
    while (i + n < chunks.length && n < 1024 && bytes + chunks[i + n].length <= slice) bytes += chunks[i + n++].length;
    const { bytesWritten } = await fh.writev(chunks.slice(i, i + n), position);
    if (!DSYNC) await fh.datasync();
    position += bytesWritten;
    for (let left = bytesWritten; left > 0; ) {
      if (chunks[i].length <= left) left -= chunks[i++].length;
      else {
        chunks[i] = chunks[i].subarray(left);
        left = 0;
      }
    }
  }
}

async function removeIfStale(p: string): Promise<void> {
  try {
    const st = await stat(p);
    if (Date.now() - st.mtimeMs > STALE_TEMP_MS) await rm(p, { recursive: true, force: true });
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

/** Fills `buf` from `file` at `position`; a file shorter than that is corrupt. */
async function readExactly(file: string, buf: Buffer, position: number): Promise<void> {
  const fh = await open(file, 'r');
  try {
    for (let done = 0; done < buf.length; ) {
      const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
      if (bytesRead === 0) throw new Error(`${file} ends before byte ${position + buf.length}`);
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

/** The first index in [0, n) for which `pred` holds (false before it, true from it on), or n. */
function firstIndex(n: number, pred: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pred(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** ENOTDIR: a key like 'a/b' when 'a' is an object, which is also "no such object". */
function isMissing(err: unknown): boolean {
  const code = errCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}
