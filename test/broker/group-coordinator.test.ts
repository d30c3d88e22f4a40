import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  GroupCoordinator,
  groupStateKey,
  offsetKey,
  type GroupCoordinatorOptions,
  type JoinGroupRequest,
  type JoinGroupResponse,
  type StoredGroup,
  type SyncGroupRequest,
} from '../../services/broker/group-coordinator.js';
import { ErrorCode, errorName } from '../../services/protocol/errors.js';
import { MemoryMetaStore } from '../support/memory-meta-store.js';

const log = pino({ level: 'silent' });
const SESSION = 1000;
const REBALANCE = 5000;
const DELAY = 100;
const GROUP = 'orders-consumers';

let store: MemoryMetaStore;
let coordinators: GroupCoordinator[];

function coordinator(opts: Partial<GroupCoordinatorOptions> = {}): GroupCoordinator {
  const c = new GroupCoordinator({
    meta: store,
    log,
    initialRebalanceDelayMs: DELAY,
    minSessionTimeoutMs: 100,
    maxSessionTimeoutMs: 60_000,
    ...opts,
  });
  coordinators.push(c);
  return c;
}

async function started(opts: Partial<GroupCoordinatorOptions> = {}): Promise<GroupCoordinator> {
  const c = coordinator(opts);
  await c.loadGroups();
  return c;
}

const meta = (s: string) => Buffer.from(s);

function joinReq(over: Partial<JoinGroupRequest> = {}): JoinGroupRequest {
  return {
    groupId: GROUP,
    sessionTimeoutMs: SESSION,
    rebalanceTimeoutMs: REBALANCE,
    memberId: '',
    groupInstanceId: null,
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: meta('sub') }],
    ...over,
  };
}

const ctx = (clientId: string) => ({ clientId, clientHost: `/10.0.0.${clientId.length}` });

function syncReq(memberId: string, generationId: number, over: Partial<SyncGroupRequest> = {}): SyncGroupRequest {
  return {
    groupId: GROUP,
    generationId,
    memberId,
    groupInstanceId: null,
    protocolType: 'consumer',
    protocolName: 'range',
    assignments: [],
    ...over,
  };
}

/** Tracks whether a held promise has been answered yet. */
function track<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let done = false;
  void p.then(() => (done = true));
  return { p, settled: () => done };
}

/** KIP-394 first round trip: returns the member id the coordinator hands out. */
async function requireId(c: GroupCoordinator, clientId: string): Promise<string> {
  const r = await c.joinGroup(joinReq(), 5, ctx(clientId));
  expect(r.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
  return r.memberId;
}

const assignmentFor = (memberId: string) => Buffer.from(`assignment-of-${memberId}`);

interface Formed {
  ids: string[];
  leader: string;
  generationId: number;
  joins: JoinGroupResponse[];
}

/** Joins n dynamic members through MEMBER_ID_REQUIRED, completes the join phase and the sync. */
async function formGroup(c: GroupCoordinator, n: number): Promise<Formed> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await requireId(c, `client-${i}`));
  const pending = ids.map((memberId, i) =>
    c.joinGroup(joinReq({ memberId, protocols: [{ name: 'range', metadata: meta(`sub-${i}`) }] }), 7, ctx(`client-${i}`)),
  );
  await vi.advanceTimersByTimeAsync(DELAY * (n + 2));
  const joins = await Promise.all(pending);
  const { leader, generationId } = joins[0]!;
  const syncs = ids.map((id) =>
    c.syncGroup(
      syncReq(id, generationId, {
        assignments: id === leader ? ids.map((m) => ({ memberId: m, assignment: assignmentFor(m) })) : [],
      }),
      5,
    ),
  );
  for (const s of await Promise.all(syncs)) expect(s.errorCode).toBe(ErrorCode.NONE);
  return { ids, leader, generationId, joins };
}

async function storedState(): Promise<StoredGroup | undefined> {
  const kv = await store.get(groupStateKey(GROUP));
  return kv ? (JSON.parse(kv.value.toString()) as StoredGroup) : undefined;
}

async function stateOf(c: GroupCoordinator, groupId = GROUP): Promise<string> {
  return (await c.describeGroups([groupId]))[0]!.groupState;
}

beforeEach(() => {
  vi.useFakeTimers();
  store = new MemoryMetaStore();
  coordinators = [];
});

afterEach(async () => {
  for (const c of coordinators) await c.close();
  vi.useRealTimers();
});

