// The classic Kafka group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
// OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups) with Kafka's
// GroupCoordinator semantics, transport-free. Committed offsets and group metadata are
// persisted through the MetaStore and kept in memory, so reads never touch the store.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Compare, MetaStore, Op } from '../meta/meta-store.js';
import { ErrorCode } from '../protocol/errors.js';
import {
  ClassicGroup,
  EMPTY_BYTES,
  GroupMember,
  joinError,
  syncError,
  type CommittedOffset,
  type JoinOp,
  type JoinResult,
  type Protocol,
  type SyncResult,
} from './group.js';

export type { GroupState } from './group.js';

export interface GroupCoordinatorOptions {
  meta: MetaStore;
  log: Logger;
  now?: () => number;
  /** group.initial.rebalance.delay.ms. */
  initialRebalanceDelayMs?: number;
  /** group.min.session.timeout.ms. */
  minSessionTimeoutMs?: number;
  /** group.max.session.timeout.ms. */
  maxSessionTimeoutMs?: number;
  /** offset.metadata.max.bytes: longer commit metadata gets OFFSET_METADATA_TOO_LARGE. */
  maxOffsetMetadataLength?: number;
  /** Loads only the groups this says are ours (a coordinator slot in cluster mode). */
  owns?: (groupId: string) => boolean;
  /**
   * Compares every store write must pass (cluster mode: the slot's lock is still the one
   * this coordinator took). A coordinator whose lease expired behind a partition can then
   * never overwrite what the slot's next owner stored.
   */
  fence?: Compare[];
  /** Called once when a write fails its fence: this coordinator no longer owns its groups. */
  onFenced?: () => void;
}

/** A store write failed the fence: another coordinator owns the groups now. */
export class CoordinatorFencedError extends Error {
  constructor() {
    super('group coordinator fenced: the slot lock changed hands');
    this.name = 'CoordinatorFencedError';
  }
}

export interface RequestContext {
  clientId: string;
  clientHost: string;
}

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
  reason?: string | null;
}

export interface JoinGroupResponse {
  errorCode: number;
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leader: string;
  skipAssignment: boolean;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
}

export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string | null;
  protocolName: string | null;
  assignments: { memberId: string; assignment: Buffer }[];
}

export interface SyncGroupResponse {
  errorCode: number;
  protocolType: string | null;
  protocolName: string | null;
  assignment: Buffer;
}

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

export interface LeaveGroupRequest {
  groupId: string;
  members: { memberId: string; groupInstanceId: string | null; reason?: string | null }[];
}

export interface LeaveGroupResponse {
  errorCode: number;
  members: { memberId: string; groupInstanceId: string | null; errorCode: number }[];
}

export interface OffsetCommitRequest {
  groupId: string;
  generationIdOrMemberEpoch: number;
  memberId: string;
  groupInstanceId: string | null;
  topics: {
    name: string;
    partitions: {
      partitionIndex: number;
      committedOffset: bigint;
      committedLeaderEpoch: number;
      committedMetadata: string | null;
    }[];
  }[];
}

export interface OffsetCommitResponse {
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

export interface OffsetFetchRequest {
  groupId: string;
  /** null = every committed offset of the group. */
  topics: { name: string; partitionIndexes: number[] }[] | null;
}

export interface OffsetFetchResponse {
  errorCode: number;
  topics: {
    name: string;
    partitions: {
      partitionIndex: number;
      committedOffset: bigint;
      committedLeaderEpoch: number;
      metadata: string | null;
      errorCode: number;
    }[];
  }[];
}

export interface DescribedGroup {
  errorCode: number;
  groupId: string;
  groupState: string;
  protocolType: string;
  protocolData: string;
  members: {
    memberId: string;
    groupInstanceId: string | null;
    clientId: string;
    clientHost: string;
    memberMetadata: Buffer;
    memberAssignment: Buffer;
  }[];
}

export interface ListedGroup {
  groupId: string;
  protocolType: string;
  groupState: string;
}

/** Every key of a group lives under `${GROUPS_PREFIX}${encodeURIComponent(groupId)}/`. */
export const GROUPS_PREFIX = '/skiff/groups/';

export function groupPrefix(groupId: string): string {
  return `${GROUPS_PREFIX}${encodeURIComponent(groupId)}/`;
}

export function groupStateKey(groupId: string): string {
  return `${groupPrefix(groupId)}state`;
}

export function offsetKey(groupId: string, topic: string, partition: number): string {
  return `${groupPrefix(groupId)}offsets/${topic}/${partition}`;
}

/** The JSON stored at offsetKey(). `offset` is an int64 as a decimal string. */
export interface StoredOffset {
  offset: string;
  leaderEpoch: number;
  metadata: string;
  commitTimestamp: number;
}

/** The JSON stored at groupStateKey(); byte fields are base64. */
export interface StoredGroup {
  version: 1;
  protocolType: string | null;
  generationId: number;
  protocolName: string | null;
  leader: string | null;
  stateTimestamp: number;
  /** Written mid-rebalance (a leave or an expiry): the loading coordinator starts a rebalance. */
  rebalancePending: boolean;
  members: {
    memberId: string;
    groupInstanceId: string | null;
    clientId: string;
    clientHost: string;
    rebalanceTimeoutMs: number;
    sessionTimeoutMs: number;
    /** Metadata for the selected protocol. */
    metadata: string;
    /** Every protocol the member supports, in its order of preference. */
    protocols: { name: string; metadata: string }[];
    assignment: string;
  }[];
}

/** Kafka's GroupCoordinator.NewMemberJoinTimeoutMs: a new member's JoinGroup is held at most this long. */
/** Operations per MetaStore transaction (etcd's default --max-txn-ops). */
const TXN_MAX_OPS = 128;

export const NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000;

/** setTimeout's largest delay; larger ones would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Status = 'unloaded' | 'loading' | 'active' | 'closed';

type Timer = ReturnType<typeof setTimeout>;

export class GroupCoordinator {
  private readonly meta: MetaStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly initialRebalanceDelayMs: number;
  private readonly minSessionTimeoutMs: number;
  private readonly maxSessionTimeoutMs: number;
  private readonly maxOffsetMetadataLength: number;

  private readonly groups = new Map<string, ClassicGroup>();
  /** Store writes of one group id run one after another, in the order they were decided. */
  private readonly writeChains = new Map<string, Promise<void>>();
  /** Offset commits in flight per group object (such a group is never dropped as defunct). */
  private readonly inflightCommits = new WeakMap<ClassicGroup, number>();
  private status: Status = 'unloaded';

  constructor(opts: GroupCoordinatorOptions) {
    this.meta = opts.meta;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.initialRebalanceDelayMs = opts.initialRebalanceDelayMs ?? 3000;
    this.minSessionTimeoutMs = opts.minSessionTimeoutMs ?? 6000;
    this.maxSessionTimeoutMs = opts.maxSessionTimeoutMs ?? 1_800_000;
    this.maxOffsetMetadataLength = opts.maxOffsetMetadataLength ?? 4096;
    this.owns = opts.owns;
    this.fence = opts.fence ?? [];
    this.onFenced = opts.onFenced;
  }

  private readonly owns?: (groupId: string) => boolean;
  private readonly fence: Compare[];
  private readonly onFenced?: () => void;
  private fenced = false;

  // ---------------------------------------------------------------- loading and closing

