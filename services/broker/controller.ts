// The controller: one broker at a time, elected through a leased etcd key, assigns every
// partition and group-coordinator slot to a live broker. It keeps owners that are alive,
// gives orphans to the least loaded, then evens counts out one move at a time. A move is
// a metadata write: no data is copied (DESIGN.md §5).
import type { Logger } from 'pino';
import type { Lease, MetaStore, Op, Watch } from '../meta/meta-store.js';
import type { TopicRegistry } from '../meta/topics.js';
import { Keys } from '../meta/keys.js';
import { bounded } from './broker.js';
import { GROUP_SLOTS, decodeAssignment, encodeAssignment, keyOfUnit, partitionUnit, slotUnit, unitOfKey, type Assignment, type Unit } from './assignments.js';

const TXN_OPS = 100;

export class Controller {
  private leader = false;
  private watches: Watch[] = [];
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private closed = false;

  constructor(
    private readonly meta: MetaStore,
    private readonly topics: TopicRegistry,
    private readonly brokerId: number,
    private readonly lease: () => Lease,
    private readonly log: Logger,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  async start(): Promise<void> {
    // Whoever holds the key leads; when it goes (lease expiry), everyone campaigns again.
    this.watches.push(await this.meta.watchPrefix(Keys.controller, (ev) => ev.type === 'delete' && void this.campaign()));
    for (const prefix of [Keys.brokersPrefix, Keys.drainingPrefix, Keys.topicsPrefix, Keys.assignPrefix]) {
      this.watches.push(await this.meta.watchPrefix(prefix, () => this.schedule()));
    }
    await this.campaign();
  }

  private async campaign(): Promise<void> {
    if (this.closed) return;
    const res = await this.meta.txn(
      [{ key: Keys.controller, target: 'exists', value: false }],
      [{ type: 'put', key: Keys.controller, value: Buffer.from(String(this.brokerId)), lease: this.lease().id }],
    );
    const holder = await this.meta.get(Keys.controller);
    this.leader = res.succeeded || holder?.value.toString() === String(this.brokerId);
    if (this.leader) {
      this.log.info({ brokerId: this.brokerId }, 'elected controller');
      this.schedule();
    }
  }

  /** Coalesces bursts of changes (a broker dying deletes many keys) into one pass. */
  private schedule(): void {
    if (!this.leader || this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile();
    }, 20);
  }

  async reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        await this.reconcileOnce();
      } while (this.again && !this.closed);
    } catch (err) {
      this.log.warn({ err }, 'assignment pass failed; retrying');
      setTimeout(() => this.schedule(), 200);
    } finally {
      this.running = false;
    }
  }

  private async reconcileOnce(): Promise<void> {
    const started = performance.now();
    const draining = new Set((await this.meta.getPrefix(Keys.drainingPrefix)).map((kv) => Number(kv.key.slice(Keys.drainingPrefix.length))));
    const live = (await this.meta.getPrefix(Keys.brokersPrefix)).map((kv) => Number(kv.key.slice(Keys.brokersPrefix.length)));
    const targets = live.filter((id) => !draining.has(id)).sort((a, b) => a - b);
    const current = new Map<Unit, Assignment>();
    for (const kv of await this.meta.getPrefix(Keys.assignPrefix)) current.set(unitOfKey(kv.key), decodeAssignment(kv.value));

    const units: Unit[] = [];
    for (const t of this.topics.list()) for (let p = 0; p < t.partitions; p++) units.push(partitionUnit(t.id, p));
    for (let s = 0; s < GROUP_SLOTS; s++) units.push(slotUnit(s));

    const ops: Op[] = [];
    const wanted = new Set(units);
    for (const unit of current.keys()) if (!wanted.has(unit)) ops.push({ type: 'delete', key: keyOfUnit(unit) });
    // Partitions and group slots are balanced each on their own, so both spread evenly.
    if (targets.length > 0) {
      const isSlot = (u: Unit) => u.startsWith('__groups/');
      for (const group of [units.filter((u) => !isSlot(u)), units.filter(isSlot)]) ops.push(...this.balance(group, current, targets));
    }
    if (ops.length === 0) return;
    // Only the elected controller may write: every batch re-checks the election key.
    for (let i = 0; i < ops.length; i += TXN_OPS) {
      const res = await this.meta.txn(
        [{ key: Keys.controller, target: 'value', op: '==', value: Buffer.from(String(this.brokerId)) }],
        ops.slice(i, i + TXN_OPS),
      );
      if (!res.succeeded) {
        this.leader = false;
        this.log.warn('lost controller election while assigning');
        return;
      }
    }
    this.log.info({ changes: ops.length, brokers: targets, ms: Math.round(performance.now() - started) }, 'assignments updated');
  }

  /** Keeps live owners, gives orphans to the least loaded, then evens counts one move at a time. */
  private balance(units: Unit[], current: Map<Unit, Assignment>, targets: number[]): Op[] {
    const owner = new Map<Unit, number>();
    const load = new Map<number, Unit[]>(targets.map((id) => [id, []]));
    const orphans: Unit[] = [];
    for (const unit of units) {
      const a = current.get(unit);
      if (a && load.has(a.broker)) {
        owner.set(unit, a.broker);
        load.get(a.broker)!.push(unit);
      } else orphans.push(unit);
    }
    const least = () => [...load.entries()].reduce((m, e) => (e[1].length < m[1].length ? e : m));
    const most = () => [...load.entries()].reduce((m, e) => (e[1].length > m[1].length ? e : m));
    for (const unit of orphans) {
      const [id, list] = least();
      list.push(unit);
      owner.set(unit, id);
    }
    for (;;) {
      const [hi, hiList] = most();
      const [lo, loList] = least();
      if (hiList.length - loList.length <= 1 || hi === lo) break;
      const unit = hiList.pop()!;
      loList.push(unit);
      owner.set(unit, lo);
    }
    const ops: Op[] = [];
    for (const [unit, broker] of owner) {
      const a = current.get(unit);
      if (a?.broker === broker) continue;
      ops.push({ type: 'put', key: keyOfUnit(unit), value: encodeAssignment({ broker, epoch: (a?.epoch ?? -1) + 1 }) });
    }
    return ops;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.watches) await bounded(w.close());
    if (this.leader) await bounded(this.meta.delete(Keys.controller));
  }
}
