// Group coordination in cluster mode: groups hash onto GROUP_SLOTS slots, each slot owned by
// one broker at a time like a partition (assignment, leased lock, failover). This broker
// runs one GroupCoordinator per slot it owns, loaded from the MetaStore on acquisition, and
// answers NOT_COORDINATOR for the rest so clients look the coordinator up again.
import type { Logger } from 'pino';
import type { Lease, MetaStore, Watch } from '../meta/meta-store.js';
import { Keys } from '../meta/keys.js';
import { ErrorCode } from '../protocol/errors.js';
import { GroupCoordinator, type GroupCoordinatorOptions } from './group-coordinator.js';
import { bounded } from './broker.js';
import type { GroupService } from './group-service.js';
import { decodeAssignment, parseUnit, slotOf, unitOfKey } from './assignments.js';

type Args<K extends keyof GroupService> = Parameters<GroupService[K]>;
type Result<K extends keyof GroupService> = Awaited<ReturnType<GroupService[K]>>;

const NOT_COORD = ErrorCode.NOT_COORDINATOR;

export class SlotGroups implements GroupService {
  private readonly slots = new Map<number, GroupCoordinator>();
  private readonly opening = new Set<number>();
  private assigned = new Set<number>();
  private watch?: Watch;
  private syncing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly meta: MetaStore,
    private readonly brokerId: number,
    private readonly lease: () => Lease,
    private readonly log: Logger,
    private readonly options: Omit<GroupCoordinatorOptions, 'meta' | 'log' | 'owns'>,
  ) {}

  async start(): Promise<void> {
    this.watch = await this.meta.watchPrefix(Keys.assignPrefix + '__groups/', (ev) => {
      // Kept current here so that a lock wait ends as soon as the slot is assigned elsewhere.
      const u = parseUnit(unitOfKey(ev.key));
      if (u.kind === 'slot') {
        if (ev.type === 'put' && ev.value && decodeAssignment(ev.value).broker === this.brokerId) this.assigned.add(u.slot);
        else this.assigned.delete(u.slot);
      }
      void this.sync();
    });
    await this.sync();
  }

  get ownedSlots(): number[] {
    return [...this.slots.keys()].sort((a, b) => a - b);
  }

  private sync(): Promise<void> {
    this.syncing = this.syncing.then(() => this.syncOnce()).catch((err) => this.log.warn({ err }, 'slot sync failed'));
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    if (this.closed) return;
    const mine = new Set<number>();
    for (const kv of await this.meta.getPrefix(Keys.assignPrefix + '__groups/')) {
      const u = parseUnit(unitOfKey(kv.key));
      if (u.kind === 'slot' && decodeAssignment(kv.value).broker === this.brokerId) mine.add(u.slot);
    }
    for (const [slot, coord] of this.slots) {
      if (mine.has(slot)) continue;
      this.slots.delete(slot);
      await coord.close();
      await this.meta.txn([{ key: Keys.slotLock(slot), target: 'value', op: '==', value: this.me }], [{ type: 'delete', key: Keys.slotLock(slot) }]);
      this.log.info({ slot }, 'group slot released');
    }
    this.assigned = mine;
    await Promise.all([...mine].filter((s) => !this.slots.has(s) && !this.opening.has(s)).map((s) => this.open(s, () => this.assigned.has(s))));
  }

  private get me(): Buffer {
    return Buffer.from(String(this.brokerId));
  }

  /** Takes the slot's lock (waiting out a previous owner's lease), then loads its groups. */
  private async open(slot: number, stillMine: () => boolean): Promise<void> {
    this.opening.add(slot);
    try {
      const key = Keys.slotLock(slot);
      let lock: number;
      for (;;) {
        if (this.closed || !stillMine()) return;
        await this.meta.txn([{ key, target: 'exists', value: false }], [{ type: 'put', key, value: this.me, lease: this.lease().id }]);
        const held = await this.meta.get(key);
        if (held?.value.equals(this.me)) {
          lock = held.createRevision;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      // Every write of the slot's groups checks that the lock is still the one taken here.
      const coord: GroupCoordinator = new GroupCoordinator({
        ...this.options,
        meta: this.meta,
        log: this.log.child({ slot }),
        owns: (g) => slotOf(g) === slot,
        fence: [{ key, target: 'createRevision', op: '==', value: lock }],
        onFenced: () => void this.dropFenced(slot, coord),
      });
      await coord.loadGroups();
      this.slots.set(slot, coord);
      this.log.info({ slot }, 'group slot acquired');
    } finally {
      this.opening.delete(slot);
    }
  }

  /** A coordinator that lost its slot lock stops serving; the slot is taken again if still ours. */
  private async dropFenced(slot: number, coord: GroupCoordinator): Promise<void> {
    if (this.slots.get(slot) !== coord) return;
    this.slots.delete(slot);
    this.log.warn({ slot }, 'group slot lost: its lock changed hands');
    await bounded(coord.close());
    void this.sync();
  }

  private coordinatorFor(groupId: string): GroupCoordinator | undefined {
    return this.slots.get(slotOf(groupId));
  }

  async joinGroup(...[req, version, ctx]: Args<'joinGroup'>): Promise<Result<'joinGroup'>> {
    const c = this.coordinatorFor(req.groupId);
    if (c) return c.joinGroup(req, version, ctx);
    return { errorCode: NOT_COORD, generationId: -1, protocolType: null, protocolName: null, leader: '', skipAssignment: false, memberId: req.memberId, members: [] };
  }

  async syncGroup(...[req, version]: Args<'syncGroup'>): Promise<Result<'syncGroup'>> {
    const c = this.coordinatorFor(req.groupId);
    if (c) return c.syncGroup(req, version);
    return { errorCode: NOT_COORD, protocolType: null, protocolName: null, assignment: Buffer.alloc(0) };
  }

  async heartbeat(...[req]: Args<'heartbeat'>): Promise<Result<'heartbeat'>> {
    return this.coordinatorFor(req.groupId)?.heartbeat(req) ?? { errorCode: NOT_COORD };
  }

  async leaveGroup(...[req, version]: Args<'leaveGroup'>): Promise<Result<'leaveGroup'>> {
    return this.coordinatorFor(req.groupId)?.leaveGroup(req, version) ?? { errorCode: NOT_COORD, members: [] };
  }

  async commitOffsets(...[req]: Args<'commitOffsets'>): Promise<Result<'commitOffsets'>> {
    const c = this.coordinatorFor(req.groupId);
    if (c) return c.commitOffsets(req);
    return { topics: req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: NOT_COORD })) })) };
  }

  async fetchOffsets(...[req]: Args<'fetchOffsets'>): Promise<Result<'fetchOffsets'>> {
    return this.coordinatorFor(req.groupId)?.fetchOffsets(req) ?? { errorCode: NOT_COORD, topics: [] };
  }

  async describeGroups(...[ids]: Args<'describeGroups'>): Promise<Result<'describeGroups'>> {
    return Promise.all(
      ids.map(async (id) => {
        const c = this.coordinatorFor(id);
        if (c) return (await c.describeGroups([id]))[0];
        return { errorCode: NOT_COORD, groupId: id, groupState: '', protocolType: '', protocolData: '', members: [] };
      }),
    );
  }

  async listGroups(...[states]: Args<'listGroups'>): Promise<Result<'listGroups'>> {
    const all = await Promise.all([...this.slots.values()].map((c) => c.listGroups(states)));
    return all.flat();
  }

  async deleteGroups(...[ids]: Args<'deleteGroups'>): Promise<Result<'deleteGroups'>> {
    return Promise.all(
      ids.map(async (id) => {
        const c = this.coordinatorFor(id);
        return c ? (await c.deleteGroups([id]))[0] : { groupId: id, errorCode: NOT_COORD };
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    await bounded(this.watch?.close());
    for (const c of this.slots.values()) await bounded(c.close());
    this.slots.clear();
  }
}
