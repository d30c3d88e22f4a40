// The ObjectStore contract, run against FsObjectStore and S3ObjectStore (on s3rver), plus the
// S3 adapter's retry behaviour through a fault-injecting proxy and a server restart.

import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdir, mkdtemp, open, readdir, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FsObjectStore, InvalidObjectKeyError } from '../../services/storage/fs-object-store.js';
import { ObjectNotFoundError, type ObjectStore } from '../../services/storage/object-store.js';
import { S3ObjectStore, S3RetriesExhaustedError, type S3ObjectStoreOptions } from '../../services/storage/s3-object-store.js';
import { freePort, startS3, type S3Server } from '../support/servers.js';
import { storageMetrics } from '../../services/storage/metrics.js';

/** skiff_object_store_requests_total now, by request name, for one store kind. */
async function requestCounts(store: 'fs' | 's3'): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const v of (await storageMetrics.requests.get()).values) if (v.labels.store === store) out.set(String(v.labels.request), v.value);
  return out;
}

function countsSince(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) out[k] = v - (before.get(k) ?? 0);
  return out;
}

const MiB = 1024 * 1024;

interface StoreHarness {
  /** A store with nothing in it. largeThreshold: force multipart uploads above this size where the adapter has them. */
  open(opts?: { multipartThresholdBytes?: number }): Promise<ObjectStore>;
}