  /**
   * Loads every group's offsets and metadata from the store. Until it has finished, every
   * request is answered COORDINATOR_LOAD_IN_PROGRESS (or its per-API equivalent), so a
   * coordinator never serves offsets it has not read. Calling it again reloads from scratch.
   */
  async loadGroups(): Promise<void> {
    this.unloadAll();
    this.status = 'loading';
    const kvs = await this.meta.getPrefix(GROUPS_PREFIX);
    const states = new Map<string, StoredGroup>();
    const offsets = new Map<string, { topic: string; partition: number; value: CommittedOffset }[]>();
    for (const kv of kvs) {
      try {
        const rest = kv.key.slice(GROUPS_PREFIX.length);
        const slash = rest.indexOf('/');
        if (slash < 0) continue;
        const groupId = decodeURIComponent(rest.slice(0, slash));
        if (this.owns && !this.owns(groupId)) continue;
        const sub = rest.slice(slash + 1);
        if (sub === 'state') {
          states.set(groupId, JSON.parse(kv.value.toString('utf8')) as StoredGroup);
        } else if (sub.startsWith('offsets/')) {
          const tp = sub.slice('offsets/'.length);
          const cut = tp.lastIndexOf('/');
          const partition = Number(tp.slice(cut + 1));
          if (cut < 0 || !Number.isInteger(partition)) throw new Error('malformed offset key');
          const v = JSON.parse(kv.value.toString('utf8')) as Partial<StoredOffset> & { offset: string | number };
          const list = offsets.get(groupId) ?? [];
          list.push({
            topic: tp.slice(0, cut),
            partition,
            value: {
              offset: BigInt(v.offset),
              leaderEpoch: typeof v.leaderEpoch === 'number' ? v.leaderEpoch : -1,
              metadata: typeof v.metadata === 'string' ? v.metadata : '',
              commitTimestamp: typeof v.commitTimestamp === 'number' ? v.commitTimestamp : 0,
            },
          });
          offsets.set(groupId, list);
        }
      } catch (err) {
        this.log.warn({ err, key: kv.key }, 'skipping unreadable group record');
      }
    }

    const rebalance: ClassicGroup[] = [];
    for (const groupId of new Set([...states.keys(), ...offsets.keys()])) {
      let group = new ClassicGroup(groupId, this.now());
      const stored = states.get(groupId);
      if (stored) {
        try {
          if (this.restoreGroup(group, stored)) rebalance.push(group);
        } catch (err) {
          this.log.warn({ err, groupId }, 'group metadata unreadable; loading the group empty');
          this.unloadGroup(group);
          group = new ClassicGroup(groupId, this.now());
        }
        group.persisted = true;
      }
      for (const o of offsets.get(groupId) ?? []) group.setOffset(o.topic, o.partition, o.value);
      this.groups.set(groupId, group);
    }
    this.status = 'active';
    for (const group of rebalance) this.maybePrepareRebalance(group, 'a rebalance was pending when the group was stored');
    this.log.info({ groups: this.groups.size }, 'groups loaded');
  }

  /** Answers every held request NOT_COORDINATOR, stops every timer and waits for store writes. */
  async close(): Promise<void> {
    this.unloadAll();
    this.status = 'closed';
    await Promise.all([...this.writeChains.values()]);
  }

  private unloadAll(): void {
    for (const group of this.groups.values()) this.unloadGroup(group);
    this.groups.clear();
  }

  /** Kafka's onGroupUnloaded, plus every timer of the group. */
  private unloadGroup(group: ClassicGroup): void {
    clearTimer(group.joinTimer);
    clearTimer(group.syncTimer);
    group.joinTimer = group.syncTimer = null;
    group.joinOp = null;
    for (const t of group.pendingMembers.values()) clearTimer(t);
    group.pendingMembers.clear();
    for (const m of group.members.values()) {
      clearTimer(m.heartbeatTimer);
      m.heartbeatTimer = null;
      m.invokeJoin(joinError(m.memberId, ErrorCode.NOT_COORDINATOR));
      m.invokeSync(syncError(ErrorCode.NOT_COORDINATOR));
    }
    group.state = 'Dead';
  }

