// The MetaStore port: etcd's data model (revisioned KV, compare-and-swap transactions,
// leases, prefix watches). Adapters: etcd-meta-store.ts and embedded-meta-store.ts (one
// process, persisted to a file). Business logic never knows which one it has.

/** Any call on a store after close(). */
export class MetaStoreClosedError extends Error {
  constructor() {
    super('meta store is closed');
    this.name = 'MetaStoreClosedError';
  }
}

export interface KeyValue {
  key: string;
  value: Buffer;
  /** Store revision at which the key was created (etcd create_revision). */
  createRevision: number;
  /** Store revision of the last change (etcd mod_revision). */
  modRevision: number;
  /** Number of changes since creation, 1 after create (etcd version). */
  version: number;
  /** Lease the key is bound to, if any. */
  lease?: string;
}

export type Compare =
  | { key: string; target: 'createRevision' | 'modRevision' | 'version'; op: '==' | '!=' | '<' | '>'; value: number }
  | { key: string; target: 'value'; op: '==' | '!='; value: Buffer }
  /** exists: true passes when the key is present (a createRevision > 0 compare in etcd). */
  | { key: string; target: 'exists'; value: boolean };

export type Op =
  | { type: 'put'; key: string; value: Buffer; lease?: string }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string };

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the transaction. */
  revision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** Present on put. */
  value?: Buffer;
  modRevision: number;
}

export interface Watch {
  close(): Promise<void>;
}

export interface Lease {
  readonly id: string;
  readonly ttlSeconds: number;
  /** Called once if the lease is lost (expired, revoked elsewhere, or keepalive failing past TTL). */
  onLost(cb: () => void): void;
  /** Deletes every key bound to the lease at once. */
  revoke(): Promise<void>;
}

export interface MetaStore {
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key starting with prefix, in key order. */
  getPrefix(prefix: string): Promise<KeyValue[]>;
  /** Returns the store revision after the put. */
  put(key: string, value: Buffer, opts?: { lease?: string }): Promise<number>;
  delete(key: string): Promise<void>;
  deletePrefix(prefix: string): Promise<void>;
  /** Atomically: if every compare holds, apply success ops, else failure ops. */
  txn(compares: Compare[], success: Op[], failure?: Op[]): Promise<TxnResult>;
  /** A lease kept alive by the adapter until revoked or lost. */
  grantLease(ttlSeconds: number): Promise<Lease>;
  /**
   * Ends any holder's lease now, as if it had expired: its keys go and its holder finds it
   * lost. A lease already gone is not an error.
   */
  revokeLease(id: string): Promise<void>;
  /** Calls cb for every change under prefix after the watch starts, in revision order. */
  watchPrefix(prefix: string, cb: (ev: WatchEvent) => void): Promise<Watch>;
  close(): Promise<void>;
}