function objectStoreContract(name: string, harness: () => StoreHarness): void {
  describe(`ObjectStore contract: ${name}`, () => {
    it('reads back exactly what a put wrote, for keys with and without slashes', async () => {
      const store = await harness().open();
      await store.put('plain', Buffer.from('hello'));
      await store.put('wal/broker-1/00000000000000000042', Buffer.from('world'));
      expect((await store.get('plain')).toString()).toBe('hello');
      expect((await store.get('wal/broker-1/00000000000000000042')).toString()).toBe('world');
      await store.close();
    });

    it('stores a list of buffers as one object, in order', async () => {
      const store = await harness().open();
      const parts = [Buffer.from('head-'), Buffer.alloc(0), randomBytes(3 << 20), Buffer.from('-tail')];
      await store.put('chunks/one', parts);
      expect((await store.get('chunks/one')).equals(Buffer.concat(parts))).toBe(true);
      expect((await store.get('chunks/one', { start: 3, end: 12 })).equals(Buffer.concat(parts).subarray(3, 12))).toBe(true);
      await store.close();
    });

    it('stores an empty object', async () => {
      const store = await harness().open();
      await store.put('empty', Buffer.alloc(0));
      expect((await store.get('empty')).length).toBe(0);
      expect((await store.head('empty'))?.size).toBe(0);
      await store.close();
    });

    it('round-trips a 20 MB body byte for byte', async () => {
      const store = await harness().open();
      const body = randomBytes(20 * 1000 * 1000);
      await store.put('big/20mb', body);
      const got = await store.get('big/20mb');
      expect(got.length).toBe(body.length);
      expect(got.equals(body)).toBe(true);
      await store.close();
    });

    it('round-trips a body large enough for a multipart upload', async () => {
      const store = await harness().open({ multipartThresholdBytes: 5 * MiB });
      const body = randomBytes(12 * MiB + 12345);
      await store.put('big/multipart', body);
      const got = await store.get('big/multipart');
      expect(got.equals(body)).toBe(true);
      expect(await store.get('big/multipart', { start: 5 * MiB - 10, end: 5 * MiB + 10 })).toEqual(
        body.subarray(5 * MiB - 10, 5 * MiB + 10),
      );
      expect((await store.head('big/multipart'))?.size).toBe(body.length);
      await store.close();
    });

    it('serves byte ranges with an exclusive end, clamped to the object', async () => {
      const store = await harness().open();
      const body = Buffer.from('0123456789abcdef');
      await store.put('seg/ranges', body);
      expect((await store.get('seg/ranges', { start: 0, end: 4 })).toString()).toBe('0123');
      expect((await store.get('seg/ranges', { start: 10, end: 16 })).toString()).toBe('abcdef');
      expect((await store.get('seg/ranges', { start: 14, end: 100 })).toString()).toBe('ef');
      expect((await store.get('seg/ranges', { start: 5, end: 5 })).length).toBe(0);
      expect((await store.get('seg/ranges', { start: 16, end: 20 })).length).toBe(0);
      await store.close();
    });

    it('rejects reads of a missing key with ObjectNotFoundError and heads it as undefined', async () => {
      const store = await harness().open();
      await expect(store.get('nope')).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get('no/such/key', { start: 0, end: 10 })).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get('no/such/key')).rejects.toMatchObject({ key: 'no/such/key' });
      expect(await store.head('nope')).toBeUndefined();
      await store.close();
    });

    it('heads an object with its size and modification time', async () => {
      const store = await harness().open();
      const before = Date.now();
      await store.put('h/one', Buffer.alloc(1234, 7));
      const info = await store.head('h/one');
      expect(info).toMatchObject({ key: 'h/one', size: 1234 });
      // S3 timestamps have one-second resolution.
      expect(info!.lastModified.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
      await store.close();
    });

    it('lists keys under a prefix in key order, with sizes', async () => {
      const store = await harness().open();
      const keys = ['wal/b/2', 'wal/a/10', 'seg/x/1', 'wal/a/9', 'wal/a/1', 'walrus', 'wal/a/1-x/extra', 'wal/a-b'];
      // Written in parallel, so order of creation says nothing about order of listing.
      await Promise.all(keys.map((k, i) => store.put(k, Buffer.alloc(i + 1))));
      const list = async (p: string): Promise<string[]> => (await store.list(p)).map((o) => o.key);
      // Byte order across directory boundaries: '-' sorts before '/' and before digits.
      expect(await list('wal/a/')).toEqual(['wal/a/1', 'wal/a/1-x/extra', 'wal/a/10', 'wal/a/9']);
      expect(await list('wal/a/1')).toEqual(['wal/a/1', 'wal/a/1-x/extra', 'wal/a/10']);
      expect(await list('wal')).toEqual(['wal/a-b', 'wal/a/1', 'wal/a/1-x/extra', 'wal/a/10', 'wal/a/9', 'wal/b/2', 'walrus']);
      expect(await list('')).toEqual([...keys].sort());
      expect(await list('nothing/')).toEqual([]);
      const infos = await store.list('wal/b/');
      expect(infos).toMatchObject([{ key: 'wal/b/2', size: 1 }]);
      expect(infos[0].lastModified).toBeInstanceOf(Date);
      await store.close();
    });

    it('stores stored ranges as their bytes, whatever becomes of the objects they came from', async () => {
      const store = await harness().open();
      const wal = randomBytes(10_000);
      await store.put('wal/1/a', wal);
      const head = Buffer.from('head-');
      const tail = randomBytes(300);
      const body = [head, { key: 'wal/1/a', start: 100, end: 9_000, bytes: [wal.subarray(100, 5_000), wal.subarray(5_000, 9_000)] }, tail];
      const whole = Buffer.concat([head, wal.subarray(100, 9_000), tail]);
      await store.put('seg/x', body);
      expect((await store.get('seg/x')).equals(whole)).toBe(true);
      // Ranges that start and end inside different parts.
      for (const [start, end] of [[0, 5], [3, 40], [4_000, 8_910], [8_900, 9_500], [8_000, 20_000]]) {
        expect((await store.get('seg/x', { start, end })).equals(whole.subarray(start, end)), `${start}-${end}`).toBe(true);
      }
      expect((await store.head('seg/x'))?.size).toBe(whole.length);
      expect((await store.list('seg/')).map((o) => [o.key, o.size])).toEqual([['seg/x', whole.length]]);
      await store.delete('wal/1/a');
      expect((await store.get('seg/x')).equals(whole)).toBe(true);
      await store.delete('seg/x');
      await expect(store.get('seg/x')).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(await store.head('seg/x')).toBeUndefined();
      expect(await store.list('')).toEqual([]);
      await store.close();
    });

    it('reads back an unpublished put (a WAL object), and a retried one replaces what the first wrote', async () => {
      const store = await harness().open();
      const first = randomBytes(300_000);
      const retry = randomBytes(1000);
      await store.put('wal/1/0001', [first.subarray(0, 1000), first.subarray(1000)], { unpublished: true });
      expect((await store.get('wal/1/0001')).equals(first)).toBe(true);
      await store.put('wal/1/0001', retry, { unpublished: true });
      expect((await store.get('wal/1/0001')).equals(retry)).toBe(true);
      expect((await store.list('wal/')).map((o) => [o.key, o.size])).toEqual([['wal/1/0001', 1000]]);
      await store.close();
    });

    it('treats deleting an absent object as success, and a deleted object as gone', async () => {
      const store = await harness().open();
      await store.delete('never/existed');
      await store.put('d/1', Buffer.from('x'));
      await store.put('d/2', Buffer.from('y'));
      await store.delete('d/1');
      await store.delete('d/1');
      await expect(store.get('d/1')).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(await store.head('d/1')).toBeUndefined();
      expect((await store.list('d/')).map((o) => o.key)).toEqual(['d/2']);
      // A key can be written again after its delete.
      await store.put('d/1', Buffer.from('z'));
      expect((await store.get('d/1')).toString()).toBe('z');
      await store.close();
    });
  });
}