  private restoreGroup(group: ClassicGroup, s: StoredGroup): boolean {
    group.generationId = Number.isInteger(s.generationId) ? s.generationId : 0;
    group.protocolType = s.protocolType ?? null;
    group.protocolName = s.protocolName ?? null;
    if (typeof s.stateTimestamp === 'number') group.stateTimestamp = s.stateTimestamp;
    for (const sm of s.members ?? []) {
      const protocols: Protocol[] =
        Array.isArray(sm.protocols) && sm.protocols.length > 0
          ? sm.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata ?? '', 'base64') }))
          : [{ name: group.protocolName ?? '', metadata: Buffer.from(sm.metadata ?? '', 'base64') }];
      const member = new GroupMember(
        sm.memberId,
        sm.groupInstanceId ?? null,
        sm.clientId ?? '',
        sm.clientHost ?? '',
        // Kafka's client defaults stand in for values a foreign writer left out.
        positiveOr(sm.rebalanceTimeoutMs, 300_000),
        positiveOr(sm.sessionTimeoutMs, 45_000),
        group.protocolType ?? '',
        protocols,
      );
      member.assignment = Buffer.from(sm.assignment ?? '', 'base64');
      group.add(member, null);
    }
    if (s.leader && group.has(s.leader)) group.leaderId = s.leader;
    if (group.members.size === 0) return false;
    // Kafka loads a group with members as Stable and expects their heartbeats from now on.
    group.state = 'Stable';
    for (const m of group.members.values()) this.scheduleHeartbeat(group, m);
    return s.rebalancePending === true;
  }

  // ---------------------------------------------------------------- JoinGroup

  async joinGroup(req: JoinGroupRequest, version: number, ctx?: RequestContext): Promise<JoinGroupResponse> {
    const result = await this.held<JoinResult>(
      (cb) => this.handleJoinGroup(req, version, ctx ?? { clientId: '', clientHost: '' }, cb),
      () => joinError(req?.memberId ?? '', ErrorCode.UNKNOWN_SERVER_ERROR),
    );
    return {
      ...result,
      // Before v7 ProtocolName is not nullable: Kafka answers '' there.
      protocolName: version >= 7 ? result.protocolName : (result.protocolName ?? ''),
      skipAssignment: version >= 9 && result.skipAssignment,
    };
  }

  private handleJoinGroup(req: JoinGroupRequest, version: number, ctx: RequestContext, cb: (r: JoinResult) => void): void {
    const memberId = typeof req.memberId === 'string' ? req.memberId : '';
    const statusError = this.statusError(req.groupId, false);
    if (statusError !== null) return cb(joinError(memberId, statusError));
    const session = req.sessionTimeoutMs;
    if (!(session >= this.minSessionTimeoutMs && session <= this.maxSessionTimeoutMs)) {
      return cb(joinError(memberId, ErrorCode.INVALID_SESSION_TIMEOUT));
    }
    // v0 has no rebalance timeout: Kafka uses the session timeout.
    const rebalanceTimeoutMs = version === 0 || !(req.rebalanceTimeoutMs > 0) ? session : req.rebalanceTimeoutMs;
    const j: Join = {
      memberId,
      groupInstanceId: typeof req.groupInstanceId === 'string' ? req.groupInstanceId : null,
      sessionTimeoutMs: session,
      rebalanceTimeoutMs,
      protocolType: typeof req.protocolType === 'string' ? req.protocolType : '',
      protocols: normaliseProtocols(req.protocols),
      reason: req.reason ?? null,
      version,
      clientId: ctx.clientId ?? '',
      clientHost: ctx.clientHost ?? '',
    };

    const isUnknownMember = memberId === '';
    let group = this.groups.get(req.groupId);
    if (!group) {
      if (!isUnknownMember) return cb(joinError(memberId, ErrorCode.UNKNOWN_MEMBER_ID));
      group = new ClassicGroup(req.groupId, this.now());
      this.groups.set(req.groupId, group);
    }
    if (isUnknownMember) this.doNewMemberJoin(group, j, cb);
    else this.doCurrentMemberJoin(group, j, cb);
    if (group.is('PreparingRebalance')) this.tryCompleteJoin(group);
    this.dropIfDefunct(group);
  }

  private doNewMemberJoin(group: ClassicGroup, j: Join, cb: (r: JoinResult) => void): void {
    if (group.is('Dead')) return cb(joinError('', ErrorCode.COORDINATOR_NOT_AVAILABLE));
    const staticMemberId = group.currentStaticMemberId(j.groupInstanceId);
    const replacing = staticMemberId !== undefined ? group.members.get(staticMemberId) : undefined;
    const names = j.protocols.map((p) => p.name);
    if (!group.supportsProtocols(j.protocolType, names, replacing)) {
      return cb(joinError('', ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
    }
    const newMemberId = `${j.groupInstanceId ?? j.clientId}-${randomUUID()}`;
    if (j.groupInstanceId !== null) {
      // Static members never get MEMBER_ID_REQUIRED (KIP-345).
      if (staticMemberId === undefined) {
        this.addMemberAndRebalance(group, newMemberId, j, cb);
      } else {
        this.updateStaticMemberAndRebalance(group, staticMemberId, newMemberId, j, cb);
      }
    } else if (j.version >= 4) {
      // KIP-394: hand out an id and remember it until the member comes back with it.
      const timer = this.setTimer(j.sessionTimeoutMs, () => this.onPendingMemberExpired(group, newMemberId));
      group.pendingMembers.set(newMemberId, timer);
      this.log.debug({ groupId: group.groupId, memberId: newMemberId }, 'member id required');
      cb(joinError(newMemberId, ErrorCode.MEMBER_ID_REQUIRED));
    } else {
      this.addMemberAndRebalance(group, newMemberId, j, cb);
    }
  }

  private doCurrentMemberJoin(group: ClassicGroup, j: Join, cb: (r: JoinResult) => void): void {
    if (group.is('Dead')) return cb(joinError(j.memberId, ErrorCode.COORDINATOR_NOT_AVAILABLE));
    const existing = group.members.get(j.memberId);
    const names = j.protocols.map((p) => p.name);
    if (!group.supportsProtocols(j.protocolType, names, existing)) {
      return cb(joinError(j.memberId, ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
    }
    if (group.isPendingMember(j.memberId)) {
      // Pending ids are only ever given to dynamic members.
      if (j.groupInstanceId !== null) return cb(joinError(j.memberId, ErrorCode.UNKNOWN_MEMBER_ID));
      return this.addMemberAndRebalance(group, j.memberId, j, cb);
    }
    if (group.isStaticMemberFenced(j.groupInstanceId, j.memberId)) {
      return cb(joinError(j.memberId, ErrorCode.FENCED_INSTANCE_ID));
    }
    const instanceUnknown = j.groupInstanceId !== null && group.currentStaticMemberId(j.groupInstanceId) === undefined;
    if (!existing || instanceUnknown) return cb(joinError(j.memberId, ErrorCode.UNKNOWN_MEMBER_ID));

    switch (group.state) {
      case 'PreparingRebalance':
        this.updateMemberAndRebalance(group, existing, j, cb, 'member rejoined during a rebalance');
        return;
      case 'CompletingRebalance':
        if (existing.matches(j.protocols)) {
          // The member missed its JoinGroup answer: give it the current generation again.
          return cb(this.joinSuccess(group, existing, group.isLeader(existing.memberId)));
        }
        this.updateMemberAndRebalance(group, existing, j, cb, 'member changed its metadata');
        return;
      case 'Stable':
        if (group.isLeader(existing.memberId)) {
          // The leader rejoining forces a rebalance: it is how it reacts to topic metadata changes.
          this.updateMemberAndRebalance(group, existing, j, cb, 'leader rejoined');
        } else if (!existing.matches(j.protocols)) {
          this.updateMemberAndRebalance(group, existing, j, cb, 'member changed its metadata');
        } else {
          cb(this.joinSuccess(group, existing, false));
        }
        return;
      default:
        this.log.warn({ groupId: group.groupId, state: group.state }, 'join of a known member in an unexpected state');
        cb(joinError(j.memberId, ErrorCode.UNKNOWN_MEMBER_ID));
    }
  }

  private joinSuccess(group: ClassicGroup, member: GroupMember, withMembers: boolean): JoinResult {
    return {
      errorCode: ErrorCode.NONE,
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName: group.protocolName,
      leader: group.leaderId ?? '',
      skipAssignment: false,
      memberId: member.memberId,
      members: withMembers ? group.currentMemberMetadata() : [],
    };
  }

  private addMemberAndRebalance(group: ClassicGroup, memberId: string, j: Join, cb: (r: JoinResult) => void): void {
    clearTimer(group.pendingMembers.get(memberId) ?? null);
    const member = new GroupMember(
      memberId,
      j.groupInstanceId,
      j.clientId,
      j.clientHost,
      j.rebalanceTimeoutMs,
      j.sessionTimeoutMs,
      j.protocolType,
      j.protocols,
    );
    member.isNew = true;
    // Members arriving during the first join phase extend the initial delay.
    if (group.is('PreparingRebalance') && group.generationId === 0) group.newMemberAdded = true;
    group.add(member, cb);
    // A new member cannot heartbeat while its JoinGroup is held; it expires on this timeout instead.
    this.scheduleHeartbeat(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS);
    this.log.info({ groupId: group.groupId, memberId, groupInstanceId: j.groupInstanceId }, 'member joined');
    this.maybePrepareRebalance(group, `adding new member ${memberId}${j.reason ? ` (${j.reason})` : ''}`);
  }

  private updateMemberAndRebalance(
    group: ClassicGroup,
    member: GroupMember,
    j: Join,
    cb: (r: JoinResult) => void,
    reason: string,
  ): void {
    group.updateMember(member, j.protocols, j.rebalanceTimeoutMs, j.sessionTimeoutMs, cb);
    this.maybePrepareRebalance(group, `${reason}: ${member.memberId}${j.reason ? ` (${j.reason})` : ''}`);
  }

  private updateStaticMemberAndRebalance(
    group: ClassicGroup,
    oldMemberId: string,
    newMemberId: string,
    j: Join,
    cb: (r: JoinResult) => void,
  ): void {
    const instanceId = j.groupInstanceId!;
    const currentLeader = group.leaderId ?? '';
    const member = group.replaceStaticMember(instanceId, oldMemberId, newMemberId);
    const old = { protocols: member.protocols, rebalance: member.rebalanceTimeoutMs, session: member.sessionTimeoutMs };
    this.scheduleHeartbeat(group, member);
    group.updateMember(member, j.protocols, j.rebalanceTimeoutMs, j.sessionTimeoutMs, cb);
    this.log.info({ groupId: group.groupId, groupInstanceId: instanceId, oldMemberId, newMemberId }, 'static member replaced');

    switch (group.state) {
      case 'Stable': {
        if (group.selectProtocol() !== group.protocolName) {
          this.prepareRebalance(group, `static member ${instanceId} rejoined with a change of protocol`);
          return;
        }
        // Same protocol: no rebalance, the member keeps its assignment. Persist the new id first.
        const generation = group.generationId;
        void this.persistGroup(group).then((code) => {
          if (member.awaitingJoin !== cb) return; // answered meanwhile (fenced, removed, unloaded)
          if (!group.is('Stable') || group.generationId !== generation) return; // a rebalance will answer it
          if (code !== ErrorCode.NONE) {
            group.updateMember(member, old.protocols, old.rebalance, old.session, null);
            group.replaceStaticMember(instanceId, newMemberId, oldMemberId);
            this.scheduleHeartbeat(group, member);
            cb({ ...joinError('', code), generationId: group.generationId, protocolType: group.protocolType, protocolName: group.protocolName, leader: currentLeader });
            return;
          }
          const isLeader = group.isLeader(newMemberId);
          // KIP-814: a v9+ leader is told to skip the assignment. Older leaders get the old
          // leader id so that they think they are followers and do not reassign a stable group.
          const skip = isLeader && j.version >= 9;
          member.invokeJoin({
            errorCode: ErrorCode.NONE,
            generationId: group.generationId,
            protocolType: group.protocolType,
            protocolName: group.protocolName,
            leader: skip ? newMemberId : currentLeader,
            skipAssignment: skip,
            memberId: newMemberId,
            members: skip ? group.currentMemberMetadata() : [],
          });
          this.scheduleHeartbeat(group, member);
        });
        return;
      }
      case 'CompletingRebalance':
        // The leader may be assigning to the old id: start over.
        this.prepareRebalance(group, `static member ${instanceId} rejoined during CompletingRebalance`);
        return;
      case 'PreparingRebalance':
        return;
      default:
        this.log.error({ groupId: group.groupId, state: group.state }, 'static member in an empty group');
        member.invokeJoin(joinError(newMemberId, ErrorCode.UNKNOWN_SERVER_ERROR));
    }
  }

  // ---------------------------------------------------------------- rebalance machinery

  private maybePrepareRebalance(group: ClassicGroup, reason: string): void {
    if (group.canRebalance()) this.prepareRebalance(group, reason);
  }

  private prepareRebalance(group: ClassicGroup, reason: string): void {
    if (group.is('CompletingRebalance')) this.resetAndPropagateAssignmentError(group, ErrorCode.REBALANCE_IN_PROGRESS);
    clearTimer(group.syncTimer);
    group.syncTimer = null;
    const wasEmpty = group.is('Empty');
    const op: JoinOp = wasEmpty
      ? {
          initial: true,
          configuredDelayMs: this.initialRebalanceDelayMs,
          delayMs: this.initialRebalanceDelayMs,
          remainingMs: Math.max(group.rebalanceTimeoutMs() - this.initialRebalanceDelayMs, 0),
        }
      : { initial: false, configuredDelayMs: 0, delayMs: group.rebalanceTimeoutMs(), remainingMs: 0 };
    group.transitionTo('PreparingRebalance', this.now());
    this.log.info(
      { groupId: group.groupId, generationId: group.generationId, reason },
      'preparing to rebalance group',
    );
    this.scheduleJoin(group, op);
    this.tryCompleteJoin(group);
  }

  private scheduleJoin(group: ClassicGroup, op: JoinOp): void {
    clearTimer(group.joinTimer);
    group.joinOp = op;
    group.joinTimer = this.setTimer(op.delayMs, () => this.onJoinTimer(group, op));
  }

  /** Kafka's DelayedJoin / InitialDelayedJoin expiring. */
  private onJoinTimer(group: ClassicGroup, op: JoinOp): void {
    if (group.joinOp !== op) return;
    group.joinOp = null;
    group.joinTimer = null;
    if (op.initial && group.newMemberAdded && op.remainingMs !== 0) {
      group.newMemberAdded = false;
      this.scheduleJoin(group, {
        initial: true,
        configuredDelayMs: op.configuredDelayMs,
        delayMs: Math.min(op.configuredDelayMs, op.remainingMs),
        remainingMs: Math.max(op.remainingMs - op.delayMs, 0),
      });
      return;
    }
    this.onCompleteJoin(group);
  }

  /** Completes the join phase early once every member (and every pending member) has joined. */
  private tryCompleteJoin(group: ClassicGroup): void {
    const op = group.joinOp;
    if (!op || op.initial || !group.hasAllMembersJoined()) return;
    clearTimer(group.joinTimer);
    group.joinTimer = null;
    group.joinOp = null;
    this.onCompleteJoin(group);
  }

  private onCompleteJoin(group: ClassicGroup): void {
    for (const m of group.notYetRejoinedMembers()) {
      // Static members keep their place until their session expires.
      if (m.groupInstanceId !== null) continue;
      this.log.info({ groupId: group.groupId, memberId: m.memberId }, 'removing member that did not rejoin');
      this.removeMember(group, m.memberId);
    }
    if (group.is('Dead')) return;
    if (!this.maybeElectNewJoinedLeader(group) && group.members.size > 0) {
      // Nobody rejoined: wait another rebalance timeout for sessions to expire.
      this.log.error({ groupId: group.groupId }, 'could not complete rebalance because no members rejoined');
      this.scheduleJoin(group, { initial: false, configuredDelayMs: 0, delayMs: group.rebalanceTimeoutMs(), remainingMs: 0 });
      return;
    }
    group.initNextGeneration(this.now());
    if (group.is('Empty')) {
      this.log.info({ groupId: group.groupId, generationId: group.generationId }, 'group is now empty');
      void this.persistGroup(group);
      this.dropIfDefunct(group);
      return;
    }
    this.log.info(
      { groupId: group.groupId, generationId: group.generationId, members: group.members.size, protocol: group.protocolName },
      'group stabilized, awaiting sync',
    );
    for (const m of [...group.members.values()]) {
      m.invokeJoin(this.joinSuccess(group, m, group.isLeader(m.memberId)));
      this.scheduleHeartbeat(group, m);
      m.isNew = false;
      group.pendingSyncMembers.add(m.memberId);
    }
    this.schedulePendingSync(group);
  }

  private maybeElectNewJoinedLeader(group: ClassicGroup): boolean {
    if (group.leaderId === null) return false;
    if (group.members.get(group.leaderId)?.awaitingJoin) return true;
    for (const m of group.members.values()) {
      if (m.awaitingJoin) {
        group.leaderId = m.memberId;
        return true;
      }
    }
    return false;
  }

  /** Members that got their JoinGroup answer must send SyncGroup within the rebalance timeout. */
  private schedulePendingSync(group: ClassicGroup): void {
    clearTimer(group.syncTimer);
    const generation = group.generationId;
    group.syncTimer = this.setTimer(group.rebalanceTimeoutMs(), () => this.onPendingSyncExpired(group, generation));
  }

  private tryCompletePendingSync(group: ClassicGroup): void {
    if (group.syncTimer && group.pendingSyncMembers.size === 0) {
      clearTimer(group.syncTimer);
      group.syncTimer = null;
    }
  }

  private onPendingSyncExpired(group: ClassicGroup, generation: number): void {
    group.syncTimer = null;
    if (generation !== group.generationId) return;
    if (!group.is('CompletingRebalance') && !group.is('Stable')) return;
    if (group.pendingSyncMembers.size === 0) return;
    const missing = [...group.pendingSyncMembers];
    for (const id of missing) this.removeMember(group, id);
    this.prepareRebalance(group, `removing ${missing.join(', ')} on pending sync expiration`);
    this.persistMembershipChange(group);
  }

  private resetAndPropagateAssignmentError(group: ClassicGroup, errorCode: number): void {
    for (const m of group.members.values()) m.assignment = EMPTY_BYTES;
    this.propagateAssignment(group, errorCode);
  }

  private setAndPropagateAssignment(group: ClassicGroup, assignment: Map<string, Buffer>): void {
    for (const m of group.members.values()) m.assignment = assignment.get(m.memberId) ?? EMPTY_BYTES;
    this.propagateAssignment(group, ErrorCode.NONE);
  }

  private propagateAssignment(group: ClassicGroup, errorCode: number): void {
    const ok = errorCode === ErrorCode.NONE;
    for (const m of group.members.values()) {
      const answered = m.invokeSync({
        errorCode,
        protocolType: ok ? group.protocolType : null,
        protocolName: ok ? group.protocolName : null,
        assignment: m.assignment,
      });
      // Sessions that ran out while the member waited were ignored: start them afresh.
      if (answered) this.scheduleHeartbeat(group, m);
    }
  }

  // ---------------------------------------------------------------- membership timers

  private scheduleHeartbeat(group: ClassicGroup, member: GroupMember, timeoutMs = member.sessionTimeoutMs): void {
    clearTimer(member.heartbeatTimer);
    member.heartbeatTimer = this.setTimer(timeoutMs, () => this.onHeartbeatExpired(group, member));
  }

  private onHeartbeatExpired(group: ClassicGroup, member: GroupMember): void {
    member.heartbeatTimer = null;
    if (group.is('Dead') || group.members.get(member.memberId) !== member) return;
    // Members held in a join or sync phase are alive by definition (new members excepted).
    if (!member.isNew && (member.awaitingJoin || member.awaitingSync)) return;
    this.log.info({ groupId: group.groupId, memberId: member.memberId }, 'member session expired');
    this.removeMemberAndUpdateGroup(group, member, `member ${member.memberId} session expired`);
    this.persistMembershipChange(group);
  }

  private onPendingMemberExpired(group: ClassicGroup, memberId: string): void {
    if (!group.pendingMembers.has(memberId)) return;
    this.log.debug({ groupId: group.groupId, memberId }, 'pending member expired');
    group.pendingMembers.delete(memberId);
    if (group.is('PreparingRebalance')) this.tryCompleteJoin(group);
    this.dropIfDefunct(group);
  }

  private removeMember(group: ClassicGroup, memberId: string): GroupMember | undefined {
    clearTimer(group.pendingMembers.get(memberId) ?? null);
    const member = group.remove(memberId);
    if (member) {
      clearTimer(member.heartbeatTimer);
      member.heartbeatTimer = null;
    }
    return member;
  }

  private removeMemberAndUpdateGroup(group: ClassicGroup, member: GroupMember, reason: string): void {
    this.removeMember(group, member.memberId);
    switch (group.state) {
      case 'Stable':
      case 'CompletingRebalance':
        this.maybePrepareRebalance(group, reason);
        break;
      case 'PreparingRebalance':
        this.tryCompleteJoin(group);
        break;
      default:
        break;
    }
  }

  /** A leave or an expiry changed the members: store it unless the group just went Empty (already stored). */
  private persistMembershipChange(group: ClassicGroup): void {
    if (this.groups.get(group.groupId) !== group || group.is('Empty') || group.is('Dead')) return;
    void this.persistGroup(group);
  }

  // ---------------------------------------------------------------- SyncGroup

  async syncGroup(req: SyncGroupRequest, version: number): Promise<SyncGroupResponse> {
    void version; // KIP-559 fields are always filled; older versions simply do not encode them.
    return this.held<SyncResult>(
      (cb) => this.handleSyncGroup(req, cb),
      () => syncError(ErrorCode.UNKNOWN_SERVER_ERROR),
    );
  }

  private handleSyncGroup(req: SyncGroupRequest, cb: (r: SyncResult) => void): void {
    const statusError = this.statusError(req.groupId, false);
    if (statusError !== null) {
      // A loading coordinator has lost the rebalance: rejoin (older clients do not know LOAD_IN_PROGRESS here).
      return cb(syncError(statusError === ErrorCode.COORDINATOR_LOAD_IN_PROGRESS ? ErrorCode.REBALANCE_IN_PROGRESS : statusError));
    }
    const group = this.groups.get(req.groupId);
    if (!group) return cb(syncError(ErrorCode.UNKNOWN_MEMBER_ID));
    const groupInstanceId = req.groupInstanceId ?? null;
    if (group.is('Dead')) return cb(syncError(ErrorCode.COORDINATOR_NOT_AVAILABLE));
    const memberError = this.validateCurrentMember(group, req.memberId, groupInstanceId);
    if (memberError !== null) return cb(syncError(memberError));
    if (req.generationId !== group.generationId) return cb(syncError(ErrorCode.ILLEGAL_GENERATION));
    // KIP-559: protocol type and name, when sent, must be the group's.
    if (req.protocolType != null && req.protocolType !== group.protocolType) {
      return cb(syncError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
    }
    if (req.protocolName != null && req.protocolName !== group.protocolName) {
      return cb(syncError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
    }

    const member = group.members.get(req.memberId)!;
    switch (group.state) {
      case 'Empty':
        return cb(syncError(ErrorCode.UNKNOWN_MEMBER_ID));
      case 'PreparingRebalance':
        return cb(syncError(ErrorCode.REBALANCE_IN_PROGRESS));
      case 'CompletingRebalance': {
        if (member.awaitingSync) member.invokeSync(syncError(ErrorCode.REBALANCE_IN_PROGRESS)); // superseded retry
        member.awaitingSync = cb;
        group.pendingSyncMembers.delete(member.memberId);
        this.tryCompletePendingSync(group);
        if (group.isLeader(member.memberId)) this.onLeaderAssignment(group, req.assignments ?? []);
        return;
      }
      case 'Stable':
        group.pendingSyncMembers.delete(member.memberId);
        this.tryCompletePendingSync(group);
        cb({
          errorCode: ErrorCode.NONE,
          protocolType: group.protocolType,
          protocolName: group.protocolName,
          assignment: member.assignment,
        });
        this.scheduleHeartbeat(group, member);
        return;
      default:
        return cb(syncError(ErrorCode.COORDINATOR_NOT_AVAILABLE));
    }
  }

  private onLeaderAssignment(group: ClassicGroup, assignments: SyncGroupRequest['assignments']): void {
    const assignment = new Map<string, Buffer>();
    for (const a of assignments) {
      if (a && group.has(a.memberId)) assignment.set(a.memberId, Buffer.isBuffer(a.assignment) ? a.assignment : EMPTY_BYTES);
    }
    const missing = [...group.members.keys()].filter((id) => !assignment.has(id));
    if (missing.length > 0) {
      this.log.warn({ groupId: group.groupId, generationId: group.generationId, missing }, 'empty assignment for members');
    }
    this.log.info(
      { groupId: group.groupId, generationId: group.generationId, members: group.members.size },
      'assignment received from leader',
    );
    const generation = group.generationId;
    void this.persistGroup(group, assignment).then((code) => {
      // A member may have joined (or the group been unloaded) while the write was under way.
      if (!group.is('CompletingRebalance') || group.generationId !== generation) return;
      if (code !== ErrorCode.NONE) {
        this.resetAndPropagateAssignmentError(group, code);
        this.maybePrepareRebalance(group, 'storing the group assignment failed');
      } else {
        this.setAndPropagateAssignment(group, assignment);
        group.transitionTo('Stable', this.now());
        this.log.info({ groupId: group.groupId, generationId: generation }, 'group stable');
      }
    });
  }

  private validateCurrentMember(group: ClassicGroup, memberId: string, groupInstanceId: string | null): number | null {
    const current = group.currentStaticMemberId(groupInstanceId);
    if (current !== undefined && current !== memberId) return ErrorCode.FENCED_INSTANCE_ID;
    if (!group.has(memberId)) return ErrorCode.UNKNOWN_MEMBER_ID;
    return null;
  }

  // ---------------------------------------------------------------- Heartbeat

  async heartbeat(req: HeartbeatRequest): Promise<{ errorCode: number }> {
    try {
      return { errorCode: this.handleHeartbeat(req) };
    } catch (err) {
      this.log.error({ err, groupId: req?.groupId }, 'heartbeat failed');
      return { errorCode: ErrorCode.UNKNOWN_SERVER_ERROR };
    }
  }

  private handleHeartbeat(req: HeartbeatRequest): number {
    const statusError = this.statusError(req.groupId, false);
    // While loading, Kafka answers heartbeats blindly.
    if (statusError === ErrorCode.COORDINATOR_LOAD_IN_PROGRESS) return ErrorCode.NONE;
    if (statusError !== null) return statusError;
    const group = this.groups.get(req.groupId);
    if (!group) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (group.is('Dead')) return ErrorCode.COORDINATOR_NOT_AVAILABLE;
    if (group.isStaticMemberFenced(req.groupInstanceId ?? null, req.memberId)) return ErrorCode.FENCED_INSTANCE_ID;
    const member = group.members.get(req.memberId);
    if (!member) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (req.generationId !== group.generationId) return ErrorCode.ILLEGAL_GENERATION;
    switch (group.state) {
      case 'CompletingRebalance':
      case 'Stable':
        this.scheduleHeartbeat(group, member);
        return ErrorCode.NONE;
      case 'PreparingRebalance':
        this.scheduleHeartbeat(group, member);
        return ErrorCode.REBALANCE_IN_PROGRESS;
      default:
        return ErrorCode.UNKNOWN_MEMBER_ID;
    }
  }

  // ---------------------------------------------------------------- LeaveGroup

  /**
   * v0-2 carry one member id (pass it as members[0]); pass `version` and the top-level error
   * is then that member's error, as Kafka answers those versions.
   */
  async leaveGroup(req: LeaveGroupRequest, version = 3): Promise<LeaveGroupResponse> {
    let res: LeaveGroupResponse;
    try {
      res = this.handleLeaveGroup(req);
    } catch (err) {
      this.log.error({ err, groupId: req?.groupId }, 'leave group failed');
      res = { errorCode: ErrorCode.UNKNOWN_SERVER_ERROR, members: [] };
    }
    if (version < 3 && res.errorCode === ErrorCode.NONE) {
      res.errorCode = res.members.find((m) => m.errorCode !== ErrorCode.NONE)?.errorCode ?? ErrorCode.NONE;
    }
    return res;
  }

  private handleLeaveGroup(req: LeaveGroupRequest): LeaveGroupResponse {
    const statusError = this.statusError(req.groupId, false);
    if (statusError !== null) return { errorCode: statusError, members: [] };
    const leaving = (req.members ?? []).map((m) => ({
      memberId: typeof m?.memberId === 'string' ? m.memberId : '',
      groupInstanceId: typeof m?.groupInstanceId === 'string' ? m.groupInstanceId : null,
      reason: m?.reason ?? null,
    }));
    const answer = (m: (typeof leaving)[number], errorCode: number) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      errorCode,
    });
    const group = this.groups.get(req.groupId);
    if (!group) return { errorCode: ErrorCode.NONE, members: leaving.map((m) => answer(m, ErrorCode.UNKNOWN_MEMBER_ID)) };
    if (group.is('Dead')) return { errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE, members: [] };

    let removed = false;
    const members = leaving.map((m) => {
      const why = `member ${m.memberId || m.groupInstanceId} left${m.reason ? ` (${m.reason})` : ''}`;
      if (m.memberId === '') {
        // Administrative removal by group.instance.id alone.
        const current = group.currentStaticMemberId(m.groupInstanceId);
        const member = current !== undefined ? group.members.get(current) : undefined;
        if (!member) return answer(m, ErrorCode.UNKNOWN_MEMBER_ID);
        this.removeMemberAndUpdateGroup(group, member, why);
        removed = true;
        return answer(m, ErrorCode.NONE);
      }
      if (group.isPendingMember(m.memberId)) {
        this.removeMember(group, m.memberId);
        if (group.is('PreparingRebalance')) this.tryCompleteJoin(group);
        return answer(m, ErrorCode.NONE);
      }
      if (group.isStaticMemberFenced(m.groupInstanceId, m.memberId)) return answer(m, ErrorCode.FENCED_INSTANCE_ID);
      const member = group.members.get(m.memberId);
      if (!member) return answer(m, ErrorCode.UNKNOWN_MEMBER_ID);
      this.log.info({ groupId: group.groupId, memberId: m.memberId, reason: m.reason }, 'member left');
      this.removeMemberAndUpdateGroup(group, member, why);
      removed = true;
      return answer(m, ErrorCode.NONE);
    });
    if (removed) this.persistMembershipChange(group);
    this.dropIfDefunct(group);
    return { errorCode: ErrorCode.NONE, members };
  }

  // ---------------------------------------------------------------- OffsetCommit

  async commitOffsets(req: OffsetCommitRequest): Promise<OffsetCommitResponse> {
    try {
      return await this.handleCommitOffsets(req);
    } catch (err) {
      this.log.error({ err, groupId: req?.groupId }, 'offset commit failed');
      return allPartitions(req, ErrorCode.UNKNOWN_SERVER_ERROR);
    }
  }

  private async handleCommitOffsets(req: OffsetCommitRequest): Promise<OffsetCommitResponse> {
    const statusError = this.statusError(req.groupId, true);
    if (statusError !== null) return allPartitions(req, statusError);
    const generationId = req.generationIdOrMemberEpoch;
    const memberId = typeof req.memberId === 'string' ? req.memberId : '';
    const groupInstanceId = req.groupInstanceId ?? null;

    let group = this.groups.get(req.groupId);
    if (!group) {
      // Not managed by this coordinator's group protocol (manual assignment): accept generation -1.
      if (!(generationId < 0)) return allPartitions(req, ErrorCode.ILLEGAL_GENERATION);
      group = new ClassicGroup(req.groupId, this.now());
      this.groups.set(req.groupId, group);
    }

    let error: number | null = null;
    if (group.is('Dead')) {
      error = ErrorCode.COORDINATOR_NOT_AVAILABLE;
    } else if (generationId >= 0 || memberId !== '' || groupInstanceId !== null) {
      error = this.validateCurrentMember(group, memberId, groupInstanceId);
      if (error === null && generationId !== group.generationId) error = ErrorCode.ILLEGAL_GENERATION;
    } else if (!group.is('Empty')) {
      // Only members commit to a group that has members.
      error = ErrorCode.UNKNOWN_MEMBER_ID;
    }
    if (error === null) {
      switch (group.state) {
        case 'Empty':
          break;
        case 'Stable':
        case 'PreparingRebalance':
          // Still allowed while preparing: the heartbeat tells the member to rejoin.
          this.scheduleHeartbeat(group, group.members.get(memberId)!);
          break;
        case 'CompletingRebalance':
          error = ErrorCode.REBALANCE_IN_PROGRESS;
          break;
        default:
          error = ErrorCode.COORDINATOR_NOT_AVAILABLE;
      }
    }
    if (error !== null) {
      this.dropIfDefunct(group);
      return allPartitions(req, error);
    }
    return this.storeOffsets(group, req);
  }

  private async storeOffsets(group: ClassicGroup, req: OffsetCommitRequest): Promise<OffsetCommitResponse> {
    const now = this.now();
    const writes = new Map<string, { topic: string; partition: number; value: CommittedOffset }>();
    const response: OffsetCommitResponse = { topics: [] };
    const accepted: { errorCode: number }[] = [];
    for (const t of req.topics ?? []) {
      const partitions: { partitionIndex: number; errorCode: number }[] = [];
      response.topics.push({ name: t.name, partitions });
      for (const p of t.partitions ?? []) {
        const entry = { partitionIndex: p.partitionIndex, errorCode: ErrorCode.NONE as number };
        partitions.push(entry);
        // Kafka stores a null metadata as ''.
        const metadata = typeof p.committedMetadata === 'string' ? p.committedMetadata : '';
        const offset = toOffset(p.committedOffset);
        if (typeof t.name !== 'string' || !Number.isInteger(p.partitionIndex) || offset === undefined) {
          entry.errorCode = ErrorCode.INVALID_REQUEST;
        } else if (metadata.length > this.maxOffsetMetadataLength) {
          entry.errorCode = ErrorCode.OFFSET_METADATA_TOO_LARGE;
        } else {
          // The last occurrence of a partition wins; one key may appear only once in a txn.
          writes.set(offsetKey(group.groupId, t.name, p.partitionIndex), {
            topic: t.name,
            partition: p.partitionIndex,
            value: {
              offset,
              leaderEpoch: Number.isInteger(p.committedLeaderEpoch) ? p.committedLeaderEpoch : -1,
              metadata,
              commitTimestamp: now,
            },
          });
          accepted.push(entry);
        }
      }
    }
    if (writes.size === 0) return response;

    const ops: Op[] = [...writes].map(([key, w]) => ({
      type: 'put',
      key,
      value: Buffer.from(
        JSON.stringify({
          offset: w.value.offset.toString(),
          leaderEpoch: w.value.leaderEpoch,
          metadata: w.value.metadata,
          commitTimestamp: w.value.commitTimestamp,
        } satisfies StoredOffset),
      ),
    }));
    this.inflightCommits.set(group, (this.inflightCommits.get(group) ?? 0) + 1);
    let code: number = ErrorCode.NONE;
    try {
      await this.enqueueWrite(group.groupId, async () => {
        // etcd caps a transaction at 128 operations by default: large commits go in chunks.
        for (let i = 0; i < ops.length; i += TXN_MAX_OPS) await this.write(ops.slice(i, i + TXN_MAX_OPS));
      });
      // A group deleted meanwhile is gone; its deletion runs after this write.
      if (!group.is('Dead')) for (const w of writes.values()) group.setOffset(w.topic, w.partition, w.value);
    } catch (err) {
      code = this.writeError(err, group.groupId, 'storing offsets failed');
    } finally {
      this.inflightCommits.set(group, (this.inflightCommits.get(group) ?? 1) - 1);
    }
    if (code !== ErrorCode.NONE) {
      for (const e of accepted) e.errorCode = code;
      this.dropIfDefunct(group);
    }
    return response;
  }

  // ---------------------------------------------------------------- OffsetFetch

  async fetchOffsets(req: OffsetFetchRequest): Promise<OffsetFetchResponse> {
    try {
      return this.handleFetchOffsets(req);
    } catch (err) {
      this.log.error({ err, groupId: req?.groupId }, 'offset fetch failed');
      return { errorCode: ErrorCode.UNKNOWN_SERVER_ERROR, topics: [] };
    }
  }

  private handleFetchOffsets(req: OffsetFetchRequest): OffsetFetchResponse {
    const statusError = this.statusError(req.groupId, true);
    const unknown = (partitionIndex: number, errorCode: number) => ({
      partitionIndex,
      committedOffset: -1n,
      committedLeaderEpoch: -1,
      metadata: '',
      errorCode,
    });
    if (statusError !== null) {
      return {
        errorCode: statusError,
        topics: (req.topics ?? []).map((t) => ({
          name: t.name,
          partitions: (t.partitionIndexes ?? []).map((p) => unknown(p, statusError)),
        })),
      };
    }
    // Offsets are answered whatever the group state: the group may use Kafka only for storage.
    const group = this.groups.get(req.groupId);
    if (req.topics == null) {
      if (!group) return { errorCode: ErrorCode.NONE, topics: [] };
      return {
        errorCode: ErrorCode.NONE,
        topics: [...group.offsets.keys()].sort().map((name) => ({
          name,
          partitions: [...group.offsets.get(name)!]
            .sort(([a], [b]) => a - b)
            .map(([partitionIndex, o]) => ({
              partitionIndex,
              committedOffset: o.offset,
              committedLeaderEpoch: o.leaderEpoch,
              metadata: o.metadata,
              errorCode: ErrorCode.NONE,
            })),
        })),
      };
    }
    return {
      errorCode: ErrorCode.NONE,
      topics: req.topics.map((t) => ({
        name: t.name,
        partitions: (t.partitionIndexes ?? []).map((p) => {
          const o = group?.offset(t.name, p);
          if (!o) return unknown(p, ErrorCode.NONE);
          return {
            partitionIndex: p,
            committedOffset: o.offset,
            committedLeaderEpoch: o.leaderEpoch,
            metadata: o.metadata,
            errorCode: ErrorCode.NONE,
          };
        }),
      })),
    };
  }

  // ---------------------------------------------------------------- DescribeGroups, ListGroups

  async describeGroups(groupIds: string[]): Promise<DescribedGroup[]> {
    return (groupIds ?? []).map((groupId) => {
      try {
        return this.describeGroup(groupId);
      } catch (err) {
        this.log.error({ err, groupId }, 'describe group failed');
        return describedError(groupId, ErrorCode.UNKNOWN_SERVER_ERROR);
      }
    });
  }

  private describeGroup(groupId: string): DescribedGroup {
    const statusError = this.statusError(groupId, true);
    if (statusError !== null) return describedError(groupId, statusError);
    const group = this.groups.get(groupId);
    if (!group) {
      // Kafka describes an unknown group as Dead, without an error.
      return { errorCode: ErrorCode.NONE, groupId, groupState: 'Dead', protocolType: '', protocolData: '', members: [] };
    }
    const stable = group.is('Stable');
    return {
      errorCode: ErrorCode.NONE,
      groupId,
      groupState: group.state,
      protocolType: group.protocolType ?? '',
      // Metadata and assignments are only meaningful (and only shown by Kafka) for a stable group.
      protocolData: stable ? (group.protocolName ?? '') : '',
      members: [...group.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        memberMetadata: stable ? (m.metadata(group.protocolName) ?? EMPTY_BYTES) : EMPTY_BYTES,
        memberAssignment: stable ? m.assignment : EMPTY_BYTES,
      })),
    };
  }

  async listGroups(statesFilter?: string[]): Promise<ListedGroup[]> {
    if (this.status !== 'active') return [];
    const wanted = new Set((statesFilter ?? []).map((s) => String(s).toLowerCase()));
    const out: ListedGroup[] = [];
    for (const group of this.groups.values()) {
      if (wanted.size > 0 && !wanted.has(group.state.toLowerCase())) continue;
      out.push({ groupId: group.groupId, protocolType: group.protocolType ?? '', groupState: group.state });
    }
    return out;
  }

  // ---------------------------------------------------------------- DeleteGroups

  async deleteGroups(groupIds: string[]): Promise<{ groupId: string; errorCode: number }[]> {
    const ids = [...new Set(groupIds ?? [])];
    return Promise.all(
      ids.map(async (groupId) => {
        try {
          return { groupId, errorCode: await this.deleteGroup(groupId) };
        } catch (err) {
          this.log.error({ err, groupId }, 'delete group failed');
          return { groupId, errorCode: ErrorCode.UNKNOWN_SERVER_ERROR };
        }
      }),
    );
  }

  private async deleteGroup(groupId: string): Promise<number> {
    const statusError = this.statusError(groupId, true);
    if (statusError !== null) return statusError;
    const group = this.groups.get(groupId);
    if (!group || group.is('Dead')) return ErrorCode.GROUP_ID_NOT_FOUND;
    if (!group.is('Empty')) return ErrorCode.NON_EMPTY_GROUP;
    this.unloadGroup(group); // Empty: nothing is held; this clears pending-member timers
    this.groups.delete(groupId);
    try {
      await this.enqueueWrite(groupId, () => this.write([{ type: 'deletePrefix', prefix: groupPrefix(groupId) }]));
      this.log.info({ groupId }, 'group deleted');
      return ErrorCode.NONE;
    } catch (err) {
      const code = this.writeError(err, groupId, 'deleting group from the store failed');
      // Put it back so that memory keeps matching the store; the client may retry.
      if (!this.groups.has(groupId) && this.status === 'active') {
        group.state = 'Empty';
        this.groups.set(groupId, group);
      }
      return code;
    }
  }

  // ---------------------------------------------------------------- persistence

  /**
   * Stores the group's metadata as it is now (with `assignment` instead of the members'
   * current assignments when given). Never rejects: answers NONE or the error to send.
   */
  private persistGroup(group: ClassicGroup, assignment?: Map<string, Buffer>): Promise<number> {
    const stored: StoredGroup = {
      version: 1,
      protocolType: group.protocolType,
      generationId: group.generationId,
      protocolName: group.protocolName,
      leader: group.leaderId,
      stateTimestamp: group.stateTimestamp,
      // With the leader's assignment this is the completed generation; otherwise a record
      // written mid-rebalance tells the next coordinator to rebalance at once.
      rebalancePending: !assignment && (group.is('PreparingRebalance') || group.is('CompletingRebalance')),
      members: [...group.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        rebalanceTimeoutMs: m.rebalanceTimeoutMs,
        sessionTimeoutMs: m.sessionTimeoutMs,
        metadata: (m.metadata(group.protocolName) ?? EMPTY_BYTES).toString('base64'),
        protocols: m.protocols.map((p) => ({ name: p.name, metadata: p.metadata.toString('base64') })),
        assignment: (assignment ? (assignment.get(m.memberId) ?? EMPTY_BYTES) : m.assignment).toString('base64'),
      })),
    };
    group.persisted = true;
    const value = Buffer.from(JSON.stringify(stored));
    return this.enqueueWrite(group.groupId, () => this.write([{ type: 'put', key: groupStateKey(group.groupId), value }])).then(
      () => ErrorCode.NONE as number,
      (err: unknown) => this.writeError(err, group.groupId, 'storing group metadata failed'),
    );
  }

  /** One store transaction, under the fence when there is one. */
  private async write(ops: Op[]): Promise<void> {
    const res = await this.meta.txn(this.fence, ops);
    if (res.succeeded) return;
    if (!this.fenced) {
      this.fenced = true;
      this.log.warn('group coordinator fenced: its slot lock changed hands; stopping');
      this.onFenced?.();
    }
    throw new CoordinatorFencedError();
  }

  /** The error code for a failed write: a fenced coordinator sends clients to the new one. */
  private writeError(err: unknown, groupId: string, what: string): number {
    if (err instanceof CoordinatorFencedError) return ErrorCode.NOT_COORDINATOR;
    this.log.error({ err, groupId }, what);
    return ErrorCode.COORDINATOR_NOT_AVAILABLE;
  }

  private enqueueWrite(groupId: string, write: () => Promise<void>): Promise<void> {
    const previous = this.writeChains.get(groupId) ?? Promise.resolve();
    const run = previous.then(write);
    const tail = run.catch(() => undefined);
    this.writeChains.set(groupId, tail);
    void tail.then(() => {
      if (this.writeChains.get(groupId) === tail) this.writeChains.delete(groupId);
    });
    return run;
  }

  // ---------------------------------------------------------------- helpers

  /** Kafka's validateGroupStatus. Offset and admin APIs accept the empty group id, like Kafka. */
  private statusError(groupId: unknown, allowEmptyId: boolean): number | null {
    if (typeof groupId !== 'string' || (!allowEmptyId && groupId === '')) return ErrorCode.INVALID_GROUP_ID;
    if (this.status === 'closed' || this.fenced) return ErrorCode.NOT_COORDINATOR;
    if (this.status !== 'active') return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS;
    return null;
  }

  /**
   * A group that holds nothing worth keeping (never stored, no members, no pending ids, no
   * offsets) is forgotten at once, so that failed joins with random group ids cost nothing.
   */
  private dropIfDefunct(group: ClassicGroup): void {
    if (
      this.groups.get(group.groupId) === group &&
      group.is('Empty') &&
      group.members.size === 0 &&
      group.pendingMembers.size === 0 &&
      !group.hasOffsets() &&
      !group.persisted &&
      (this.inflightCommits.get(group) ?? 0) === 0
    ) {
      group.state = 'Dead';
      this.groups.delete(group.groupId);
    }
  }

  /** Runs a request whose answer may be held (JoinGroup, SyncGroup); a throw never leaves it hanging. */
  private held<T>(start: (cb: (r: T) => void) => void, onError: () => T): Promise<T> {
    return new Promise<T>((resolve) => {
      let done = false;
      const cb = (r: T) => {
        if (done) return;
        done = true;
        resolve(r);
      };
      try {
        start(cb);
      } catch (err) {
        this.log.error({ err }, 'group request failed');
        cb(onError());
      }
    });
  }

  private setTimer(ms: number, fn: () => void): Timer {
    const delay = Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_TIMER_MS) : MAX_TIMER_MS;
    const t = setTimeout(() => {
      if (this.status === 'closed') return;
      try {
        fn();
      } catch (err) {
        this.log.error({ err }, 'group coordinator timer failed');
      }
    }, delay);
    t.unref?.();
    return t;
  }
}

