// Group coordinator slots in cluster mode (DESIGN.md §3 "Consumer groups", §5 fencing): a
// coordinator whose slot lock changed hands behind its back (its lease expired during a
// pause, and another broker took the slot) must not overwrite what the new owner stored.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeAssignment, keyOfUnit, slotOf, slotUnit } from '../../services/broker/assignments.js';
import { GroupCoordinator, offsetKey, type OffsetCommitRequest } from '../../services/broker/group-coordinator.js';
import { SlotGroups } from '../../services/broker/slot-groups.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';
import type { Lease } from '../../services/meta/meta-store.js';
import { Keys } from '../../services/meta/keys.js';
import { ErrorCode } from '../../services/protocol/errors.js';

const log = pino({ level: 'silent' });
const GROUP = 'payments';
const SLOT = slotOf(GROUP);

const commit = (offset: number): OffsetCommitRequest => ({
  groupId: GROUP,
  generationIdOrMemberEpoch: -1,
  memberId: '',
  groupInstanceId: null,
  topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: BigInt(offset), committedLeaderEpoch: -1, committedMetadata: '' }] }],
});

const errorOf = (r: Awaited<ReturnType<GroupCoordinator['commitOffsets']>>) => r.topics[0].partitions[0].errorCode;

describe('group slots', () => {
  let dir: string;
  let meta: EmbeddedMetaStore;
  let lease: Lease;
  let groups: SlotGroups;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-slots-'));
    meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
    lease = await meta.grantLease(30);
    await meta.put(keyOfUnit(slotUnit(SLOT)), encodeAssignment({ broker: 1, epoch: 0 }));
    groups = new SlotGroups(meta, 1, () => lease, log, { initialRebalanceDelayMs: 0 });
    await groups.start();
  });

  afterEach(async () => {
    await groups.close();
    await meta.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the groups of an assigned slot and stores their offsets', async () => {
    expect(groups.ownedSlots).toContain(SLOT);
    expect(errorOf(await groups.commitOffsets(commit(7)))).toBe(ErrorCode.NONE);
    const stored = await meta.get(offsetKey(GROUP, 'orders', 0));
    expect(JSON.parse(stored!.value.toString()).offset).toBe('7');
  });

  it('a coordinator whose slot lock changed hands cannot overwrite the new owner’s commits', async () => {
    expect(errorOf(await groups.commitOffsets(commit(7)))).toBe(ErrorCode.NONE);

    // Broker 1 paused past its lease: the lock went with the lease, broker 2 took the slot
    // and committed. Broker 1 saw none of it (its assignment watch never fired).
    await meta.delete(Keys.slotLock(SLOT));
    const lease2 = await meta.grantLease(30);
    const taken = await meta.txn([{ key: Keys.slotLock(SLOT), target: 'exists', value: false }], [{ type: 'put', key: Keys.slotLock(SLOT), value: Buffer.from('2'), lease: lease2.id }]);
    expect(taken.succeeded).toBe(true);
    const lock2 = (await meta.get(Keys.slotLock(SLOT)))!.createRevision;
    const next = new GroupCoordinator({ meta, log, owns: (g) => slotOf(g) === SLOT, fence: [{ key: Keys.slotLock(SLOT), target: 'createRevision', op: '==', value: lock2 }] });
    await next.loadGroups();
    expect(errorOf(await next.commitOffsets(commit(20)))).toBe(ErrorCode.NONE);

    // The zombie's commit is refused with NOT_COORDINATOR (clients look the coordinator up
    // again) and the stored offset stays the new owner's.
    expect(errorOf(await groups.commitOffsets(commit(5)))).toBe(ErrorCode.NOT_COORDINATOR);
    const stored = await meta.get(offsetKey(GROUP, 'orders', 0));
    expect(JSON.parse(stored!.value.toString()).offset).toBe('20');
    // And it stops serving the slot's groups at once.
    expect((await groups.fetchOffsets({ groupId: GROUP, topics: null })).errorCode).toBe(ErrorCode.NOT_COORDINATOR);
    expect(groups.ownedSlots).not.toContain(SLOT);
    await next.close();
  });
});