// --- FsObjectStore ----------------------------------------------------------------------------

const tempDirs: string[] = [];
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skiff-fs-store-'));
  tempDirs.push(dir);
  return dir;
}

objectStoreContract('FsObjectStore', () => ({
  open: async () => new FsObjectStore(path.join(await tempDir(), 'objects')),
}));

describe('FsObjectStore', () => {
  it('counts its operations under the S3 request each stands for', async () => {
    const store = new FsObjectStore(await mkdtemp(path.join(os.tmpdir(), 'skiff-fs-count-')));
    const before = await requestCounts('fs');
    await store.put('a/1', Buffer.from('x'));
    await store.put('a/2', [Buffer.from('y'), Buffer.from('z')], { unpublished: true });
    await store.get('a/1');
    await store.head('a/2');
    await store.list('a/');
    await store.delete('a/1');
    expect(countsSince(before, await requestCounts('fs'))).toEqual({ PutObject: 2, GetObject: 1, HeadObject: 1, ListObjectsV2: 1, DeleteObject: 1 });
    await store.close();
  });

  it('leaves no temp files behind after puts and prunes directories its deletes emptied', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    await Promise.all([...Array(20).keys()].map((i) => store.put(`t/p${i % 4}/${i}`, Buffer.alloc(10, i))));
    const files = await readdir(root, { recursive: true });
    expect(files.filter((f) => f.includes('.skiff-tmp-'))).toEqual([]);
    for (let i = 0; i < 20; i++) await store.delete(`t/p${i % 4}/${i}`);
    expect(await readdir(root)).toEqual([]);
  });

  it('writes an unpublished object in place, with no temp file, while other puts replace a key atomically', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    const inode = async (key: string) => (await stat(path.join(root, key))).ino;
    await store.put('wal/1/a', Buffer.alloc(5000, 1), { unpublished: true });
    const walInode = await inode('wal/1/a');
    // Watch the directory while a second put of the key is under way.
    const seen = new Set<string>();
    let done = false;
    const second = store.put('wal/1/a', [Buffer.alloc(8 * MiB, 2), Buffer.alloc(8 * MiB, 3)], { unpublished: true }).then(() => (done = true));
    while (!done) for (const f of await readdir(path.join(root, 'wal/1'))) seen.add(f);
    await second;
    expect([...seen].filter((f) => f.includes('.skiff-tmp-'))).toEqual([]);
    expect(await inode('wal/1/a')).toBe(walInode);
    expect((await store.get('wal/1/a', { start: 8 * MiB - 1, end: 8 * MiB + 1 })).toJSON().data).toEqual([2, 3]);
    // A put without the option writes a new file and renames it over the key.
    await store.put('seg/b', Buffer.alloc(10, 1));
    const segInode = await inode('seg/b');
    await store.put('seg/b', Buffer.alloc(10, 2));
    expect(await inode('seg/b')).not.toBe(segInode);
  });

  it('creates a reserved object ahead, so that its put only writes; gives back the reservations no put used', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    const syncs = vi.spyOn(store as unknown as { startDirSync: () => Promise<void> }, 'startDirSync');
    for (const key of ['wal/1/a', 'wal/1/b', 'wal/1/c', 'wal/1/d']) store.reserve(key);
    // Created in the background, entries synced: empty objects until their puts.
    await expect.poll(async () => (await readdir(path.join(root, 'wal/1'))).sort()).toEqual(['a', 'b', 'c', 'd']);
    await expect.poll(() => syncs.mock.calls.length).toBeGreaterThan(0);
    // No objects yet to anyone who lists or asks.
    expect(await store.list('wal/')).toEqual([]);
    expect(await store.head('wal/1/a')).toBeUndefined();
    const before = syncs.mock.calls.length;
    await store.put('wal/1/a', [Buffer.alloc(3000, 1), Buffer.alloc(2000, 2)], { unpublished: true });
    expect(syncs.mock.calls.length).toBe(before); // no directory sync on the put's way
    const back = await store.get('wal/1/a');
    expect(back.length).toBe(5000);
    expect([back[0], back[2999], back[3000], back[4999]]).toEqual([1, 1, 2, 2]);
    // An unreserved key puts the usual way, syncing its directory.
    await store.put('wal/1/e', Buffer.alloc(10, 5), { unpublished: true });
    expect(syncs.mock.calls.length).toBeGreaterThan(before);
    syncs.mockRestore();
    await store.unreserve('wal/1/b');
    await store.delete('wal/1/c');
    expect((await readdir(path.join(root, 'wal/1'))).sort()).toEqual(['a', 'd', 'e']);
    expect((await store.list('wal/1/')).map((o) => o.key)).toEqual(['wal/1/a', 'wal/1/e']);
    // close() removes the reservation left, and nothing else.
    await store.close();
    expect((await readdir(path.join(root, 'wal/1'))).sort()).toEqual(['a', 'e']);
    expect((await new FsObjectStore(root).get('wal/1/e')).toJSON().data).toEqual(Array(10).fill(5));
  });

  it('writes a large object in flushed slices and reads it back intact', async () => {
    const store = new FsObjectStore(await tempDir(), { largeObjectBytes: 5000, sliceBytes: 1000 });
    const parts = [randomBytes(10), Buffer.alloc(0), randomBytes(4321), randomBytes(999), randomBytes(1), randomBytes(2500)];
    await store.put('big/one', parts);
    expect((await store.get('big/one')).equals(Buffer.concat(parts))).toBe(true);
    await store.put('big/two', randomBytes(10));
    expect((await store.get('big/two')).length).toBe(10);
  });

  it('switches a bulk put between small and large slices as it goes, and the object reads back intact', async () => {
    const store = new FsObjectStore(await tempDir(), { largeObjectBytes: 5000, sliceBytes: 1000, bulkSliceBytes: 4000 });
    const body = randomBytes(20_000);
    const probe = await open(path.join(await tempDir(), 'probe'), 'w');
    const handles = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const writes = vi.spyOn(handles, 'writev');
    // Small slices until the caller says it is behind, large ones after.
    let asked = 0;
    await store.put('bulk/one', [body.subarray(0, 7000), body.subarray(7000)], { bulk: () => ++asked > 3 });
    const sizes = writes.mock.calls.map(([bufs]) => bufs.reduce((n, b) => n + b.byteLength, 0));
    writes.mockRestore();
    expect(sizes).toEqual([1000, 1000, 1000, 4000, 4000, 4000, 4000, 1000]);
    expect((await store.get('bulk/one')).equals(body)).toBe(true);
  });

  it('shares directory fsyncs between puts that finish together, and makes pruned directories again', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    const syncs = vi.spyOn(store as unknown as { startDirSync: () => Promise<void> }, 'startDirSync');
    await Promise.all([...Array(30).keys()].map((i) => store.put(`w/${i}`, Buffer.alloc(100, i))));
    expect(syncs.mock.calls.length).toBeLessThan(30);
    for (let i = 0; i < 30; i++) expect((await store.get(`w/${i}`))[0]).toBe(i);
    for (let i = 0; i < 30; i++) await store.delete(`w/${i}`);
    expect(await readdir(root)).toEqual([]);
    await store.put('w/again', Buffer.from('x'));
    expect((await store.get('w/again')).toString()).toBe('x');
  });

  it('links a stored range that is most of its file instead of writing its bytes again', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    const wal = [randomBytes(4_000), randomBytes(3_000)];
    await store.put('wal/1', wal[0]);
    await store.put('wal/2', wal[1]);
    const index = Buffer.from('index');
    await store.put('seg/a', [
      { key: 'wal/1', start: 0, end: 3_900, bytes: [wal[0].subarray(0, 3_900)] },
      { key: 'wal/2', start: 0, end: 3_000, bytes: [wal[1]] },
      index,
    ]);
    // Each WAL file now has a second name, and only the index was written out.
    expect((await stat(path.join(root, 'wal/1'))).nlink).toBe(2);
    expect((await stat(path.join(root, 'wal/2'))).nlink).toBe(2);
    expect((await stat(path.join(root, 'seg/a.skiff-parts/0'))).size).toBe(index.length);
    const whole = Buffer.concat([wal[0].subarray(0, 3_900), wal[1], index]);
    await store.delete('wal/1');
    await store.delete('wal/2');
    // A fresh store (no manifest in memory) reads it the same.
    const again = new FsObjectStore(root);
    expect((await again.get('seg/a')).equals(whole)).toBe(true);
    expect((await again.get('seg/a', { start: 3_890, end: 3_910 })).equals(whole.subarray(3_890, 3_910))).toBe(true);
    await again.delete('seg/a');
    expect(await readdir(root)).toEqual([]);
  });

  it('copies a stored range that is a small part of its file, or whose file is gone', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    const wal = randomBytes(10_000);
    await store.put('wal/1', wal);
    const part = wal.subarray(2_000, 3_000);
    await store.put('seg/small', [{ key: 'wal/1', start: 2_000, end: 3_000, bytes: [part] }]);
    await store.put('seg/gone', [{ key: 'wal/9', start: 0, end: 1_000, bytes: [part] }]);
    expect((await stat(path.join(root, 'wal/1'))).nlink).toBe(1);
    await store.delete('wal/1');
    expect((await store.get('seg/small')).equals(part)).toBe(true);
    expect((await store.get('seg/gone')).equals(part)).toBe(true);
  });

  it('replaces a linked object by a put of the same key, of either kind, and lists it once', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    const wal = randomBytes(1_000);
    await store.put('wal/1', wal);
    const linked = (tag: string) => [{ key: 'wal/1', start: 0, end: 1_000, bytes: [wal] }, Buffer.from(tag)];
    await store.put('seg/k', linked('first'));
    await store.put('seg/k', linked('second'));
    expect((await store.get('seg/k')).subarray(1_000).toString()).toBe('second');
    await store.put('seg/k', Buffer.from('plain'));
    expect((await store.get('seg/k')).toString()).toBe('plain');
    expect((await store.list('seg/')).map((o) => o.key)).toEqual(['seg/k']);
    await store.put('seg/k', linked('third'));
    expect((await new FsObjectStore(root).get('seg/k')).subarray(1_000).toString()).toBe('third');
    expect((await store.list('seg/')).map((o) => [o.key, o.size])).toEqual([['seg/k', 1_005]]);
    await store.delete('seg/k');
    await store.delete('wal/1');
    expect(await readdir(root)).toEqual([]);
  });

  it('removes what a crash left of a put an hour ago when it lists, and leaves puts in progress alone', async () => {
    const root = await tempDir();
    const store = new FsObjectStore(root);
    await store.put('seg/a', Buffer.from('x'));
    const stale = path.join(root, 'seg', '.skiff-tmp-dead-1');
    const fresh = path.join(root, 'seg', '.skiff-tmp-live-1');
    await mkdir(stale);
    await writeFile(path.join(stale, '1'), 'linked bytes');
    await writeFile(fresh, 'being written');
    const hourAgo = new Date(Date.now() - 3_700_000);
    await utimes(stale, hourAgo, hourAgo);
    expect((await store.list('')).map((o) => o.key)).toEqual(['seg/a']);
    expect((await readdir(path.join(root, 'seg'))).sort()).toEqual(['.skiff-tmp-live-1', 'a']);
  });

  it('refuses keys that would escape its directory', async () => {
    const store = new FsObjectStore(await tempDir());
    for (const key of ['../x', 'a/../../x', '/abs', 'a//b', '', 'a/.skiff-tmp-1', 'a/b.skiff-parts']) {
      await expect(store.put(key, Buffer.from('x')), key).rejects.toBeInstanceOf(InvalidObjectKeyError);
    }
  });

  it('treats a key whose parent is an object, or which names a directory, as missing', async () => {
    const store = new FsObjectStore(await tempDir());
    await store.put('a', Buffer.from('x'));
    await store.put('d/e', Buffer.from('y'));
    await expect(store.get('a/b')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(store.get('d')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await store.head('d')).toBeUndefined();
  });
});