interface Join {
  memberId: string;
  groupInstanceId: string | null;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: Protocol[];
  reason: string | null;
  version: number;
  clientId: string;
  clientHost: string;
}

function positiveOr(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fallback;
}

/** int64 offsets arrive as bigint; a safe-integer number is taken too. */
function toOffset(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  return undefined;
}

function clearTimer(t: Timer | null): void {
  if (t) clearTimeout(t);
}

/** Protocols are keyed by name in the request schema: keep the first of each name. */
function normaliseProtocols(protocols: JoinGroupRequest['protocols'] | null | undefined): Protocol[] {
  const seen = new Set<string>();
  const out: Protocol[] = [];
  for (const p of protocols ?? []) {
    if (!p || typeof p.name !== 'string' || seen.has(p.name)) continue;
    seen.add(p.name);
    out.push({ name: p.name, metadata: Buffer.isBuffer(p.metadata) ? p.metadata : EMPTY_BYTES });
  }
  return out;
}

function allPartitions(req: OffsetCommitRequest, errorCode: number): OffsetCommitResponse {
  return {
    topics: (req?.topics ?? []).map((t) => ({
      name: t.name,
      partitions: (t.partitions ?? []).map((p) => ({ partitionIndex: p.partitionIndex, errorCode })),
    })),
  };
}

function describedError(groupId: string, errorCode: number): DescribedGroup {
  return { errorCode, groupId, groupState: '', protocolType: '', protocolData: '', members: [] };
}
