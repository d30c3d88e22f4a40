// EtcdMetaStore: the MetaStore adapter on an etcd v3 cluster (through the etcd3 package).
// It owns the mapping of the port onto etcd's KV/txn/lease/watch RPCs under an optional key
// prefix, and the lease watchdog that declares a lease lost once keepalives fail past its TTL.

import { createRequire } from 'node:module';
import type { ICompare, IKeyValue, IRequestOp, Lease as Etcd3Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { MetaStoreClosedError, type Compare, type KeyValue, type Lease, type MetaStore, type Op, type TxnResult, type Watch, type WatchEvent } from './meta-store.js';

// Required rather than imported: Node finds the names a CommonJS package exports to an ES
// module by lexing its source and that of every module it re-exports, dozens for etcd3 and
// nats, enough work that V8 optimises the lexer on a compiler thread whose memory (some
// 8 MB, with nats-bus.ts) then stays with the process for good.
const require = createRequire(import.meta.url);
const { Etcd3, EtcdLeaseInvalidError, isRecoverableError } = require('etcd3') as typeof import('etcd3');
type Etcd3 = import('etcd3').Etcd3;
const { circuitBreaker, ConsecutiveBreaker, handleWhen, noop } = require('cockatiel') as typeof import('cockatiel');

/**
 * etcd3 puts a circuit breaker on every host: three failures in a row and the host is skipped
 * for five seconds. That only helps when there is another host to go to. With one endpoint it
 * refuses every call for up to five seconds after etcd is back, which holds up brokers
 * rejoining and proxies answering CreateTopics. So: no breaker for a single endpoint, and a
 * one-second one for several.
 */
const hostPolicy = (hosts: string[]) =>
  hosts.length > 1 ? () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }) : () => noop;

export interface EtcdMetaStoreOptions {
  /** e.g. ['http://127.0.0.1:2379']. */
  hosts: string[];
  /** Prepended to every key, so several clusters (or tests) can share one etcd. */
  prefix?: string;
  auth?: { username: string; password: string };
  /** Time allowed for the first connection. Default 5000 ms. */
  dialTimeoutMs?: number;
  /** Page size for getPrefix, which etcd would otherwise answer in one message of any size. Default 1000. */
  pageSize?: number;
  logger?: Logger;
}

export class EtcdMetaStore implements MetaStore {
  private readonly prefix: Buffer;
  private readonly leases = new Set<EtcdLease>();
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  private constructor(
    private readonly client: Etcd3,
    private readonly options: EtcdMetaStoreOptions,
  ) {
    this.prefix = Buffer.from(options.prefix ?? '');
  }

  /** Connects and checks that etcd answers, so a wrong address fails at start-up, not later. */
  static async connect(options: EtcdMetaStoreOptions): Promise<EtcdMetaStore> {
    const dialTimeout = options.dialTimeoutMs ?? 5000;
    const client = new Etcd3({ hosts: options.hosts, auth: options.auth, dialTimeout, faultHandling: { host: hostPolicy(options.hosts) } });
    try {
      await client.maintenance.status({ deadline: Date.now() + dialTimeout });
    } catch (err) {
      client.close();
      throw err;
    }
    return new EtcdMetaStore(client, options);
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    const res = await this.client.kv.range({ key: this.k(key) });
    const kv = res.kvs[0];
    return kv ? this.toKeyValue(kv) : undefined;
  }

  async getPrefix(prefix: string): Promise<KeyValue[]> {
    this.assertOpen();
    const rangeEnd = prefixEnd(this.k(prefix));
    const limit = this.options.pageSize ?? 1000;
    const out: KeyValue[] = [];
    let key = this.k(prefix);
    // Later pages are read at the first page's revision, so the whole answer is one snapshot.
    let revision: string | undefined;
    for (;;) {
      const res = await this.client.kv.range({ key, range_end: rangeEnd, limit, revision, sort_order: 'Ascend', sort_target: 'Key' });
      revision ??= res.header.revision;
      for (const kv of res.kvs) out.push(this.toKeyValue(kv));
      if (!res.more || res.kvs.length === 0) return out;
      key = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
  }

  async put(key: string, value: Buffer, opts?: { lease?: string }): Promise<number> {
    this.assertOpen();
    const res = await this.client.kv.put({ key: this.k(key), value, lease: opts?.lease });
    return Number(res.header.revision);
  }

  async delete(key: string): Promise<void> {
    this.assertOpen();
    await this.client.kv.deleteRange({ key: this.k(key) });
  }

  async deletePrefix(prefix: string): Promise<void> {
    this.assertOpen();
    const key = this.k(prefix);
    await this.client.kv.deleteRange({ key, range_end: prefixEnd(key) });
  }

  async txn(compares: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    this.assertOpen();
    const res = await this.client.kv.txn({
      compare: compares.map((c) => this.toCompare(c)),
      success: success.map((op) => this.toRequestOp(op)),
      failure: failure.map((op) => this.toRequestOp(op)),
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.assertOpen();
    const requestedAt = Date.now();
    const inner = this.client.lease(ttlSeconds, { autoKeepAlive: true });
    const id = await inner.grant();
    const lease = new EtcdLease(inner, ttlSeconds, id, requestedAt, this.options.logger, () => this.leases.delete(lease));
    this.leases.add(lease);
    return lease;
  }

  async revokeLease(id: string): Promise<void> {
    this.assertOpen();
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id });
    } catch (err) {
      if (!(err instanceof EtcdLeaseInvalidError)) throw err;
    }
  }

