// What a proxy knows of the cluster, mirrored from the MetaStore by prefix watches: live
// brokers and proxies (leased registrations) and the assignment of every partition and
// group slot. Routing reads it synchronously; it never waits for the store.
import type { MetaStore, Watch } from '../meta/meta-store.js';
import { Keys } from '../meta/keys.js';
import { decodeAssignment, unitOfKey, type Assignment, type Registration, type Unit } from '../broker/assignments.js';

export class ClusterView {
  readonly brokers = new Map<number, Registration>();
  readonly proxies = new Map<number, Registration>();
  readonly assignments = new Map<Unit, Assignment>();
  private watches: Watch[] = [];
  private listeners = new Set<() => void>();

  private constructor() {}

  static async open(meta: MetaStore): Promise<ClusterView> {
    const v = new ClusterView();
    const reg = (map: Map<number, Registration>, prefix: string) => async () => {
      v.watches.push(
        await meta.watchPrefix(prefix, (ev) => {
          const id = Number(ev.key.slice(prefix.length));
          if (ev.type === 'put' && ev.value) map.set(id, JSON.parse(ev.value.toString()) as Registration);
          else map.delete(id);
          v.changed();
        }),
      );
      for (const kv of await meta.getPrefix(prefix)) map.set(Number(kv.key.slice(prefix.length)), JSON.parse(kv.value.toString()) as Registration);
    };
    await reg(v.brokers, Keys.brokersPrefix)();
    await reg(v.proxies, Keys.proxiesPrefix)();
    v.watches.push(
      await meta.watchPrefix(Keys.assignPrefix, (ev) => {
        const unit = unitOfKey(ev.key);
        if (ev.type === 'put' && ev.value) v.assignments.set(unit, decodeAssignment(ev.value));
        else v.assignments.delete(unit);
        v.changed();
      }),
    );
    for (const kv of await meta.getPrefix(Keys.assignPrefix)) v.assignments.set(unitOfKey(kv.key), decodeAssignment(kv.value));
    return v;
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  onChange(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** The live broker a unit is assigned to, if any. */
  ownerOf(unit: Unit): Registration | undefined {
    const a = this.assignments.get(unit);
    return a ? this.brokers.get(a.broker) : undefined;
  }

  epochOf(unit: Unit): number {
    return this.assignments.get(unit)?.epoch ?? -1;
  }

  /** Resolves true once every unit has a live owner, false after timeoutMs. */
  whenAssigned(units: Unit[], timeoutMs: number): Promise<boolean> {
    const ready = () => units.every((u) => this.ownerOf(u) !== undefined);
    if (ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!ready()) return;
        done(true);
      };
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.listeners.add(check);
    });
  }

  async close(): Promise<void> {
    for (const w of this.watches) await w.close().catch(() => undefined);
  }
}
