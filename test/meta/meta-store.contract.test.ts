// The MetaStore contract, run against EmbeddedMetaStore and EtcdMetaStore (real etcd), plus
// the embedded store's persistence (reopen, torn tails, compaction, SIGKILL) and the etcd
// adapter's prefixing, paging and lease watchdog.

import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedMetaStore, InvalidTxnError, LeaseNotFoundError } from '../../services/meta/embedded-meta-store.js';
import { EtcdMetaStore } from '../../services/meta/etcd-meta-store.js';
import type { Lease, MetaStore, WatchEvent } from '../../services/meta/meta-store.js';
import { startEtcd, type EtcdServer } from '../support/servers.js';

const b = (s: string): Buffer => Buffer.from(s);

interface MetaHarness {
  /** A store that sees no keys from other tests. */
  open(): Promise<MetaStore>;
  /** Makes the lease end the way it would if its holder stopped keeping it alive. */
  expire(store: MetaStore, lease: Lease): Promise<void>;
}

/** Resolves when the callback has been called; rejects after timeoutMs so a hang is a failure, not a stall. */
function eventually<T>(register: (done: (v: T) => void) => void, timeoutMs = 5000, what = 'event'): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    register((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/** A one-shot event to wait on: fire() from a callback, wait() in the test. */
function signal(what: string, timeoutMs = 5000): { fire: () => void; wait: () => Promise<void> } {
  let fire!: () => void;
  const fired = new Promise<void>((resolve) => (fire = resolve));
  return { fire, wait: () => eventually<void>((done) => void fired.then(done), timeoutMs, what) };
}

function metaStoreContract(name: string, harness: () => MetaHarness): void {
  describe(`MetaStore contract: ${name}`, () => {
    const opened: MetaStore[] = [];
    const open = async (): Promise<MetaStore> => {
      const s = await harness().open();
      opened.push(s);
      return s;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    it('returns undefined for a key that was never written', async () => {
      const store = await open();
      expect(await store.get('nope')).toBeUndefined();
      expect(await store.getPrefix('nope/')).toEqual([]);
    });

    it('gives each write the next store revision and tracks createRevision, modRevision and version', async () => {
      const store = await open();
      const r1 = await store.put('a', b('1'));
      const r2 = await store.put('a', b('2'));
      const r3 = await store.put('b', b('x'));
      expect([r2 - r1, r3 - r2]).toEqual([1, 1]);
      expect(await store.get('a')).toMatchObject({ key: 'a', value: b('2'), createRevision: r1, modRevision: r2, version: 2 });
      expect(await store.get('b')).toMatchObject({ key: 'b', value: b('x'), createRevision: r3, modRevision: r3, version: 1 });
      expect((await store.get('a'))?.lease).toBeUndefined();
    });

    it('returns every key under a prefix in key order, and nothing outside it', async () => {
      const store = await open();
      for (const k of ['p/b', 'q', 'p/a', 'p0', 'p/b/c', 'p/a-1']) await store.put(k, b(k));
      const kvs = await store.getPrefix('p/');
      expect(kvs.map((kv) => kv.key)).toEqual(['p/a', 'p/a-1', 'p/b', 'p/b/c']);
      expect(kvs.map((kv) => kv.value.toString())).toEqual(['p/a', 'p/a-1', 'p/b', 'p/b/c']);
      expect((await store.getPrefix('')).map((kv) => kv.key)).toEqual(['p/a', 'p/a-1', 'p/b', 'p/b/c', 'p0', 'q']);
    });

    it('forgets a deleted key, so writing it again starts a new version history', async () => {
      const store = await open();
      await store.put('k', b('1'));
      await store.put('k', b('2'));
      await store.delete('k');
      expect(await store.get('k')).toBeUndefined();
      const r = await store.put('k', b('3'));
      expect(await store.get('k')).toMatchObject({ createRevision: r, modRevision: r, version: 1 });
    });

    it('takes no revision for deleting keys that do not exist', async () => {
      const store = await open();
      const r1 = await store.put('x', b('1'));
      await store.delete('absent');
      await store.deletePrefix('absent/');
      const r2 = await store.put('y', b('1'));
      expect(r2).toBe(r1 + 1);
    });

    it('deletes every key under a prefix at one revision, and nothing else', async () => {
      const store = await open();
      for (const k of ['d/1', 'd/2/x', 'd0', 'e']) await store.put(k, b(k));
      const events: WatchEvent[] = [];
      const sentinel = signal('sentinel event');
      const w = await store.watchPrefix('', (ev) => {
        events.push(ev);
        if (ev.key === 'zz') sentinel.fire();
      });
      await store.deletePrefix('d/');
      await store.put('zz', b('.'));
      await sentinel.wait();
      await w.close();
      expect((await store.getPrefix('')).map((kv) => kv.key)).toEqual(['d0', 'e', 'zz']);
      const deletes = events.filter((e) => e.type === 'delete');
      expect(deletes.map((e) => e.key)).toEqual(['d/1', 'd/2/x']);
      expect(deletes[0].modRevision).toBe(deletes[1].modRevision);
    });

    it('applies every success op at one revision when all compares hold', async () => {
      const store = await open();
      const res = await store.txn(
        [{ key: 'lock', target: 'exists', value: false }],
        [
          { type: 'put', key: 'lock', value: b('me') },
          { type: 'put', key: 'owner', value: b('me') },
        ],
        [{ type: 'put', key: 'failed', value: b('1') }],
      );
      expect(res.succeeded).toBe(true);
      expect(await store.get('lock')).toMatchObject({ value: b('me'), modRevision: res.revision });
      expect(await store.get('owner')).toMatchObject({ modRevision: res.revision });
      expect(await store.get('failed')).toBeUndefined();
    });

    it('applies the failure ops instead when a compare fails', async () => {
      const store = await open();
      await store.put('lock', b('other'));
      const res = await store.txn(
        [{ key: 'lock', target: 'exists', value: false }],
        [{ type: 'put', key: 'lock', value: b('me') }],
        [{ type: 'put', key: 'lost-race', value: b('1') }],
      );
      expect(res.succeeded).toBe(false);
      expect((await store.get('lock'))?.value).toEqual(b('other'));
      expect(await store.get('lost-race')).toMatchObject({ modRevision: res.revision });
      // exists: true on a missing key fails too.
      const res2 = await store.txn([{ key: 'missing', target: 'exists', value: true }], [{ type: 'delete', key: 'lock' }]);
      expect(res2.succeeded).toBe(false);
      expect(await store.get('lock')).toBeDefined();
    });

    it('fences on modRevision, createRevision and version compares', async () => {
      const store = await open();
      const reg = await store.put('broker/1', b('epoch-1'));
      const commit = (rev: number) =>
        store.txn([{ key: 'broker/1', target: 'modRevision', op: '==', value: rev }], [{ type: 'put', key: 'wal/1', value: b('x') }]);
      expect((await commit(reg)).succeeded).toBe(true);
      const rereg = await store.put('broker/1', b('epoch-2'));
      expect((await commit(reg)).succeeded).toBe(false);
      expect((await commit(rereg)).succeeded).toBe(true);

      const cmp = async (c: Parameters<MetaStore['txn']>[0][number]) => (await store.txn([c], [])).succeeded;
      expect(await cmp({ key: 'broker/1', target: 'createRevision', op: '==', value: reg })).toBe(true);
      expect(await cmp({ key: 'broker/1', target: 'createRevision', op: '!=', value: reg })).toBe(false);
      expect(await cmp({ key: 'broker/1', target: 'version', op: '==', value: 2 })).toBe(true);
      expect(await cmp({ key: 'broker/1', target: 'version', op: '>', value: 1 })).toBe(true);
      expect(await cmp({ key: 'broker/1', target: 'version', op: '<', value: 2 })).toBe(false);
      expect(await cmp({ key: 'broker/1', target: 'modRevision', op: '<', value: rereg + 1 })).toBe(true);
      // A missing key has revisions and version 0, as in etcd.
      expect(await cmp({ key: 'none', target: 'createRevision', op: '==', value: 0 })).toBe(true);
      expect(await cmp({ key: 'none', target: 'version', op: '==', value: 0 })).toBe(true);
    });

    it('compares values, and a value compare on a missing key always fails', async () => {
      const store = await open();
      await store.put('v', b('abc'));
      const cmp = async (c: Parameters<MetaStore['txn']>[0][number]) => (await store.txn([c], [])).succeeded;
      expect(await cmp({ key: 'v', target: 'value', op: '==', value: b('abc') })).toBe(true);
      expect(await cmp({ key: 'v', target: 'value', op: '!=', value: b('abc') })).toBe(false);
      expect(await cmp({ key: 'v', target: 'value', op: '!=', value: b('abd') })).toBe(true);
      expect(await cmp({ key: 'none', target: 'value', op: '==', value: b('') })).toBe(false);
      expect(await cmp({ key: 'none', target: 'value', op: '!=', value: b('abc') })).toBe(false);
    });

    it('requires every compare of a txn to hold', async () => {
      const store = await open();
      await store.put('a', b('1'));
      const res = await store.txn(
        [
          { key: 'a', target: 'exists', value: true },
          { key: 'b', target: 'exists', value: true },
        ],
        [{ type: 'put', key: 'c', value: b('1') }],
      );
      expect(res.succeeded).toBe(false);
      expect(await store.get('c')).toBeUndefined();
    });

    it('reports the current revision from a txn that changed nothing', async () => {
      const store = await open();
      const r = await store.put('a', b('1'));
      const res = await store.txn([{ key: 'a', target: 'exists', value: false }], [{ type: 'put', key: 'a', value: b('2') }]);
      expect(res).toEqual({ succeeded: false, revision: r });
    });

    it('binds keys to a lease and deletes them all when the lease is revoked', async () => {
      const store = await open();
      const lease = await store.grantLease(5);
      expect(lease.ttlSeconds).toBe(5);
      await store.put('reg/a', b('1'), { lease: lease.id });
      await store.txn([], [{ type: 'put', key: 'reg/b', value: b('2'), lease: lease.id }]);
      await store.put('reg/c', b('3'));
      expect((await store.get('reg/a'))?.lease).toBe(lease.id);
      await lease.revoke();
      expect((await store.getPrefix('reg/')).map((kv) => kv.key)).toEqual(['reg/c']);
      // The lease is gone, so nothing can be bound to it any more.
      await expect(store.put('reg/d', b('4'), { lease: lease.id })).rejects.toThrow();
      expect(await store.get('reg/d')).toBeUndefined();
    });

    it('detaches a key from its lease when it is written again without one', async () => {
      const store = await open();
      const lease = await store.grantLease(5);
      await store.put('k', b('1'), { lease: lease.id });
      await store.put('k', b('2'));
      await lease.revoke();
      expect((await store.get('k'))?.value).toEqual(b('2'));
    });

    it('deletes the keys of an expired lease and calls onLost once', async () => {
      const store = await open();
      const lease = await store.grantLease(2);
      await store.put('lock/p0', b('me'), { lease: lease.id });
      let calls = 0;
      const lost = signal('onLost', 10_000);
      lease.onLost(() => {
        calls++;
        lost.fire();
      });
      await harness().expire(store, lease);
      await lost.wait();
      expect(calls).toBe(1);
      expect(await store.get('lock/p0')).toBeUndefined();
      // A callback registered after the loss still hears about it.
      await eventually<void>((done) => lease.onLost(done), 1000, 'late onLost');
      await lease.revoke();
    });

    it('watches a prefix: every change after the start, in revision order, nothing outside', async () => {
      const store = await open();
      await store.put('w/before', b('0'));
      const events: WatchEvent[] = [];
      const sentinel = signal('sentinel event');
      const watch = await store.watchPrefix('w/', (ev) => {
        events.push(ev);
        if (ev.key === 'w/zz-sentinel') sentinel.fire();
      });
      const r1 = await store.put('w/a', b('1'));
      await store.put('x/outside', b('nope'));
      const r2 = await store.put('w/a', b('2'));
      const r3 = (await store.txn([], [{ type: 'put', key: 'w/b', value: b('3') }, { type: 'delete', key: 'w/before' }])).revision;
      await store.delete('w/a');
      const r4 = await store.put('w/zz-sentinel', b('.'));
      await sentinel.wait();
      await watch.close();
      expect(events.map((e) => [e.type, e.key, e.value?.toString()])).toEqual([
        ['put', 'w/a', '1'],
        ['put', 'w/a', '2'],
        ['put', 'w/b', '3'],
        ['delete', 'w/before', undefined],
        ['delete', 'w/a', undefined],
        ['put', 'w/zz-sentinel', '.'],
      ]);
      const revs = events.map((e) => e.modRevision);
      expect([revs[0], revs[1], revs[2], revs[3], revs[5]]).toEqual([r1, r2, r3, r3, r4]);
      expect(revs[4]).toBeGreaterThan(r3);
      expect(revs[4]).toBeLessThan(r4);
    });

    it('reports lease revocation to watchers as deletes', async () => {
      const store = await open();
      const lease = await store.grantLease(5);
      await store.put('brokers/1', b('x'), { lease: lease.id });
      const events: WatchEvent[] = [];
      const gone = signal('delete event');
      const watch = await store.watchPrefix('brokers/', (ev) => {
        events.push(ev);
        if (ev.type === 'delete') gone.fire();
      });
      await lease.revoke();
      await gone.wait();
      await watch.close();
      expect(events).toMatchObject([{ type: 'delete', key: 'brokers/1' }]);
    });

    it('stops delivering once a watch is closed', async () => {
      const store = await open();
      const closedEvents: WatchEvent[] = [];
      const w1 = await store.watchPrefix('s/', (ev) => closedEvents.push(ev));
      await w1.close();
      const seen = signal('s/2 on the open watch');
      const w2 = await store.watchPrefix('s/', (ev) => ev.key === 's/2' && seen.fire());
      await store.put('s/1', b('1'));
      await store.put('s/2', b('2'));
      await seen.wait();
      await w2.close();
      expect(closedEvents).toEqual([]);
    });

    it("refuses a txn with more ops than etcd's default limit of 128", async () => {
      const store = await open();
      const ops = [...Array(129).keys()].map((i) => ({ type: 'put' as const, key: `many/${i}`, value: b('x') }));
      await expect(store.txn([], ops)).rejects.toThrow();
      await store.txn([], ops.slice(0, 128));
      expect(await store.getPrefix('many/')).toHaveLength(128);
    });

    it('refuses a txn that writes one key twice', async () => {
      const store = await open();
      await expect(
        store.txn([], [
          { type: 'put', key: 'k', value: b('1') },
          { type: 'put', key: 'k', value: b('2') },
        ]),
      ).rejects.toThrow();
      expect(await store.get('k')).toBeUndefined();
    });
  });
}

// --- EmbeddedMetaStore ------------------------------------------------------------------------

const tempDirs: string[] = [];
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function tempFile(name = 'meta.log'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skiff-meta-'));
  tempDirs.push(dir);
  return path.join(dir, name);
}

metaStoreContract('EmbeddedMetaStore', () => ({
  open: async () => EmbeddedMetaStore.open(await tempFile()),
  expire: (store, lease) => (store as EmbeddedMetaStore).expireLease(lease.id),
}));

describe('EmbeddedMetaStore', () => {
  it('keeps every resolved write, with its revisions, across a reopen', async () => {
    const file = await tempFile();
    const s1 = await EmbeddedMetaStore.open(file);
    await s1.put('a', b('1'));
    await s1.put('a', b('2'));
    await s1.put('gone', b('x'));
    await s1.txn([{ key: 'gone', target: 'exists', value: true }], [{ type: 'delete', key: 'gone' }, { type: 'put', key: 'c', value: b('3') }]);
    const before = await s1.getPrefix('');
    await s1.close();

    const s2 = await EmbeddedMetaStore.open(file);
    expect(await s2.getPrefix('')).toEqual(before);
    const last = Math.max(...before.map((kv) => kv.modRevision));
    expect(await s2.put('d', b('4'))).toBe(last + 1);
    await s2.close();
  });

  it('ignores a torn last record, and later writes land after the good ones', async () => {
    const file = await tempFile();
    const s1 = await EmbeddedMetaStore.open(file);
    for (let i = 0; i < 10; i++) await s1.put(`k${i}`, b(`v${i}`));
    await s1.close();
    const { size } = await stat(file);
    await truncate(file, size - 3);

    const s2 = await EmbeddedMetaStore.open(file);
    expect((await s2.getPrefix('')).map((kv) => kv.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8']);
    const r = await s2.put('after', b('x'));
    expect(r).toBe(10);
    await s2.close();

    const s3 = await EmbeddedMetaStore.open(file);
    expect(await s3.get('after')).toMatchObject({ value: b('x'), modRevision: 10 });
    expect(await s3.get('k9')).toBeUndefined();
    await s3.close();
  });

  it('ignores garbage after the last record (a write that never completed)', async () => {
    const file = await tempFile();
    const s1 = await EmbeddedMetaStore.open(file);
    await s1.put('a', b('1'));
    await s1.close();
    await appendFile(file, Buffer.from([0, 0, 0, 40, 1, 2, 3, 4, 5, 6, 7]));
    const s2 = await EmbeddedMetaStore.open(file);
    expect((await s2.get('a'))?.value).toEqual(b('1'));
    await s2.put('b', b('2'));
    await s2.close();
    const s3 = await EmbeddedMetaStore.open(file);
    expect((await s3.getPrefix('')).map((kv) => kv.key)).toEqual(['a', 'b']);
    await s3.close();
  });

  it('drops leased keys on reopen, as etcd would once the lease expired', async () => {
    const file = await tempFile();
    const s1 = await EmbeddedMetaStore.open(file);
    const lease = await s1.grantLease(10);
    await s1.put('plain', b('1'));
    await s1.put('leased', b('2'), { lease: lease.id });
    await s1.put('overwritten', b('3'));
    await s1.put('overwritten', b('4'), { lease: lease.id });
    await s1.put('released', b('5'), { lease: lease.id });
    await s1.put('released', b('6'));
    const rev = await s1.put('last', b('7'));
    await s1.close();

    const s2 = await EmbeddedMetaStore.open(file);
    expect((await s2.getPrefix('')).map((kv) => [kv.key, kv.value.toString()])).toEqual([
      ['last', '7'],
      ['plain', '1'],
      ['released', '6'],
    ]);
    // The drop is a change of its own, so revisions keep moving forward.
    expect(await s2.put('next', b('8'))).toBe(rev + 2);
    await s2.close();
    const s3 = await EmbeddedMetaStore.open(file);
    expect(await s3.get('leased')).toBeUndefined();
    expect(await s3.get('next')).toBeDefined();
    await s3.close();
  });

  it('compacts its log into a snapshot without losing data or revisions', async () => {
    const file = await tempFile();
    const s1 = await EmbeddedMetaStore.open(file, { compactThresholdBytes: 16 * 1024 });
    const lease = await s1.grantLease(10);
    await s1.put('leased', b('x'), { lease: lease.id });
    let rev = 0;
    for (let i = 0; i < 400; i += 40) {
      const revs = await Promise.all([...Array(40).keys()].map((j) => s1.put(`k/${(i + j) % 50}`, Buffer.alloc(100, (i + j) % 256))));
      rev = Math.max(rev, ...revs);
    }
    await s1.delete('k/0');
    expect((await stat(`${file}.snapshot`)).size).toBeGreaterThan(0);
    expect((await stat(file)).size).toBeLessThan(16 * 1024);
    const before = await s1.getPrefix('k/');
    await s1.close();

    const s2 = await EmbeddedMetaStore.open(file, { compactThresholdBytes: 16 * 1024 });
    expect(await s2.getPrefix('k/')).toEqual(before);
    expect(before).toHaveLength(49);
    expect(await s2.get('leased')).toBeUndefined();
    expect(await s2.put('after', b('1'))).toBeGreaterThan(rev + 1);
    await s2.close();
  });

  it('groups concurrent writes into far fewer fsyncs than writes', async () => {
    const s = await EmbeddedMetaStore.open(await tempFile());
    const syncsBefore = s.syncCount;
    const revs = await Promise.all([...Array(1000).keys()].map((i) => s.put(`k/${i}`, b(String(i)))));
    expect(new Set(revs).size).toBe(1000);
    expect(s.syncCount - syncsBefore).toBeLessThan(100);
    await s.close();
  });

  it('rejects a snapshot that fails its checksum instead of starting empty', async () => {
    const file = await tempFile();
    const s1 = await EmbeddedMetaStore.open(file, { compactThresholdBytes: 1 });
    await s1.put('a', b('1'));
    await s1.close();
    await writeFile(`${file}.snapshot`, Buffer.concat([b('SKIFFMS1'), Buffer.alloc(20, 1)]));
    await expect(EmbeddedMetaStore.open(file)).rejects.toThrow(/corrupt/);
  });

  it('expires only leases it knows', async () => {
    const s = await EmbeddedMetaStore.open(await tempFile());
    await expect(s.expireLease('nope')).rejects.toBeInstanceOf(LeaseNotFoundError);
    await expect(s.txn([], [{ type: 'put', key: 'a/1', value: b('1') }, { type: 'deletePrefix', prefix: 'a/' }])).rejects.toBeInstanceOf(
      InvalidTxnError,
    );
    await s.close();
  });

  it('never loses a resolved write when the process is killed with SIGKILL', async () => {
    const file = await tempFile();
    const storeModule = fileURLToPath(new URL('../../services/meta/embedded-meta-store.ts', import.meta.url));
    const script = path.join(path.dirname(file), 'writer.ts');
    // Many concurrent writers, each printing its key only once put() has resolved.
    await writeFile(
      script,
      `import { EmbeddedMetaStore } from ${JSON.stringify(storeModule)};
const store = await EmbeddedMetaStore.open(${JSON.stringify(file)}, { compactThresholdBytes: 64 * 1024 });
let n = 0;
async function writer(): Promise<void> {
  for (;;) {
    const key = 'k/' + String(n++).padStart(8, '0');
    await store.put(key, Buffer.alloc(64, key));
    process.stdout.write(key + '\\n');
  }
}
for (let i = 0; i < 16; i++) void writer();
`,
    );
    const viteNode = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));
    const child = spawn(process.execPath, [viteNode, script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked: string[] = [];
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    await eventually<void>(
      (done) => {
        let partial = '';
        child.stdout.on('data', (d: Buffer) => {
          const lines = (partial + d.toString()).split('\n');
          partial = lines.pop()!;
          acked.push(...lines);
          // Enough to have gone through several compactions, then kill mid-stride.
          if (acked.length >= 3000) done();
        });
        void exited.then(() => done());
      },
      30_000,
      'the writer to acknowledge writes',
    );
    child.kill('SIGKILL');
    expect(await exited, stderr).toBe('SIGKILL');

    const s = await EmbeddedMetaStore.open(file);
    const present = new Set((await s.getPrefix('k/')).map((kv) => kv.key));
    const missing = acked.filter((k) => !present.has(k));
    expect(missing).toEqual([]);
    const kv = await s.get(acked[acked.length - 1]);
    expect(kv?.value).toEqual(Buffer.alloc(64, acked[acked.length - 1]));
    await s.close();
  });
});

// --- EtcdMetaStore ----------------------------------------------------------------------------

describe('with a real etcd', () => {
  let etcd: EtcdServer;
  let raw: Etcd3;
  let n = 0;

  beforeAll(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: etcd.endpoints });
  });
  afterAll(async () => {
    raw?.close();
    await etcd?.stop();
  });

  metaStoreContract('EtcdMetaStore', () => ({
    open: () => EtcdMetaStore.connect({ hosts: etcd.endpoints, prefix: `/test-${++n}/` }),
    // Revoked by another client: to the holder this is exactly an expiry.
    expire: async (_store, lease) => {
      await raw.leaseClient.leaseRevoke({ ID: lease.id });
    },
  }));

  describe('EtcdMetaStore', () => {
    it('keeps its keys under its prefix, invisible to stores with another prefix', async () => {
      const a = await EtcdMetaStore.connect({ hosts: etcd.endpoints, prefix: '/cluster-a/' });
      const c = await EtcdMetaStore.connect({ hosts: etcd.endpoints, prefix: '/cluster-c/' });
      await a.put('topics/t', b('a'));
      await c.put('topics/t', b('c'));
      expect((await a.getPrefix('')).map((kv) => [kv.key, kv.value.toString()])).toEqual([['topics/t', 'a']]);
      expect(await raw.get('/cluster-c/topics/t').string()).toBe('c');
      await a.deletePrefix('');
      expect(await c.get('topics/t')).toBeDefined();
      await Promise.all([a.close(), c.close()]);
    });

    it('pages through a prefix larger than one range response, at one revision', async () => {
      const s = await EtcdMetaStore.connect({ hosts: etcd.endpoints, prefix: `/paged-${++n}/`, pageSize: 3 });
      const keys = [...Array(10).keys()].map((i) => `k/${String(i).padStart(2, '0')}`);
      for (const k of keys) await s.put(k, b(k));
      await s.put('l/other', b('x'));
      expect((await s.getPrefix('k/')).map((kv) => kv.key)).toEqual(keys);
      await s.close();
    });

    it('fails to connect when nothing answers', async () => {
      await expect(EtcdMetaStore.connect({ hosts: ['http://127.0.0.1:1'], dialTimeoutMs: 500 })).rejects.toThrow();
    });

    it('answers again as soon as etcd is back from an outage, with no circuit breaker holding calls off', async () => {
      const s = await EtcdMetaStore.connect({ hosts: etcd.endpoints, prefix: `/outage-${++n}/` });
      await s.put('k', b('before'));
      await etcd.kill();
      // Enough failures in a row to open a per-host circuit breaker (etcd3's default: three,
      // then every call refused for five seconds, however soon etcd is back).
      for (let i = 0; i < 5; i++) await expect(s.get('k')).rejects.toThrow();
      await etcd.restart();
      expect((await s.get('k'))?.value.toString()).toBe('before');
      await s.close();
    });

    // Last: it leaves the client's connection to etcd recovering from the pause.
    it('declares a lease lost when etcd stops answering for longer than its TTL', async () => {
      const s = await EtcdMetaStore.connect({ hosts: etcd.endpoints, prefix: `/lost-${++n}/` });
      const lease = await s.grantLease(1);
      await s.put('reg', b('x'), { lease: lease.id });
      const lost = signal('onLost');
      lease.onLost(lost.fire);
      const pausedAt = Date.now();
      etcd.pause();
      try {
        await lost.wait();
      } finally {
        etcd.resume();
      }
      expect(Date.now() - pausedAt).toBeLessThan(3000);
      await s.close();
    });
  });
});
