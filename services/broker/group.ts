// One classic consumer group as Kafka's ClassicGroup/GroupMetadata keeps it: members, the
// generation, the selected protocol, static-member and pending-member bookkeeping, and the
// committed offsets. No timers, no I/O: the coordinator drives it and owns the timer handles.
import { ErrorCode } from '../protocol/errors.js';

export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable' | 'Dead';

export const GROUP_STATES: readonly GroupState[] = [
  'Empty',
  'PreparingRebalance',
  'CompletingRebalance',
  'Stable',
  'Dead',
];

/** Kafka's GroupState.validPreviousStates. */
const VALID_PREVIOUS: Record<GroupState, readonly GroupState[]> = {
  Empty: ['PreparingRebalance'],
  PreparingRebalance: ['Stable', 'CompletingRebalance', 'Empty'],
  CompletingRebalance: ['PreparingRebalance'],
  Stable: ['CompletingRebalance'],
  Dead: ['Stable', 'PreparingRebalance', 'CompletingRebalance', 'Empty', 'Dead'],
};

export const EMPTY_BYTES: Buffer = Buffer.alloc(0);

export interface Protocol {
  name: string;
  metadata: Buffer;
}

/** What a held JoinGroup request is finally answered with (before per-version shaping). */
export interface JoinResult {
  errorCode: number;
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leader: string;
  skipAssignment: boolean;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
}

export interface SyncResult {
  errorCode: number;
  protocolType: string | null;
  protocolName: string | null;
  assignment: Buffer;
}

export function joinError(memberId: string, errorCode: number): JoinResult {
  return {
    errorCode,
    generationId: -1,
    protocolType: null,
    protocolName: null,
    leader: '',
    skipAssignment: false,
    memberId,
    members: [],
  };
}

export function syncError(errorCode: number): SyncResult {
  return { errorCode, protocolType: null, protocolName: null, assignment: EMPTY_BYTES };
}

export interface CommittedOffset {
  offset: bigint;
  leaderEpoch: number;
  metadata: string;
  commitTimestamp: number;
}

type Timer = ReturnType<typeof setTimeout>;

/** A pending join-phase completion: Kafka's DelayedJoin, or InitialDelayedJoin when `initial`. */
export interface JoinOp {
  initial: boolean;
  /** group.initial.rebalance.delay.ms (initial ops only). */
  configuredDelayMs: number;
  delayMs: number;
  /** How much longer an initial op may still be extended (initial ops only). */
  remainingMs: number;
}

export class GroupMember {
  assignment: Buffer = EMPTY_BYTES;
  awaitingJoin: ((r: JoinResult) => void) | null = null;
  awaitingSync: ((r: SyncResult) => void) | null = null;
  /** Joined but not yet through a completed join phase: expires on the new-member timeout. */
  isNew = false;
  heartbeatTimer: Timer | null = null;

  constructor(
    public memberId: string,
    readonly groupInstanceId: string | null,
    readonly clientId: string,
    readonly clientHost: string,
    public rebalanceTimeoutMs: number,
    public sessionTimeoutMs: number,
    readonly protocolType: string,
    public protocols: Protocol[],
  ) {}

  metadata(protocolName: string | null): Buffer | undefined {
    if (protocolName === null) return undefined;
    return this.protocols.find((p) => p.name === protocolName)?.metadata;
  }

  /** Same protocols, same order, same metadata bytes (Kafka's MemberMetadata.matches). */
  matches(protocols: Protocol[]): boolean {
    if (protocols.length !== this.protocols.length) return false;
    return protocols.every((p, i) => p.name === this.protocols[i]!.name && p.metadata.equals(this.protocols[i]!.metadata));
  }

  /** The member's most preferred protocol among the candidates. */
  vote(candidates: Set<string>): string | undefined {
    return this.protocols.find((p) => candidates.has(p.name))?.name;
  }

  invokeJoin(result: JoinResult): boolean {
    const cb = this.awaitingJoin;
    if (!cb) return false;
    this.awaitingJoin = null;
    cb(result);
    return true;
  }

  invokeSync(result: SyncResult): boolean {
    const cb = this.awaitingSync;
    if (!cb) return false;
    this.awaitingSync = null;
    cb(result);
    return true;
  }
}

