// A MetaStore held in a Map, for unit tests: revisioned KV, prefix reads and deletes, and
// compare-and-swap transactions behave like etcd's; leases and watches are not implemented.
import type { Compare, KeyValue, Lease, MetaStore, Op, TxnResult, Watch, WatchEvent } from '../../services/meta/meta-store.js';

export class MemoryMetaStore implements MetaStore {
  private readonly data = new Map<string, KeyValue>();
  private revision = 0;

  async get(key: string): Promise<KeyValue | undefined> {
    const kv = this.data.get(key);
    return kv ? copy(kv) : undefined;
  }

  async getPrefix(prefix: string): Promise<KeyValue[]> {
    return [...this.data.keys()]
      .filter((k) => k.startsWith(prefix))
      .sort()
      .map((k) => copy(this.data.get(k)!));
  }

  async put(key: string, value: Buffer, opts?: { lease?: string }): Promise<number> {
    this.revision++;
    this.apply({ type: 'put', key, value, lease: opts?.lease });
    return this.revision;
  }

  async delete(key: string): Promise<void> {
    if (!this.data.has(key)) return;
    this.revision++;
    this.apply({ type: 'delete', key });
  }

  async deletePrefix(prefix: string): Promise<void> {
    if (![...this.data.keys()].some((k) => k.startsWith(prefix))) return;
    this.revision++;
    this.apply({ type: 'deletePrefix', prefix });
  }

  async txn(compares: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    const succeeded = compares.every((c) => this.holds(c));
    const ops = succeeded ? success : failure;
    const keys = ops.filter((o) => o.type !== 'deletePrefix').map((o) => (o as { key: string }).key);
    // etcd refuses a transaction that names one key twice.
    if (new Set(keys).size !== keys.length) throw new Error('duplicate key given in txn request');
    if (ops.length > 0) {
      this.revision++;
      for (const op of ops) this.apply(op);
    }
    return { succeeded, revision: this.revision };
  }

  async grantLease(_ttlSeconds: number): Promise<Lease> {
    throw new Error('MemoryMetaStore: leases are not implemented');
  }

  async revokeLease(_id: string): Promise<void> {
    throw new Error('MemoryMetaStore: leases are not implemented');
  }

  async watchPrefix(_prefix: string, _cb: (ev: WatchEvent) => void): Promise<Watch> {
    throw new Error('MemoryMetaStore: watches are not implemented');
  }

  async close(): Promise<void> {}

  /** Test helper: every key, in order. */
  keys(): string[] {
    return [...this.data.keys()].sort();
  }

  private apply(op: Op): void {
    switch (op.type) {
      case 'put': {
        const prev = this.data.get(op.key);
        this.data.set(op.key, {
          key: op.key,
          value: Buffer.from(op.value),
          createRevision: prev ? prev.createRevision : this.revision,
          modRevision: this.revision,
          version: prev ? prev.version + 1 : 1,
          ...(op.lease !== undefined ? { lease: op.lease } : {}),
        });
        return;
      }
      case 'delete':
        this.data.delete(op.key);
        return;
      case 'deletePrefix':
        for (const k of [...this.data.keys()]) if (k.startsWith(op.prefix)) this.data.delete(k);
        return;
    }
  }

  private holds(c: Compare): boolean {
    const kv = this.data.get(c.key);
    if (c.target === 'exists') return (kv !== undefined) === c.value;
    if (c.target === 'value') {
      const equal = kv !== undefined && kv.value.equals(c.value);
      return c.op === '==' ? equal : !equal;
    }
    // etcd compares a missing key's revisions and version as 0.
    const actual = kv ? kv[c.target] : 0;
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
}

function copy(kv: KeyValue): KeyValue {
  return { ...kv, value: Buffer.from(kv.value) };
}