describe('join and sync', () => {
  it('runs a three-member join/sync round and hands the leader assignment to every follower', async () => {
    const c = await started();
    const ids = [await requireId(c, 'a'), await requireId(c, 'b'), await requireId(c, 'c')];
    const joins = ids.map((memberId, i) =>
      track(c.joinGroup(joinReq({ memberId, protocols: [{ name: 'range', metadata: meta(`sub-${i}`) }] }), 7, ctx('abc'[i]!))),
    );

    // The initial rebalance delay holds the answers, and is extended because members kept arriving.
    await vi.advanceTimersByTimeAsync(DELAY - 1);
    expect(joins.some((j) => j.settled())).toBe(false);
    expect(await stateOf(c)).toBe('PreparingRebalance');
    await vi.advanceTimersByTimeAsync(DELAY + 1);
    const res = await Promise.all(joins.map((j) => j.p));

    const leader = ids[0]!;
    for (const [i, r] of res.entries()) {
      expect(r.errorCode).toBe(ErrorCode.NONE);
      expect(r.generationId).toBe(1);
      expect(r.memberId).toBe(ids[i]);
      expect(r.leader).toBe(leader);
      expect(r.protocolType).toBe('consumer');
      expect(r.protocolName).toBe('range');
    }
    expect(res[0]!.members.map((m) => [m.memberId, m.metadata.toString()])).toEqual(
      ids.map((id, i) => [id, `sub-${i}`]),
    );
    expect(res[1]!.members).toEqual([]);
    expect(res[2]!.members).toEqual([]);
    expect(await stateOf(c)).toBe('CompletingRebalance');

    // Followers sync first and wait for the leader.
    const followers = [ids[1]!, ids[2]!].map((id) => track(c.syncGroup(syncReq(id, 1), 5)));
    await vi.advanceTimersByTimeAsync(10);
    expect(followers.some((f) => f.settled())).toBe(false);

    const leaderSync = await c.syncGroup(
      syncReq(leader, 1, { assignments: ids.map((m) => ({ memberId: m, assignment: assignmentFor(m) })) }),
      5,
    );
    expect(leaderSync).toEqual({
      errorCode: ErrorCode.NONE,
      protocolType: 'consumer',
      protocolName: 'range',
      assignment: assignmentFor(leader),
    });
    const [f1, f2] = await Promise.all(followers.map((f) => f.p));
    expect(f1!.assignment).toEqual(assignmentFor(ids[1]!));
    expect(f2!.assignment).toEqual(assignmentFor(ids[2]!));

    const [described] = await c.describeGroups([GROUP]);
    expect(described).toMatchObject({ errorCode: 0, groupState: 'Stable', protocolType: 'consumer', protocolData: 'range' });
    expect(described!.members.map((m) => [m.memberId, m.clientId, m.memberAssignment.toString()])).toEqual(
      ids.map((id, i) => [id, 'abc'[i], `assignment-of-${id}`]),
    );

    const stored = await storedState();
    expect(stored).toMatchObject({ generationId: 1, protocolType: 'consumer', protocolName: 'range', leader, rebalancePending: false });
    expect(stored!.members.map((m) => Buffer.from(m.assignment, 'base64').toString())).toEqual(
      ids.map((id) => `assignment-of-${id}`),
    );
  });

  it('gives an empty assignment to members the leader left out', async () => {
    const c = await started();
    const a = await requireId(c, 'a');
    const b = await requireId(c, 'b');
    const ja = c.joinGroup(joinReq({ memberId: a }), 5, ctx('a'));
    const jb = c.joinGroup(joinReq({ memberId: b }), 5, ctx('b'));
    await vi.advanceTimersByTimeAsync(DELAY * 3);
    const [ra] = await Promise.all([ja, jb]);
    const follower = track(c.syncGroup(syncReq(b, ra.generationId), 5));
    const leaderSync = await c.syncGroup(
      syncReq(a, ra.generationId, { assignments: [{ memberId: a, assignment: meta('all') }, { memberId: 'ghost', assignment: meta('x') }] }),
      5,
    );
    expect(leaderSync.assignment.toString()).toBe('all');
    expect((await follower.p).assignment.length).toBe(0);
  });

  it('round-trips MEMBER_ID_REQUIRED: the generated id is remembered and accepted on the retry', async () => {
    const c = await started();
    const first = await c.joinGroup(joinReq(), 4, ctx('rdkafka'));
    expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    expect(first.memberId).toMatch(/^rdkafka-[0-9a-f-]{36}$/);
    expect(first.generationId).toBe(-1);

    const made_up = await c.joinGroup(joinReq({ memberId: 'rdkafka-not-issued' }), 4, ctx('rdkafka'));
    expect(made_up.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);

    const retry = c.joinGroup(joinReq({ memberId: first.memberId }), 4, ctx('rdkafka'));
    await vi.advanceTimersByTimeAsync(DELAY);
    const r = await retry;
    expect(r).toMatchObject({ errorCode: 0, memberId: first.memberId, leader: first.memberId, generationId: 1 });
    expect(r.members.map((m) => m.memberId)).toEqual([first.memberId]);
  });

  it('forgets a pending member id once its session timeout has passed', async () => {
    const c = await started();
    const id = await requireId(c, 'slow');
    await vi.advanceTimersByTimeAsync(SESSION + 1);
    const late = await c.joinGroup(joinReq({ memberId: id }), 5, ctx('slow'));
    expect(late.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(await c.listGroups()).toEqual([]);
  });

  it('assigns member ids directly to JoinGroup v0-3 and answers protocolName "" before v7', async () => {
    const c = await started();
    const j = c.joinGroup(joinReq(), 3, ctx('old'));
    await vi.advanceTimersByTimeAsync(DELAY);
    const r = await j;
    expect(r.errorCode).toBe(ErrorCode.NONE);
    expect(r.memberId).toMatch(/^old-/);
    const err = await c.joinGroup(joinReq({ groupId: GROUP, memberId: 'nobody' }), 3, ctx('old'));
    expect(err).toMatchObject({ errorCode: ErrorCode.UNKNOWN_MEMBER_ID, protocolName: '', generationId: -1, leader: '' });
    const err7 = await c.joinGroup(joinReq({ memberId: 'nobody' }), 7, ctx('old'));
    expect(err7.protocolName).toBeNull();
  });

  it('uses the session timeout as the rebalance timeout for JoinGroup v0', async () => {
    const c = await started();
    const a = c.joinGroup(joinReq({ rebalanceTimeoutMs: -1 }), 0, ctx('a'));
    await vi.advanceTimersByTimeAsync(DELAY);
    const ra = await a;
    await c.syncGroup(syncReq(ra.memberId, 1, { assignments: [{ memberId: ra.memberId, assignment: meta('x') }] }), 0);
    // A second member starts a rebalance that `a` never joins: it is dropped after SESSION, not REBALANCE.
    const b = track(c.joinGroup(joinReq(), 0, ctx('b')));
    await vi.advanceTimersByTimeAsync(SESSION + 1);
    expect(b.settled()).toBe(true);
    const rb = await b.p;
    expect(rb).toMatchObject({ errorCode: 0, generationId: 2, leader: rb.memberId });
  });

  it('selects the protocol every member supports, by the members’ votes', async () => {
    const c = await started();
    const p = (...names: string[]) => names.map((name) => ({ name, metadata: meta(name) }));
    const joins = [p('roundrobin', 'range', 'sticky'), p('sticky', 'range'), p('range', 'sticky', 'roundrobin')].map((protocols, i) =>
      c.joinGroup(joinReq({ protocols }), 3, ctx(`c${i}`)),
    );
    await vi.advanceTimersByTimeAsync(DELAY * 5);
    const res = await Promise.all(joins);
    // Candidates: range and sticky. Votes: member 0 → range, 1 → sticky, 2 → range.
    expect(res.map((r) => r.protocolName)).toEqual(['range', 'range', 'range']);
    expect(res[0]!.members.map((m) => m.metadata.toString())).toEqual(['range', 'range', 'range']);
  });

  it('rejects a member whose protocols the group does not support with INCONSISTENT_GROUP_PROTOCOL', async () => {
    const c = await started();
    await formGroup(c, 1);
    const other = await c.joinGroup(joinReq({ protocols: [{ name: 'roundrobin', metadata: meta('') }] }), 5, ctx('x'));
    expect(other.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const otherType = await c.joinGroup(joinReq({ protocolType: 'connect' }), 5, ctx('x'));
    expect(otherType.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const noType = await c.joinGroup(joinReq({ groupId: 'fresh', protocolType: '' }), 5, ctx('x'));
    expect(noType.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const noProtocols = await c.joinGroup(joinReq({ groupId: 'fresh', protocols: [] }), 5, ctx('x'));
    expect(noProtocols.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    expect((await c.listGroups()).map((g) => g.groupId)).toEqual([GROUP]);
  });

  it('answers SyncGroup with INCONSISTENT_GROUP_PROTOCOL when the request names another protocol (KIP-559)', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 1);
    const wrongName = await c.syncGroup(syncReq(ids[0]!, 1, { protocolName: 'roundrobin' }), 5);
    expect(wrongName.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const wrongType = await c.syncGroup(syncReq(ids[0]!, 1, { protocolType: 'connect' }), 5);
    expect(wrongType.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const unnamed = await c.syncGroup(syncReq(ids[0]!, 1, { protocolType: null, protocolName: null }), 3);
    expect(unnamed).toMatchObject({ errorCode: 0, protocolType: 'consumer', protocolName: 'range' });
  });

  it('checks SyncGroup generation and member', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 2);
    expect((await c.syncGroup(syncReq(ids[1]!, 7), 5)).errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect((await c.syncGroup(syncReq('stranger', 1), 5)).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((await c.syncGroup(syncReq('stranger', 1, { groupId: 'nope' }), 5)).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    const again = await c.syncGroup(syncReq(ids[1]!, 1), 5);
    expect(again.assignment).toEqual(assignmentFor(ids[1]!));
  });

  it('answers waiting followers REBALANCE_IN_PROGRESS when a new member joins before the leader syncs', async () => {
    const c = await started();
    const a = await requireId(c, 'a');
    const b = await requireId(c, 'b');
    const joins = [a, b].map((memberId) => c.joinGroup(joinReq({ memberId }), 5, ctx(memberId)));
    await vi.advanceTimersByTimeAsync(DELAY * 3);
    await Promise.all(joins);
    const follower = c.syncGroup(syncReq(b, 1), 5);
    const newcomer = c.joinGroup(joinReq(), 3, ctx('c'));
    expect((await follower).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(await stateOf(c)).toBe('PreparingRebalance');
    expect((await c.syncGroup(syncReq(a, 1), 5)).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const rejoins = [a, b].map((memberId) => c.joinGroup(joinReq({ memberId }), 5, ctx(memberId)));
    const all = await Promise.all([newcomer, ...rejoins]);
    expect(all.map((r) => r.generationId)).toEqual([2, 2, 2]);
  });

  it('gives the current generation again to a member that rejoins unchanged while the group completes', async () => {
    const c = await started();
    const a = await requireId(c, 'a');
    const j = c.joinGroup(joinReq({ memberId: a }), 5, ctx('a'));
    await vi.advanceTimersByTimeAsync(DELAY);
    const first = await j;
    const again = await c.joinGroup(joinReq({ memberId: a }), 5, ctx('a'));
    expect(again).toEqual(first);
    expect(await stateOf(c)).toBe('CompletingRebalance');
  });

  it('removes members that do not rejoin within the rebalance timeout', async () => {
    const c = await started();
    const { ids, leader } = await formGroup(c, 2);
    const follower = ids.find((id) => id !== leader)!;
    // The leader rejoining starts a rebalance; the follower keeps heartbeating but never rejoins.
    const rejoin = track(c.joinGroup(joinReq({ memberId: leader, protocols: [{ name: 'range', metadata: meta('sub-0') }] }), 7, ctx('client-0')));
    for (let t = 0; t < REBALANCE - 500; t += 500) {
      await vi.advanceTimersByTimeAsync(500);
      expect((await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: follower, groupInstanceId: null })).errorCode).toBe(
        ErrorCode.REBALANCE_IN_PROGRESS,
      );
    }
    expect(rejoin.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(600);
    const r = await rejoin.p;
    expect(r).toMatchObject({ errorCode: 0, generationId: 2, leader });
    expect(r.members.map((m) => m.memberId)).toEqual([leader]);
    expect((await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: follower, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
  });

  it('removes members that keep heartbeating but never send SyncGroup, and rebalances', async () => {
    const c = await started();
    const a = await requireId(c, 'a');
    const b = await requireId(c, 'b');
    const joins = [a, b].map((memberId) => c.joinGroup(joinReq({ memberId }), 5, ctx(memberId)));
    await vi.advanceTimersByTimeAsync(DELAY * 3);
    await Promise.all(joins);
    // b syncs and waits for the leader; the leader a heartbeats but never syncs.
    const waiting = track(c.syncGroup(syncReq(b, 1), 5));
    let elapsed = 0;
    while (!waiting.settled() && elapsed < REBALANCE * 2) {
      await vi.advanceTimersByTimeAsync(300);
      elapsed += 300;
      await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: a, groupInstanceId: null });
    }
    expect(elapsed).toBeGreaterThanOrEqual(REBALANCE - 300);
    expect((await waiting.p).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect((await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: a, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
    const rejoin = await c.joinGroup(joinReq({ memberId: b }), 5, ctx('b'));
    expect(rejoin).toMatchObject({ errorCode: 0, generationId: 2, leader: b });
  });
});

describe('static membership', () => {
  async function formStatic(c: GroupCoordinator): Promise<{ s1: string; s2: string }> {
    const j1 = c.joinGroup(joinReq({ groupInstanceId: 'i1' }), 5, ctx('app'));
    const j2 = c.joinGroup(joinReq({ groupInstanceId: 'i2' }), 5, ctx('app'));
    await vi.advanceTimersByTimeAsync(DELAY * 3);
    const [r1, r2] = await Promise.all([j1, j2]);
    expect(r1!.errorCode).toBe(ErrorCode.NONE); // no MEMBER_ID_REQUIRED for static members
    expect(r1!.memberId).toMatch(/^i1-/);
    const s1 = r1!.memberId;
    const s2 = r2!.memberId;
    expect(r1!.leader).toBe(s1);
    const f = c.syncGroup(syncReq(s2, 1, { groupInstanceId: 'i2' }), 5);
    await c.syncGroup(
      syncReq(s1, 1, { groupInstanceId: 'i1', assignments: [{ memberId: s1, assignment: meta('p0') }, { memberId: s2, assignment: meta('p1') }] }),
      5,
    );
    expect((await f).assignment.toString()).toBe('p1');
    return { s1, s2 };
  }

  it('lets a restarted static member rejoin without a rebalance and fences its old member id', async () => {
    const c = await started();
    const { s1, s2 } = await formStatic(c);

    const back = await c.joinGroup(joinReq({ groupInstanceId: 'i2' }), 7, ctx('app'));
    expect(back.errorCode).toBe(ErrorCode.NONE);
    expect(back.memberId).not.toBe(s2);
    expect(back).toMatchObject({ generationId: 1, leader: s1, protocolName: 'range', skipAssignment: false, members: [] });
    expect(await stateOf(c)).toBe('Stable');

    const hbOld = await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: s2, groupInstanceId: 'i2' });
    expect(hbOld.errorCode).toBe(ErrorCode.FENCED_INSTANCE_ID);
    const syncOld = await c.syncGroup(syncReq(s2, 1, { groupInstanceId: 'i2' }), 5);
    expect(syncOld.errorCode).toBe(ErrorCode.FENCED_INSTANCE_ID);

    const sync = await c.syncGroup(syncReq(back.memberId, 1, { groupInstanceId: 'i2' }), 5);
    expect(sync.assignment.toString()).toBe('p1');
    const hb = await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: back.memberId, groupInstanceId: 'i2' });
    expect(hb.errorCode).toBe(ErrorCode.NONE);
    expect((await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: s1, groupInstanceId: 'i1' })).errorCode).toBe(ErrorCode.NONE);

    const stored = await storedState();
    expect(stored!.members.map((m) => m.memberId).sort()).toEqual([s1, back.memberId].sort());
  });

  it('tells a restarted static leader on JoinGroup v9 to skip the assignment', async () => {
    const c = await started();
    const { s1 } = await formStatic(c);
    const back = await c.joinGroup(joinReq({ groupInstanceId: 'i1' }), 9, ctx('app'));
    expect(back).toMatchObject({ errorCode: 0, generationId: 1, skipAssignment: true, leader: back.memberId });
    expect(back.members).toHaveLength(2);
    // Before v9 the leader id it gets is its old one, so it behaves as a follower.
    const again = await c.joinGroup(joinReq({ groupInstanceId: 'i1' }), 8, ctx('app'));
    expect(again).toMatchObject({ errorCode: 0, skipAssignment: false, leader: back.memberId, members: [] });
    expect(s1).not.toBe(back.memberId);
    expect(await stateOf(c)).toBe('Stable');
  });

  it('rebalances when a static member comes back with metadata that changes the selected protocol', async () => {
    const c = await started();
    const p = (...names: string[]) => names.map((name) => ({ name, metadata: meta(name) }));
    const j1 = c.joinGroup(joinReq({ groupInstanceId: 'i1', protocols: p('roundrobin', 'range') }), 5, ctx('app'));
    const j2 = c.joinGroup(joinReq({ groupInstanceId: 'i2', protocols: p('range', 'roundrobin') }), 5, ctx('app'));
    await vi.advanceTimersByTimeAsync(DELAY * 3);
    const [r1, r2] = await Promise.all([j1, j2]);
    expect(r1!.protocolName).toBe('roundrobin'); // one vote each: the first vote cast wins the tie
    const f = c.syncGroup(syncReq(r2!.memberId, 1, { protocolName: 'roundrobin' }), 5);
    await c.syncGroup(syncReq(r1!.memberId, 1, { protocolName: 'roundrobin' }), 5);
    await f;

    // Back with the same choice of protocol: answered at once, no rebalance.
    const same = await c.joinGroup(joinReq({ groupInstanceId: 'i2', protocols: p('roundrobin', 'range') }), 5, ctx('app'));
    expect(same).toMatchObject({ errorCode: 0, generationId: 1 });
    expect(await stateOf(c)).toBe('Stable');

    // Back supporting only range: the group must move to range, so it rebalances.
    const changed = track(c.joinGroup(joinReq({ groupInstanceId: 'i2', protocols: p('range') }), 5, ctx('app')));
    await vi.advanceTimersByTimeAsync(0);
    expect(changed.settled()).toBe(false);
    expect(await stateOf(c)).toBe('PreparingRebalance');
    const leaderBack = await Promise.all([
      c.joinGroup(joinReq({ memberId: r1!.memberId, groupInstanceId: 'i1', protocols: p('roundrobin', 'range') }), 5, ctx('app')),
      changed.p,
    ]);
    expect(leaderBack.map((r) => [r.generationId, r.protocolName])).toEqual([
      [2, 'range'],
      [2, 'range'],
    ]);
  });

  it('answers a join with a foreign member id for a known instance id with FENCED_INSTANCE_ID', async () => {
    const c = await started();
    const { s1 } = await formStatic(c);
    const r = await c.joinGroup(joinReq({ memberId: 'i2-impostor', groupInstanceId: 'i2' }), 5, ctx('app'));
    expect(r.errorCode).toBe(ErrorCode.FENCED_INSTANCE_ID);
    const unknownInstance = await c.joinGroup(joinReq({ memberId: s1, groupInstanceId: 'i9' }), 5, ctx('app'));
    expect(unknownInstance.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('removes a static member by instance id alone (administrative LeaveGroup)', async () => {
    const c = await started();
    const { s1 } = await formStatic(c);
    const res = await c.leaveGroup({ groupId: GROUP, members: [{ memberId: '', groupInstanceId: 'i2' }, { memberId: '', groupInstanceId: 'i7' }] });
    expect(res).toEqual({
      errorCode: 0,
      members: [
        { memberId: '', groupInstanceId: 'i2', errorCode: ErrorCode.NONE },
        { memberId: '', groupInstanceId: 'i7', errorCode: ErrorCode.UNKNOWN_MEMBER_ID },
      ],
    });
    expect(await stateOf(c)).toBe('PreparingRebalance');
    const r = await c.joinGroup(joinReq({ memberId: s1, groupInstanceId: 'i1' }), 5, ctx('app'));
    expect(r).toMatchObject({ errorCode: 0, generationId: 2, leader: s1 });
  });
});

describe('heartbeats and sessions', () => {
  it('expires a silent member after its session timeout and gives the others a new generation', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 3);
    const [a, b, silent] = ids as [string, string, string];
    const hb = (memberId: string, generationId = 1) => c.heartbeat({ groupId: GROUP, generationId, memberId, groupInstanceId: null });

    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      await vi.advanceTimersByTimeAsync(300);
      seen.push((await hb(a)).errorCode, (await hb(b)).errorCode);
    }
    // The silent member's session ran out at 1000 ms: the rebalance shows up in the heartbeats after it.
    expect(seen.slice(0, 6).every((e) => e === ErrorCode.NONE)).toBe(true);
    expect(seen.slice(6)).toEqual([ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.REBALANCE_IN_PROGRESS]);
    expect((await hb(silent)).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(await storedState()).toMatchObject({ rebalancePending: true });

    const rejoins = [a, b].map((memberId, i) =>
      c.joinGroup(joinReq({ memberId, protocols: [{ name: 'range', metadata: meta(`sub-${i}`) }] }), 7, ctx(`client-${i}`)),
    );
    const res = await Promise.all(rejoins); // all remaining members rejoined: no waiting
    expect(res.map((r) => r.generationId)).toEqual([2, 2]);
    expect(res[0]!.members.map((m) => m.memberId)).toEqual([a, b]);
    expect((await hb(a, 1)).errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect((await hb(a, 2)).errorCode).toBe(ErrorCode.NONE);
  });

  it('answers heartbeats for unknown groups, members and generations', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 1);
    expect((await c.heartbeat({ groupId: 'nope', generationId: 1, memberId: ids[0]!, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
    expect((await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: 'x', groupInstanceId: null })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
    expect((await c.heartbeat({ groupId: GROUP, generationId: 0, memberId: ids[0]!, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.ILLEGAL_GENERATION,
    );
    expect((await c.heartbeat({ groupId: '', generationId: 1, memberId: ids[0]!, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.INVALID_GROUP_ID,
    );
  });

  it('holds a JoinGroup past the session timeout, up to the rebalance timeout', async () => {
    const c = await started();
    const { ids, leader } = await formGroup(c, 2);
    const follower = ids.find((id) => id !== leader)!;
    const rejoin = track(c.joinGroup(joinReq({ memberId: leader, protocols: [{ name: 'range', metadata: meta('sub-0') }] }), 7, ctx('x')));
    // The follower goes quiet; its session ends but the leader's held join is not affected.
    await vi.advanceTimersByTimeAsync(SESSION * 2);
    const r = await rejoin.p;
    expect(r).toMatchObject({ errorCode: 0, generationId: 2, leader });
    expect((await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: follower, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
  });
});

describe('leaving', () => {
  it('removes a leaving member and rebalances the rest', async () => {
    const c = await started();
    const { ids, leader } = await formGroup(c, 2);
    const stays = ids.find((id) => id !== leader)!;
    const res = await c.leaveGroup({ groupId: GROUP, members: [{ memberId: leader, groupInstanceId: null, reason: 'shutdown' }] });
    expect(res).toEqual({ errorCode: 0, members: [{ memberId: leader, groupInstanceId: null, errorCode: 0 }] });
    expect(await stateOf(c)).toBe('PreparingRebalance');
    expect(await storedState()).toMatchObject({ rebalancePending: true, generationId: 1 });
    expect((await storedState())!.members.map((m) => m.memberId)).toEqual([stays]);

    const hb = await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: stays, groupInstanceId: null });
    expect(hb.errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const r = await c.joinGroup(joinReq({ memberId: stays }), 7, ctx('b'));
    expect(r).toMatchObject({ errorCode: 0, generationId: 2, leader: stays });
  });

  it('empties the group when the last member leaves and stores the empty generation', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 1);
    await c.leaveGroup({ groupId: GROUP, members: [{ memberId: ids[0]!, groupInstanceId: null }] });
    expect(await stateOf(c)).toBe('Empty');
    await vi.advanceTimersByTimeAsync(0);
    expect(await storedState()).toMatchObject({ generationId: 2, protocolName: null, members: [], rebalancePending: false });
  });

  it('answers LeaveGroup per member, and with the member error at the top level before v3', async () => {
    const c = await started();
    await formGroup(c, 1);
    const v3 = await c.leaveGroup({ groupId: GROUP, members: [{ memberId: 'ghost', groupInstanceId: null }] });
    expect(v3).toEqual({ errorCode: 0, members: [{ memberId: 'ghost', groupInstanceId: null, errorCode: ErrorCode.UNKNOWN_MEMBER_ID }] });
    const v1 = await c.leaveGroup({ groupId: GROUP, members: [{ memberId: 'ghost', groupInstanceId: null }] }, 1);
    expect(v1.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    const unknownGroup = await c.leaveGroup({ groupId: 'nope', members: [{ memberId: 'm', groupInstanceId: null }] });
    expect(unknownGroup.members[0]!.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((await c.leaveGroup({ groupId: '', members: [] })).errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
  });

  it('lets a pending member leave, so the join phase need not wait for it', async () => {
    const c = await started();
    const { ids, leader } = await formGroup(c, 1);
    const pending = await requireId(c, 'late');
    const rejoin = track(c.joinGroup(joinReq({ memberId: leader, protocols: [{ name: 'range', metadata: meta('sub-0') }] }), 7, ctx('x')));
    await vi.advanceTimersByTimeAsync(0);
    expect(rejoin.settled()).toBe(false); // waits for the pending member
    await c.leaveGroup({ groupId: GROUP, members: [{ memberId: pending, groupInstanceId: null }] });
    expect((await rejoin.p).generationId).toBe(2);
    expect(ids).toEqual([leader]);
  });
});

describe('offset commits', () => {
  const commit = (c: GroupCoordinator, generation: number, memberId: string, offsets: [string, number, bigint][], groupId = GROUP) =>
    c.commitOffsets({
      groupId,
      generationIdOrMemberEpoch: generation,
      memberId,
      groupInstanceId: null,
      topics: [...new Set(offsets.map(([t]) => t))].map((name) => ({
        name,
        partitions: offsets
          .filter(([t]) => t === name)
          .map(([, partitionIndex, committedOffset]) => ({ partitionIndex, committedOffset, committedLeaderEpoch: 4, committedMetadata: `m${partitionIndex}` })),
      })),
    });
  const errors = (r: Awaited<ReturnType<GroupCoordinator['commitOffsets']>>) => r.topics.flatMap((t) => t.partitions.map((p) => p.errorCode));

  it('rejects a commit from a stale generation with ILLEGAL_GENERATION', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 2);
    expect(errors(await commit(c, 0, ids[0]!, [['orders', 0, 5n]]))).toEqual([ErrorCode.ILLEGAL_GENERATION]);
    expect(errors(await commit(c, 1, 'ghost', [['orders', 0, 5n]]))).toEqual([ErrorCode.UNKNOWN_MEMBER_ID]);
    expect(errors(await commit(c, -1, '', [['orders', 0, 5n]]))).toEqual([ErrorCode.UNKNOWN_MEMBER_ID]);
    expect(errors(await commit(c, 1, ids[0]!, [['orders', 0, 5n]]))).toEqual([ErrorCode.NONE]);
    expect(errors(await commit(c, 3, 'x', [['orders', 0, 5n]], 'never-seen'))).toEqual([ErrorCode.ILLEGAL_GENERATION]);
  });

  it('accepts generation -1 with an empty member id for a group without members (manual assignment)', async () => {
    const c = await started();
    const r = await commit(c, -1, '', [['orders', 0, 42n], ['orders', 1, 7n], ['payments', 3, 9_007_199_254_740_993n]]);
    expect(errors(r)).toEqual([0, 0, 0]);
    expect(await stateOf(c)).toBe('Empty');
    expect(await c.listGroups()).toEqual([{ groupId: GROUP, protocolType: '', groupState: 'Empty' }]);

    const stored = JSON.parse((await store.get(offsetKey(GROUP, 'payments', 3)))!.value.toString());
    expect(stored).toMatchObject({ offset: '9007199254740993', leaderEpoch: 4, metadata: 'm3' });
    expect(typeof stored.commitTimestamp).toBe('number');

    // While the group has members only they may commit; once it is Empty again, anyone may.
    const { ids } = await formGroup(c, 1);
    expect(errors(await commit(c, -1, '', [['orders', 0, 43n]]))).toEqual([ErrorCode.UNKNOWN_MEMBER_ID]);
    await c.leaveGroup({ groupId: GROUP, members: [{ memberId: ids[0]!, groupInstanceId: null }] });
    expect(await stateOf(c)).toBe('Empty');
    const again = await commit(c, -1, '', [['orders', 0, 43n]]);
    expect(errors(again)).toEqual([0]);
    const f = await c.fetchOffsets({ groupId: GROUP, topics: [{ name: 'orders', partitionIndexes: [0] }] });
    expect(f.topics[0]!.partitions[0]!.committedOffset).toBe(43n);
  });

  it('answers REBALANCE_IN_PROGRESS to a commit while the group awaits its assignment', async () => {
    const c = await started();
    const a = await requireId(c, 'a');
    const j = c.joinGroup(joinReq({ memberId: a }), 5, ctx('a'));
    await vi.advanceTimersByTimeAsync(DELAY);
    await j;
    expect(errors(await commit(c, 1, a, [['orders', 0, 1n]]))).toEqual([ErrorCode.REBALANCE_IN_PROGRESS]);
  });

  it('still accepts commits from current members while a rebalance is being prepared', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 2);
    await c.leaveGroup({ groupId: GROUP, members: [{ memberId: ids[1]!, groupInstanceId: null }] });
    expect(await stateOf(c)).toBe('PreparingRebalance');
    expect(errors(await commit(c, 1, ids[0]!, [['orders', 0, 10n]]))).toEqual([0]);
  });

  it('writes every partition of a request in one transaction before answering', async () => {
    const c = await started();
    const txn = vi.spyOn(store, 'txn');
    const r = await commit(c, -1, '', [['orders', 0, 1n], ['orders', 1, 2n], ['payments', 0, 3n], ['orders', 0, 4n]]);
    expect(errors(r)).toEqual([0, 0, 0, 0]);
    expect(txn).toHaveBeenCalledTimes(1);
    const ops = txn.mock.calls[0]![1];
    expect(ops.map((o) => (o as { key: string }).key).sort()).toEqual(
      [offsetKey(GROUP, 'orders', 0), offsetKey(GROUP, 'orders', 1), offsetKey(GROUP, 'payments', 0)].sort(),
    );
    const f = await c.fetchOffsets({ groupId: GROUP, topics: [{ name: 'orders', partitionIndexes: [0] }] });
    expect(f.topics[0]!.partitions[0]!.committedOffset).toBe(4n); // the last occurrence wins
  });

  it('reports a failed store write as COORDINATOR_NOT_AVAILABLE and keeps the previous offset', async () => {
    const c = await started();
    await commit(c, -1, '', [['orders', 0, 1n]]);
    vi.spyOn(store, 'txn').mockRejectedValueOnce(new Error('etcd down'));
    expect(errors(await commit(c, -1, '', [['orders', 0, 2n], ['orders', 1, 2n]]))).toEqual([
      ErrorCode.COORDINATOR_NOT_AVAILABLE,
      ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ]);
    const f = await c.fetchOffsets({ groupId: GROUP, topics: null });
    expect(f.topics).toEqual([
      { name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: 4, metadata: 'm0', errorCode: 0 }] },
    ]);
  });

  it('rejects commit metadata above the size limit, partition by partition', async () => {
    const c = await started({ maxOffsetMetadataLength: 8 });
    const r = await c.commitOffsets({
      groupId: GROUP,
      generationIdOrMemberEpoch: -1,
      memberId: '',
      groupInstanceId: null,
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: 'x'.repeat(9) },
            { partitionIndex: 1, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: null },
          ],
        },
      ],
    });
    expect(errors(r)).toEqual([ErrorCode.OFFSET_METADATA_TOO_LARGE, 0]);
    const f = await c.fetchOffsets({ groupId: GROUP, topics: [{ name: 'orders', partitionIndexes: [0, 1] }] });
    expect(f.topics[0]!.partitions.map((p) => [p.committedOffset, p.metadata, p.committedLeaderEpoch])).toEqual([
      [-1n, '', -1],
      [1n, '', -1],
    ]);
  });
});

describe('offset fetch', () => {
  it('returns every committed offset for null topics and -1 for partitions never committed', async () => {
    const c = await started();
    await c.commitOffsets({
      groupId: GROUP,
      generationIdOrMemberEpoch: -1,
      memberId: '',
      groupInstanceId: null,
      topics: [
        { name: 'b-topic', partitions: [{ partitionIndex: 2, committedOffset: 20n, committedLeaderEpoch: 1, committedMetadata: 'meta' }] },
        {
          name: 'a-topic',
          partitions: [
            { partitionIndex: 1, committedOffset: 11n, committedLeaderEpoch: -1, committedMetadata: '' },
            { partitionIndex: 0, committedOffset: 10n, committedLeaderEpoch: -1, committedMetadata: '' },
          ],
        },
      ],
    });
    const all = await c.fetchOffsets({ groupId: GROUP, topics: null });
    expect(all.errorCode).toBe(0);
    expect(all.topics.map((t) => [t.name, t.partitions.map((p) => [p.partitionIndex, p.committedOffset])])).toEqual([
      ['a-topic', [[0, 10n], [1, 11n]]],
      ['b-topic', [[2, 20n]]],
    ]);

    const some = await c.fetchOffsets({ groupId: GROUP, topics: [{ name: 'b-topic', partitionIndexes: [2, 3] }, { name: 'zzz', partitionIndexes: [0] }] });
    expect(some.topics).toEqual([
      {
        name: 'b-topic',
        partitions: [
          { partitionIndex: 2, committedOffset: 20n, committedLeaderEpoch: 1, metadata: 'meta', errorCode: 0 },
          { partitionIndex: 3, committedOffset: -1n, committedLeaderEpoch: -1, metadata: '', errorCode: 0 },
        ],
      },
      { name: 'zzz', partitions: [{ partitionIndex: 0, committedOffset: -1n, committedLeaderEpoch: -1, metadata: '', errorCode: 0 }] },
    ]);

    const unknownGroup = await c.fetchOffsets({ groupId: 'unknown', topics: [{ name: 'x', partitionIndexes: [0] }] });
    expect(unknownGroup.topics[0]!.partitions[0]).toMatchObject({ committedOffset: -1n, errorCode: 0 });
    expect((await c.fetchOffsets({ groupId: 'unknown', topics: null })).topics).toEqual([]);
  });
});

describe('persistence', () => {
  it('keeps offsets and group state across a new coordinator on the same store', async () => {
    const c1 = await started();
    const { ids, leader } = await formGroup(c1, 2);
    await c1.commitOffsets({
      groupId: GROUP,
      generationIdOrMemberEpoch: 1,
      memberId: ids[1]!,
      groupInstanceId: null,
      topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: 99n, committedLeaderEpoch: 3, committedMetadata: 'ok' }] }],
    });
    await c1.commitOffsets({
      groupId: 'manual/group with spaces',
      generationIdOrMemberEpoch: -1,
      memberId: '',
      groupInstanceId: null,
      topics: [{ name: 'weird/topic', partitions: [{ partitionIndex: 7, committedOffset: 5n, committedLeaderEpoch: -1, committedMetadata: null }] }],
    });
    await c1.close();

    const c2 = coordinator();
    const early = await c2.fetchOffsets({ groupId: GROUP, topics: null });
    expect(early.errorCode).toBe(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS);
    expect((await c2.joinGroup(joinReq(), 5, ctx('x'))).errorCode).toBe(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS);
    await c2.loadGroups();

    const f = await c2.fetchOffsets({ groupId: GROUP, topics: null });
    expect(f.topics).toEqual([
      { name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: 99n, committedLeaderEpoch: 3, metadata: 'ok', errorCode: 0 }] },
    ]);
    const manual = await c2.fetchOffsets({ groupId: 'manual/group with spaces', topics: null });
    expect(manual.topics).toEqual([
      { name: 'weird/topic', partitions: [{ partitionIndex: 7, committedOffset: 5n, committedLeaderEpoch: -1, metadata: '', errorCode: 0 }] },
    ]);

    const [d] = await c2.describeGroups([GROUP]);
    expect(d).toMatchObject({ groupState: 'Stable', protocolType: 'consumer', protocolData: 'range' });
    expect(d!.members.map((m) => [m.memberId, m.memberAssignment.toString(), m.memberMetadata.toString()])).toEqual(
      ids.map((id, i) => [id, `assignment-of-${id}`, `sub-${i}`]),
    );
    expect((await c2.heartbeat({ groupId: GROUP, generationId: 1, memberId: ids[1]!, groupInstanceId: null })).errorCode).toBe(0);
    expect((await c2.syncGroup(syncReq(ids[1]!, 1), 5)).assignment).toEqual(assignmentFor(ids[1]!));

    // The leader rejoining on the new coordinator starts generation 2 from where the old one stopped.
    const rejoin = c2.joinGroup(joinReq({ memberId: leader, protocols: [{ name: 'range', metadata: meta('sub-0') }] }), 7, ctx('a'));
    const rejoin2 = c2.joinGroup(joinReq({ memberId: ids[1]!, protocols: [{ name: 'range', metadata: meta('sub-1') }] }), 7, ctx('b'));
    expect((await Promise.all([rejoin, rejoin2])).map((r) => r.generationId)).toEqual([2, 2]);
  });

  it('expires loaded members that never heartbeat to the new coordinator', async () => {
    const c1 = await started();
    await formGroup(c1, 2);
    await c1.close();
    const c2 = await started();
    await vi.advanceTimersByTimeAsync(SESSION + 1);
    expect(await stateOf(c2)).toBe('Empty');
  });

  it('restarts a rebalance that was pending when the group was stored', async () => {
    const c1 = await started();
    const { ids } = await formGroup(c1, 2);
    await c1.leaveGroup({ groupId: GROUP, members: [{ memberId: ids[0]!, groupInstanceId: null }] });
    await c1.close();
    const c2 = await started();
    expect(await stateOf(c2)).toBe('PreparingRebalance');
    expect((await c2.heartbeat({ groupId: GROUP, generationId: 1, memberId: ids[1]!, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.REBALANCE_IN_PROGRESS,
    );
    const r = await c2.joinGroup(joinReq({ memberId: ids[1]! }), 7, ctx('b'));
    expect(r).toMatchObject({ errorCode: 0, generationId: 2, leader: ids[1] });
  });

  it('answers held requests NOT_COORDINATOR on close and every later request too', async () => {
    const c = await started();
    const a = await requireId(c, 'a');
    const held = c.joinGroup(joinReq({ memberId: a }), 5, ctx('a'));
    await c.close();
    expect((await held).errorCode).toBe(ErrorCode.NOT_COORDINATOR);
    expect((await c.heartbeat({ groupId: GROUP, generationId: 1, memberId: a, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.NOT_COORDINATOR,
    );
  });
});

describe('describe, list and delete', () => {
  it('describes an unknown group as Dead without an error', async () => {
    const c = await started();
    expect(await c.describeGroups(['nobody'])).toEqual([
      { errorCode: 0, groupId: 'nobody', groupState: 'Dead', protocolType: '', protocolData: '', members: [] },
    ]);
  });

  it('shows members without metadata while a group rebalances', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 2);
    await c.leaveGroup({ groupId: GROUP, members: [{ memberId: ids[1]!, groupInstanceId: null }] });
    const [d] = await c.describeGroups([GROUP]);
    expect(d).toMatchObject({ groupState: 'PreparingRebalance', protocolType: 'consumer', protocolData: '' });
    expect(d!.members).toEqual([
      { memberId: ids[0], groupInstanceId: null, clientId: 'client-0', clientHost: '/10.0.0.8', memberMetadata: Buffer.alloc(0), memberAssignment: Buffer.alloc(0) },
    ]);
  });

  it('lists groups, filtered by state', async () => {
    const c = await started();
    await formGroup(c, 1);
    await c.commitOffsets({
      groupId: 'manual',
      generationIdOrMemberEpoch: -1,
      memberId: '',
      groupInstanceId: null,
      topics: [{ name: 't', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: null }] }],
    });
    const byId = (a: { groupId: string }, b: { groupId: string }) => a.groupId.localeCompare(b.groupId);
    expect((await c.listGroups()).sort(byId)).toEqual([
      { groupId: 'manual', protocolType: '', groupState: 'Empty' },
      { groupId: GROUP, protocolType: 'consumer', groupState: 'Stable' },
    ]);
    expect(await c.listGroups(['Stable'])).toEqual([{ groupId: GROUP, protocolType: 'consumer', groupState: 'Stable' }]);
    expect(await c.listGroups(['empty'])).toEqual([{ groupId: 'manual', protocolType: '', groupState: 'Empty' }]);
    expect(await c.listGroups(['Dead'])).toEqual([]);
    expect((await c.listGroups([])).length).toBe(2);
  });

  it('deletes only empty groups, with their offsets and state', async () => {
    const c = await started();
    const { ids } = await formGroup(c, 1);
    await c.commitOffsets({
      groupId: GROUP,
      generationIdOrMemberEpoch: 1,
      memberId: ids[0]!,
      groupInstanceId: null,
      topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: 5n, committedLeaderEpoch: -1, committedMetadata: null }] }],
    });
    await c.commitOffsets({
      groupId: 'other',
      generationIdOrMemberEpoch: -1,
      memberId: '',
      groupInstanceId: null,
      topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: null }] }],
    });

    expect(await c.deleteGroups([GROUP, 'missing'])).toEqual([
      { groupId: GROUP, errorCode: ErrorCode.NON_EMPTY_GROUP },
      { groupId: 'missing', errorCode: ErrorCode.GROUP_ID_NOT_FOUND },
    ]);

    await c.leaveGroup({ groupId: GROUP, members: [{ memberId: ids[0]!, groupInstanceId: null }] });
    expect(await stateOf(c)).toBe('Empty');
    expect(store.keys().filter((k) => k.includes(GROUP))).toHaveLength(2);

    expect(await c.deleteGroups([GROUP, GROUP])).toEqual([{ groupId: GROUP, errorCode: ErrorCode.NONE }]);
    expect(store.keys().filter((k) => k.includes(GROUP))).toEqual([]);
    expect(store.keys()).toEqual([offsetKey('other', 'orders', 0)]);
    expect(await stateOf(c)).toBe('Dead');
    const f = await c.fetchOffsets({ groupId: GROUP, topics: [{ name: 'orders', partitionIndexes: [0] }] });
    expect(f.topics[0]!.partitions[0]!.committedOffset).toBe(-1n);
    expect(await c.deleteGroups([GROUP])).toEqual([{ groupId: GROUP, errorCode: ErrorCode.GROUP_ID_NOT_FOUND }]);

    const c2 = await started();
    expect((await c2.listGroups()).map((g) => g.groupId)).toEqual(['other']);
  });
});