export class ClassicGroup {
  state: GroupState = 'Empty';
  stateTimestamp: number;
  generationId = 0;
  protocolType: string | null = null;
  protocolName: string | null = null;
  leaderId: string | null = null;
  readonly members = new Map<string, GroupMember>();
  /** group.instance.id → current member id. */
  readonly staticMembers = new Map<string, string>();
  /** Member ids handed out with MEMBER_ID_REQUIRED, not joined yet → their expiry timer. */
  readonly pendingMembers = new Map<string, Timer | null>();
  /** Members that got their JoinGroup answer this generation but have not sent SyncGroup. */
  readonly pendingSyncMembers = new Set<string>();
  /** Set when a member joins during the first (generation 0) join phase: extends the initial delay. */
  newMemberAdded = false;
  /** topic → partition → committed offset. */
  readonly offsets = new Map<string, Map<number, CommittedOffset>>();
  /** True once a state record exists (or may exist) in the store. */
  persisted = false;

  joinOp: JoinOp | null = null;
  joinTimer: Timer | null = null;
  syncTimer: Timer | null = null;

  private readonly supportedProtocols = new Map<string, number>();

  constructor(
    readonly groupId: string,
    now: number,
  ) {
    this.stateTimestamp = now;
  }

  is(state: GroupState): boolean {
    return this.state === state;
  }

  canTransitionTo(target: GroupState): boolean {
    return VALID_PREVIOUS[target].includes(this.state);
  }

  transitionTo(target: GroupState, now: number): void {
    if (!this.canTransitionTo(target)) {
      throw new Error(`group ${this.groupId}: illegal transition ${this.state} → ${target}`);
    }
    this.state = target;
    this.stateTimestamp = now;
  }

  /** Kafka's canRebalance: PreparingRebalance may follow the current state. */
  canRebalance(): boolean {
    return this.canTransitionTo('PreparingRebalance');
  }

  has(memberId: string): boolean {
    return this.members.has(memberId);
  }

  isLeader(memberId: string): boolean {
    return this.leaderId === memberId;
  }

  isPendingMember(memberId: string): boolean {
    return this.pendingMembers.has(memberId);
  }

  currentStaticMemberId(groupInstanceId: string | null): string | undefined {
    return groupInstanceId === null ? undefined : this.staticMembers.get(groupInstanceId);
  }

  /** A static member id is fenced when its instance id is now owned by another member id. */
  isStaticMemberFenced(groupInstanceId: string | null, memberId: string): boolean {
    const current = this.currentStaticMemberId(groupInstanceId);
    return current !== undefined && current !== memberId;
  }

  /** Max rebalance timeout over the members (Kafka's GroupMetadata.rebalanceTimeoutMs). */
  rebalanceTimeoutMs(): number {
    let max = 0;
    for (const m of this.members.values()) max = Math.max(max, m.rebalanceTimeoutMs);
    return max;
  }

