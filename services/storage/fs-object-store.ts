// FsObjectStore: the embedded ObjectStore adapter, one file per object under a root directory
// ('/' in a key is a subdirectory). It owns durability on a local disk: a put() resolves only
// after the data and the directory entry pointing at it have reached the disk.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ObjectNotFoundError, type ByteRange, type ObjectInfo, type ObjectStore } from './object-store.js';

/** Temp files share directories with objects; keys may not use this name prefix. */
const TEMP_PREFIX = '.skiff-tmp-';

export class InvalidObjectKeyError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`invalid object key '${key}': ${reason}`);
    this.name = 'InvalidObjectKeyError';
  }
}

export class FsObjectStore implements ObjectStore {
  private readonly root: string;

  constructor(rootDir: string) {
    this.root = path.resolve(rootDir);
  }

  async put(key: string, body: Buffer | Buffer[]): Promise<void> {
    const file = this.pathOf(key);
    const dir = path.dirname(file);
    const tmp = path.join(dir, TEMP_PREFIX + randomBytes(8).toString('hex'));
    // delete() prunes empty directories, so a directory made here can vanish before the
    // temp file is created in it; that race is retried rather than locked against.
    let fh: FileHandle | undefined;
    for (let attempt = 0; fh === undefined; attempt++) {
      try {
        await this.makeDirDurable(dir);
        fh = await open(tmp, 'wx');
      } catch (err) {
        if (errCode(err) !== 'ENOENT' || attempt >= 5) throw err;
      }
    }
    try {
      await writeAll(fh, body);
      // datasync covers the file size too, which is all the metadata a new file needs.
      await fh.datasync();
      await fh.close();
      fh = undefined;
      await rename(tmp, file);
      await syncDir(dir);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
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

  async close(): Promise<void> {}

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

  /** mkdir -p, plus an fsync of the parent of every directory it created, so the new path survives a crash. */
  private async makeDirDurable(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true });
    if (first === undefined) return;
    for (let d = dir; ; d = path.dirname(d)) {
      await syncDir(path.dirname(d));
      if (d === first || path.dirname(d) === d) break;
    }
  }
}

async function writeAll(fh: FileHandle, body: Buffer | Buffer[]): Promise<void> {
  // One vectored write for all the chunks; the loop only matters for short writes.
  let chunks = (Array.isArray(body) ? body : [body]).filter((b) => b.length > 0);
  let position = 0;
  while (chunks.length > 0) {
    const { bytesWritten } = await fh.writev(chunks.slice(0, 1024), position);
    position += bytesWritten;
    let left = bytesWritten;
    while (left > 0 && chunks.length > 0) {
      if (chunks[0].length <= left) {
        left -= chunks[0].length;
        chunks = chunks.slice(1);
      } else {
        chunks = [chunks[0].subarray(left), ...chunks.slice(1)];
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