// --- S3ObjectStore on s3rver ------------------------------------------------------------------

const BUCKET = 'skiff-test';

describe('with s3rver', () => {
  let s3: S3Server;
  let n = 0;
  const opts = (over: Partial<S3ObjectStoreOptions> = {}): S3ObjectStoreOptions => ({
    endpoint: s3.endpoint,
    region: s3.region,
    bucket: BUCKET,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    forcePathStyle: true,
    // Every test gets its own key space in the one bucket.
    prefix: `t${++n}/`,
    baseBackoffMs: 10,
    maxBackoffMs: 100,
    ...over,
  });

  beforeAll(async () => {
    s3 = await startS3();
    await new S3ObjectStore(opts()).ensureBucket();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  objectStoreContract('S3ObjectStore', () => ({
    open: async (o) => new S3ObjectStore(opts({ multipartThresholdBytes: o?.multipartThresholdBytes, partSizeBytes: 5 * MiB })),
  }));

  describe('S3ObjectStore', () => {
    it('creates its bucket when absent and accepts one that exists', async () => {
      const store = new S3ObjectStore(opts({ bucket: 'fresh-bucket' }));
      await store.ensureBucket();
      await store.ensureBucket();
      await store.put('k', Buffer.from('v'));
      expect((await store.get('k')).toString()).toBe('v');
      await store.close();
    });

    it('keeps keys under its prefix and strips it when listing', async () => {
      const a = new S3ObjectStore(opts({ prefix: 'cluster-a/' }));
      const b = new S3ObjectStore(opts({ prefix: 'cluster-b/' }));
      await a.put('topics/x', Buffer.from('a'));
      await b.put('topics/x', Buffer.from('b'));
      expect((await a.list('topics/')).map((o) => o.key)).toEqual(['topics/x']);
      expect((await b.get('topics/x')).toString()).toBe('b');
      await Promise.all([a.close(), b.close()]);
    });

    it('lists every key when the listing spans several pages', async () => {
      // In-process s3rver cannot make continuation tokens on OpenSSL 3 (see startS3).
      const own = await startS3({ childProcess: true });
      try {
        const counter = await startFaultProxy(own.port);
        const store = new S3ObjectStore(opts({ endpoint: counter.endpoint, bucket: 'paged', listPageSize: 10 }));
        await store.ensureBucket();
        const keys = [...Array(25).keys()].map((i) => `many/${String(i).padStart(5, '0')}`);
        await Promise.all(keys.map((k) => store.put(k, Buffer.from('x'))));
        await store.put('other/1', Buffer.from('x'));
        const before = counter.requests;
        expect((await store.list('many/')).map((o) => o.key)).toEqual(keys);
        expect(counter.requests - before).toBe(3);
        await store.close();
        await counter.close();
      } finally {
        await own.stop();
      }
    });

    describe('through a fault-injecting proxy', () => {
      let proxy: FaultProxy;
      beforeAll(async () => {
        proxy = await startFaultProxy(s3.port);
      });
      afterAll(async () => {
        await proxy?.close();
      });

      it('resolves a put that met 503 SlowDown responses only once the object is stored', async () => {
        const o = opts();
        const store = new S3ObjectStore({ ...o, endpoint: proxy.endpoint });
        const direct = new S3ObjectStore(o);
        const body = randomBytes(256 * 1024);
        proxy.failNext(3, 'slowdown');
        const before = proxy.requests;
        await store.put('retried', body);
        expect(proxy.requests - before).toBe(4);
        expect((await direct.get('retried')).equals(body)).toBe(true);
        await Promise.all([store.close(), direct.close()]);
      });

      it('retries a put whose connection dies mid-body', async () => {
        const store = new S3ObjectStore(opts({ endpoint: proxy.endpoint }));
        const body = randomBytes(2 * MiB);
        proxy.failNext(2, 'reset');
        await store.put('reset', body);
        expect((await store.get('reset')).equals(body)).toBe(true);
        await store.close();
      });

      it('retries failing parts of a multipart upload', async () => {
        const store = new S3ObjectStore(opts({ endpoint: proxy.endpoint, multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB }));
        const body = randomBytes(11 * MiB);
        proxy.failNext(4, 'internal');
        await store.put('mp-retried', body);
        expect((await store.get('mp-retried')).equals(body)).toBe(true);
        await store.close();
      });

      it('retries reads too, and maps a missing key to ObjectNotFoundError without retrying', async () => {
        const store = new S3ObjectStore(opts({ endpoint: proxy.endpoint }));
        await store.put('r', Buffer.from('read me'));
        proxy.failNext(2, 'slowdown');
        expect((await store.get('r', { start: 5, end: 7 })).toString()).toBe('me');
        const before = proxy.requests;
        await expect(store.get('missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
        expect(proxy.requests - before).toBe(1);
        await store.close();
      });

      it('counts every request the server receives, retries and multipart parts included, by S3 API name', async () => {
        const store = new S3ObjectStore(opts({ endpoint: proxy.endpoint, multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB }));
        const before = await requestCounts('s3');
        const served = proxy.requests;
        proxy.failNext(1, 'slowdown');
        await store.put('counted/big', randomBytes(11 * MiB));
        await store.put('counted/small', Buffer.from('x'));
        await store.get('counted/small');
        await store.head('counted/big');
        await store.list('counted/');
        await store.delete('counted/small');
        const counts = countsSince(before, await requestCounts('s3'));
        expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(proxy.requests - served);
        // The 503 met the upload's first request, so it was sent twice and billed twice.
        expect(counts).toEqual({ CreateMultipartUpload: 2, UploadPart: 3, CompleteMultipartUpload: 1, PutObject: 1, GetObject: 1, HeadObject: 1, ListObjectsV2: 1, DeleteObject: 1 });
        await store.close();
      });

      it('rejects, never resolves, a put against a server that keeps failing', async () => {
        const store = new S3ObjectStore(opts({ endpoint: proxy.endpoint, maxAttempts: 4 }));
        proxy.failNext(Infinity, 'slowdown');
        try {
          const before = proxy.requests;
          await expect(store.put('doomed', Buffer.from('x'))).rejects.toBeInstanceOf(S3RetriesExhaustedError);
          expect(proxy.requests - before).toBe(4);
        } finally {
          proxy.failNext(0, 'slowdown');
        }
        expect(await store.head('doomed')).toBeUndefined();
        await store.close();
      });

      it('survives s3rver stopping mid-put and coming back on the same port', async () => {
        const own = await startS3();
        const ownProxy = await startFaultProxy(own.port);
        try {
          const base = opts({ endpoint: own.endpoint, bucket: 'restart' });
          await new S3ObjectStore(base).ensureBucket();
          const store = new S3ObjectStore({ ...base, endpoint: ownProxy.endpoint, maxAttempts: 10 });
          const body = randomBytes(3 * MiB);
          // The first request to arrive takes the server down; it is restarted after two more
          // attempts have failed against the dead port.
          ownProxy.beforeForward(async (count) => {
            if (count === 1) await own.kill();
            if (count === 3) await own.restart();
          });
          await store.put('survivor', body);
          expect(ownProxy.requests).toBeGreaterThanOrEqual(3);
          const direct = new S3ObjectStore(base);
          expect((await direct.get('survivor')).equals(body)).toBe(true);
          await Promise.all([store.close(), direct.close()]);
        } finally {
          await ownProxy.close();
          await own.stop();
        }
      });
    });

    it('rejects a put when nothing listens at the endpoint', async () => {
      const port = await freePort();
      const store = new S3ObjectStore(opts({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 3 }));
      await expect(store.put('k', Buffer.from('v'))).rejects.toBeInstanceOf(S3RetriesExhaustedError);
      await store.close();
    });

    it('rejects work after close instead of retrying', async () => {
      const store = new S3ObjectStore(opts());
      await store.close();
      await expect(store.put('k', Buffer.from('v'))).rejects.toThrow(/closed/);
    });
  });
});