  numAwaitingJoin(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.awaitingJoin) n++;
    return n;
  }

  hasAllMembersJoined(): boolean {
    return this.members.size === this.numAwaitingJoin() && this.pendingMembers.size === 0;
  }

  notYetRejoinedMembers(): GroupMember[] {
    return [...this.members.values()].filter((m) => !m.awaitingJoin);
  }

  hasOffsets(): boolean {
    return this.offsets.size > 0;
  }

  /**
   * Can a member with these protocols join? An empty group takes any non-empty protocol type
   * with at least one protocol; otherwise the type must match and one protocol must be
   * supported by every member. `replacing` is a member whose own votes are not counted (it is
   * the one rejoining or being replaced), so a member can switch assignors in place.
   */
  supportsProtocols(protocolType: string, names: string[], replacing?: GroupMember): boolean {
    if (this.is('Empty')) return protocolType !== '' && names.length > 0;
    if (this.protocolType !== protocolType) return false;
    const others = this.members.size - (replacing ? 1 : 0);
    return names.some((name) => {
      const own = replacing && replacing.protocols.some((p) => p.name === name) ? 1 : 0;
      return (this.supportedProtocols.get(name) ?? 0) - own === others;
    });
  }

  add(member: GroupMember, callback: ((r: JoinResult) => void) | null): void {
    if (this.members.size === 0) this.protocolType = member.protocolType;
    if (this.leaderId === null) this.leaderId = member.memberId;
    this.pendingMembers.delete(member.memberId);
    this.members.set(member.memberId, member);
    this.countProtocols(member.protocols, +1);
    member.awaitingJoin = callback;
    if (member.groupInstanceId !== null) this.staticMembers.set(member.groupInstanceId, member.memberId);
  }

  /**
   * Removes a member and everything that refers to it. Held requests are answered with
   * UNKNOWN_MEMBER_ID here so that no caller is ever left waiting on a member that is gone.
   */
  remove(memberId: string): GroupMember | undefined {
    const member = this.members.get(memberId);
    if (member) {
      this.members.delete(memberId);
      this.countProtocols(member.protocols, -1);
      if (member.groupInstanceId !== null && this.staticMembers.get(member.groupInstanceId) === memberId) {
        this.staticMembers.delete(member.groupInstanceId);
      }
      member.invokeJoin(joinError('', ErrorCode.UNKNOWN_MEMBER_ID));
      member.invokeSync(syncError(ErrorCode.UNKNOWN_MEMBER_ID));
    }
    if (this.isLeader(memberId)) {
      const next = this.members.keys().next();
      this.leaderId = next.done ? null : next.value;
    }
    this.pendingMembers.delete(memberId);
    this.pendingSyncMembers.delete(memberId);
    return member;
  }

  /**
   * A request superseding a held one (a client retrying after its own timeout) answers the
   * old one with REBALANCE_IN_PROGRESS rather than dropping it, so the transport never waits
   * forever on it.
   */
  updateMember(
    member: GroupMember,
    protocols: Protocol[],
    rebalanceTimeoutMs: number,
    sessionTimeoutMs: number,
    callback: ((r: JoinResult) => void) | null,
  ): void {
    this.countProtocols(member.protocols, -1);
    this.countProtocols(protocols, +1);
    member.protocols = protocols;
    member.rebalanceTimeoutMs = rebalanceTimeoutMs;
    member.sessionTimeoutMs = sessionTimeoutMs;
    if (callback && member.awaitingJoin && member.awaitingJoin !== callback) {
      member.invokeJoin(joinError(member.memberId, ErrorCode.REBALANCE_IN_PROGRESS));
    }
    member.awaitingJoin = callback;
  }

  /** A static member rejoined with a new member id: the old id is fenced, the member keeps its place. */
  replaceStaticMember(groupInstanceId: string, oldMemberId: string, newMemberId: string): GroupMember {
    const member = this.members.get(oldMemberId);
    if (!member) throw new Error(`group ${this.groupId}: static member ${oldMemberId} not found`);
    this.members.delete(oldMemberId);
    member.invokeJoin(joinError(oldMemberId, ErrorCode.FENCED_INSTANCE_ID));
    member.invokeSync(syncError(ErrorCode.FENCED_INSTANCE_ID));
    member.memberId = newMemberId;
    this.members.set(newMemberId, member);
    if (this.isLeader(oldMemberId)) this.leaderId = newMemberId;
    this.staticMembers.set(groupInstanceId, newMemberId);
    if (this.pendingSyncMembers.delete(oldMemberId)) this.pendingSyncMembers.add(newMemberId);
    return member;
  }

  /**
   * The protocol supported by every member that most members prefer (Kafka's selectProtocol);
   * ties go to the protocol whose first vote came earliest.
   */
  selectProtocol(): string | null {
    if (this.members.size === 0) return null;
    const candidates = new Set<string>();
    for (const [name, count] of this.supportedProtocols) if (count === this.members.size) candidates.add(name);
    const votes = new Map<string, number>();
    for (const m of this.members.values()) {
      // Without a common protocol (cannot happen through supportsProtocols) each member votes its first choice.
      const v = candidates.size > 0 ? m.vote(candidates) : m.protocols[0]?.name;
      if (v !== undefined) votes.set(v, (votes.get(v) ?? 0) + 1);
    }
    let best: string | null = null;
    let bestVotes = 0;
    for (const [name, n] of votes) {
      if (n > bestVotes) {
        best = name;
        bestVotes = n;
      }
    }
    return best;
  }

  /** Advances the generation at the end of a join phase. */
  initNextGeneration(now: number): void {
    this.generationId++;
    if (this.members.size > 0) {
      this.protocolName = this.selectProtocol();
      this.transitionTo('CompletingRebalance', now);
    } else {
      this.protocolName = null;
      this.transitionTo('Empty', now);
    }
    this.pendingSyncMembers.clear();
  }

  /** What the leader's JoinGroup response lists: every member with its metadata for the selected protocol. */
  currentMemberMetadata(): JoinResult['members'] {
    return [...this.members.values()].map((m) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      metadata: m.metadata(this.protocolName) ?? EMPTY_BYTES,
    }));
  }

  offset(topic: string, partition: number): CommittedOffset | undefined {
    return this.offsets.get(topic)?.get(partition);
  }

  setOffset(topic: string, partition: number, value: CommittedOffset): void {
    let t = this.offsets.get(topic);
    if (!t) {
      t = new Map();
      this.offsets.set(topic, t);
    }
    t.set(partition, value);
  }

  private countProtocols(protocols: Protocol[], delta: number): void {
    for (const p of protocols) {
      const n = (this.supportedProtocols.get(p.name) ?? 0) + delta;
      if (n <= 0) this.supportedProtocols.delete(p.name);
      else this.supportedProtocols.set(p.name, n);
    }
  }
}