describe('input validation', () => {
  it('answers INVALID_GROUP_ID for an empty group id in the membership APIs', async () => {
    const c = await started();
    expect((await c.joinGroup(joinReq({ groupId: '' }), 5, ctx('x'))).errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
    expect((await c.syncGroup(syncReq('m', 1, { groupId: '' }), 5)).errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
  });

  it('answers INVALID_SESSION_TIMEOUT outside the configured bounds', async () => {
    const c = await started({ minSessionTimeoutMs: 6000, maxSessionTimeoutMs: 30_000 });
    for (const sessionTimeoutMs of [5999, 30_001, Number.NaN]) {
      const r = await c.joinGroup(joinReq({ sessionTimeoutMs }), 5, ctx('x'));
      expect(errorName(r.errorCode)).toBe('INVALID_SESSION_TIMEOUT');
    }
    expect(await c.listGroups()).toEqual([]);
  });

  it('never throws, nor fails inside, on arbitrary input', async () => {
    const failures: string[] = [];
    const c = await started({ log: pino({ level: 'error' }, { write: (line: string) => void failures.push(line) }) });
    const anything = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant(undefined), fc.boolean());
    const req = fc.record({
      groupId: fc.oneof(fc.constantFrom(GROUP, '', 'g2'), anything),
      memberId: fc.oneof(fc.constantFrom('', 'm'), anything),
      groupInstanceId: fc.oneof(fc.constant(null), fc.constantFrom('i1', '')),
      sessionTimeoutMs: fc.oneof(fc.integer(), fc.constant(SESSION)),
      rebalanceTimeoutMs: fc.integer(),
      generationId: fc.integer({ min: -2, max: 3 }),
      protocolType: fc.oneof(fc.constant('consumer'), anything),
      protocols: fc.oneof(fc.constant(null), fc.array(fc.record({ name: fc.oneof(fc.constantFrom('range', 'rr'), anything), metadata: fc.constant(Buffer.from('x')) }))),
      version: fc.integer({ min: -1, max: 10 }),
    });
    const held: Promise<unknown>[] = [];
    await fc.assert(
      fc.asyncProperty(req, async (r) => {
        // Deliberately ill-typed: whatever a broken decoder or client could hand over.
        const loose = <T,>(v: unknown) => v as T;
        const any = r as unknown as Record<string, string>;
        held.push(c.joinGroup(loose({ ...any }), r.version, ctx('fuzz')));
        held.push(c.syncGroup(loose({ ...any, assignments: null }), r.version));
        const results = await Promise.all([
          c.heartbeat(loose({ ...any })),
          c.leaveGroup(loose({ groupId: any.groupId, members: [any, null] })),
          c.commitOffsets(
            loose({
              ...any,
              generationIdOrMemberEpoch: r.generationId,
              topics: [{ name: any.memberId, partitions: [{ partitionIndex: r.generationId, committedOffset: 1n, committedLeaderEpoch: 0, committedMetadata: null }] }],
            }),
          ),
          c.fetchOffsets(loose({ groupId: any.groupId, topics: null })),
          c.describeGroups([loose(any.groupId)]),
          c.listGroups([loose(any.memberId)]),
        ]);
        expect(results).toHaveLength(6);
      }),
      { numRuns: 200 },
    );
    await vi.advanceTimersByTimeAsync(REBALANCE * 2);
    await c.close();
    for (const r of await Promise.all(held)) expect(typeof (r as { errorCode: number }).errorCode).toBe('number');
    expect(failures).toEqual([]);
  });
});

describe('error table', () => {
  it('names Kafka error codes', () => {
    expect(ErrorCode.MEMBER_ID_REQUIRED).toBe(79);
    expect(ErrorCode.FENCED_INSTANCE_ID).toBe(82);
    expect(errorName(-1)).toBe('UNKNOWN_SERVER_ERROR');
    expect(errorName(69)).toBe('GROUP_ID_NOT_FOUND');
    expect(errorName(9999)).toBe('UNKNOWN_ERROR_CODE_9999');
    const codes = Object.values(ErrorCode);
    expect(new Set(codes).size).toBe(codes.length);
  });
});
