// FsObjectStore: the embedded ObjectStore adapter, one file per object under a root directory
// ('/' in a key is a subdirectory). It owns durability on a local disk: a put() resolves only
// after the data and the directory entry pointing at it have reached the disk.
//
// A put is on the path of every durable produce (one WAL object per flush), so it is kept to
// few file-system calls, each a round trip through libuv's thread pool: the temp file is
// opened O_DSYNC (a write returns once its data and the file size are on disk: no separate
// fdatasync), and directories stay open for their fsyncs, which puts finishing together share.

import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ObjectNotFoundError, type ByteRange, type ObjectInfo, type ObjectStore, type PutOptions } from './object-store.js';

/** Temp files share directories with objects; keys may not use this name prefix. */
const TEMP_PREFIX = '.skiff-tmp-';
/** Where the platform has no O_DSYNC, each write is followed by an fdatasync instead. */
const DSYNC = fsConstants.O_DSYNC ?? 0;
const TEMP_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | DSYNC;
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

  constructor(rootDir: string, options: FsObjectStoreOptions = {}) {
    this.root = path.resolve(rootDir);
    this.largeObject = options.largeObjectBytes ?? 16 << 20;
    this.slice = options.sliceBytes ?? 1 << 20;
    this.bulkSlice = options.bulkSliceBytes ?? 8 << 20;
  }

  async put(key: string, body: Buffer | Buffer[], options: PutOptions = {}): Promise<void> {
    const file = this.pathOf(key);
    const dirPath = path.dirname(file);
    const tmp = path.join(dirPath, this.tempPrefix + String(++this.temps));
    // delete() prunes empty directories, so a directory made here can vanish before the
    // temp file is created in it; that race is retried rather than locked against.
    let fh: FileHandle | undefined;
    let dir: Dir | undefined;
    try {
      for (let attempt = 0; fh === undefined; attempt++) {
        try {
          dir = await this.useDir(dirPath, dir);
          fh = await open(tmp, TEMP_FLAGS);
        } catch (err) {
          this.dropDir(dirPath);
          if (errCode(err) !== 'ENOENT' || attempt >= 5) throw err;
        }
      }
      try {
        const chunks = Array.isArray(body) ? body : [body];
        let size = 0;
        for (const c of chunks) size += c.length;
        const { bulk } = options;
        const slice = () => ((typeof bulk === 'function' ? bulk() : bulk) ? this.bulkSlice : this.slice);
        if (size <= this.largeObject) await writeAll(fh, chunks, Infinity, () => Infinity);
        else await writeAll(fh, chunks, Math.min(this.slice, this.bulkSlice), slice);
        // Renaming an open file is fine; its close need not hold up the rename.
        const closed = fh.close();
        fh = undefined;
        await Promise.all([closed, rename(tmp, file)]);
        await this.syncDir(dir!);
      } catch (err) {
        await fh?.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
    } finally {
      if (dir) this.release(dir);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    let fh: FileHandle;
    try {
      fh = await open(this.pathOf(key), 'r');
    } catch (err) {
      if (isMissing(err)) throw new ObjectNotFoundError(key);
      throw err;
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
    try {
      const st = await stat(this.pathOf(key));
      if (!st.isFile()) return undefined;
      return { key, size: st.size, lastModified: st.mtime };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await unlink(file);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
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
    // Start the walk at the deepest directory the prefix pins down instead of the root.
    const slash = prefix.lastIndexOf('/');
    const baseKey = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    const out: ObjectInfo[] = [];
    await this.walk(baseKey, prefix, out);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async close(): Promise<void> {
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
        if (entry.name.startsWith(TEMP_PREFIX)) return;
        const key = dirKey + entry.name;
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