  async watchPrefix(prefix: string, cb: (ev: WatchEvent) => void): Promise<Watch> {
    this.assertOpen();
    const logger = this.options.logger;
    // The watcher attaches (and so "starts") when create() resolves; etcd3 resumes it from its
    // last seen revision after a reconnect, so no event is skipped across etcd restarts.
    const watcher = await this.client.watch().prefix(this.k(prefix)).create();
    this.watchers.add(watcher);
    watcher
      .on('put', (kv) => cb({ type: 'put', key: this.unprefix(kv.key), value: kv.value, modRevision: Number(kv.mod_revision) }))
      .on('delete', (kv) => cb({ type: 'delete', key: this.unprefix(kv.key), modRevision: Number(kv.mod_revision) }))
      .on('disconnected', (err) => logger?.warn({ err, prefix }, 'etcd watch disconnected, reconnecting'))
      // Without a listener an 'error' (e.g. the watched revision was compacted) would crash the process.
      .on('error', (err) => logger?.error({ err, prefix }, 'etcd watch failed'));
    return {
      close: async () => {
        if (!this.watchers.delete(watcher)) return;
        await watcher.cancel();
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const lease of this.leases) lease.stopWatchdog();
    this.leases.clear();
    await Promise.all([...this.watchers].map((w) => w.cancel().catch(() => undefined)));
    this.watchers.clear();
    this.client.close();
  }

  private toCompare(c: Compare): ICompare {
    const key = this.k(c.key);
    switch (c.target) {
      case 'exists':
        return { key, target: 'Create', result: c.value ? 'Greater' : 'Equal', create_revision: 0 };
      case 'value':
        return { key, target: 'Value', result: c.op === '==' ? 'Equal' : 'NotEqual', value: c.value };
      case 'createRevision':
        return { key, target: 'Create', result: RESULT[c.op], create_revision: c.value };
      case 'modRevision':
        return { key, target: 'Mod', result: RESULT[c.op], mod_revision: c.value };
      case 'version':
        return { key, target: 'Version', result: RESULT[c.op], version: c.value };
    }
  }

  private toRequestOp(op: Op): IRequestOp {
    switch (op.type) {
      case 'put':
        return { request_put: { key: this.k(op.key), value: op.value, lease: op.lease } };
      case 'delete':
        return { request_delete_range: { key: this.k(op.key) } };
      case 'deletePrefix': {
        const key = this.k(op.prefix);
        return { request_delete_range: { key, range_end: prefixEnd(key) } };
      }
    }
  }

  private toKeyValue(kv: IKeyValue): KeyValue {
    const out: KeyValue = {
      key: this.unprefix(kv.key),
      value: kv.value,
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
    };
    if (kv.lease && kv.lease !== '0') out.lease = kv.lease;
    return out;
  }

  private k(key: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(key)]);
  }

  private unprefix(key: Buffer): string {
    return key.subarray(this.prefix.length).toString();
  }

  private assertOpen(): void {
    if (this.closed) throw new MetaStoreClosedError();
  }
}

const RESULT = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

/** etcd's range_end for "every key starting with prefix"; [0] means "to the end of the keyspace". */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * etcd3 only reports a lease lost after about twice its TTL without keepalives. Fencing needs
 * to know sooner: the watchdog declares it lost once a TTL has passed since the last keepalive
 * etcd acknowledged, counted from when that keepalive was sent, i.e. before etcd can expire it.
 */
class EtcdLease implements Lease {
  private readonly callbacks: (() => void)[] = [];
  private lost = false;
  private ended = false;
  /** Send times of keepalives not yet answered; a stream answers them in order. */
  private inFlight: number[] = [];
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    private readonly inner: Etcd3Lease,
    readonly ttlSeconds: number,
    readonly id: string,
    /** etcd's TTL runs from when it saw the grant or keepalive, which is after we sent it. */
    private aliveSince: number,
    private readonly logger: Logger | undefined,
    private readonly onEnd: () => void,
  ) {
    // A new keepalive stream means the unanswered ones on the old stream will never be answered.
    inner.on('keepaliveEstablished', () => (this.inFlight = []));
    inner.on('keepaliveFired', () => this.inFlight.push(Date.now()));
    inner.on('keepaliveSucceeded', () => {
      const sentAt = this.inFlight.shift();
      if (sentAt !== undefined) this.aliveSince = Math.max(this.aliveSince, sentAt);
    });
    inner.on('lost', (err) => this.declareLost(err));
    this.watchdog = setInterval(() => {
      if (Date.now() - this.aliveSince > ttlSeconds * 1000) this.declareLost(new Error('no keepalive acknowledged within the TTL'));
    }, Math.max(50, (ttlSeconds * 1000) / 10));
    this.watchdog.unref();
  }

  onLost(cb: () => void): void {
    if (this.lost) queueMicrotask(cb);
    else this.callbacks.push(cb);
  }

  async revoke(): Promise<void> {
    if (this.ended) return;
    this.end();
    await this.inner.revoke();
  }

  stopWatchdog(): void {
    this.ended = true;
    clearInterval(this.watchdog);
  }

  private declareLost(err: unknown): void {
    if (this.ended) return;
    this.lost = true;
    this.end();
    this.logger?.warn({ err, lease: this.id }, 'etcd lease lost');
    // Give the keys up for real if etcd can still hear us; otherwise they expire with the TTL.
    this.inner.revoke({ deadline: Date.now() + this.ttlSeconds * 1000 }).catch(() => undefined);
    for (const cb of this.callbacks.splice(0)) cb();
  }

  private end(): void {
    this.stopWatchdog();
    this.onEnd();
  }
}
