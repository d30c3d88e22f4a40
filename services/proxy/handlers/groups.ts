// Classic consumer-group APIs, translated between wire versions and the coordinator.
import type { ProxyContext } from '../proxy.js';
import type { RequestContext } from '../server.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { JoinGroupRequest } from '../../protocol/messages/join-group-request.js';
import type { JoinGroupResponse } from '../../protocol/messages/join-group-response.js';
import type { SyncGroupRequest } from '../../protocol/messages/sync-group-request.js';
import type { SyncGroupResponse } from '../../protocol/messages/sync-group-response.js';
import type { HeartbeatRequest } from '../../protocol/messages/heartbeat-request.js';
import type { HeartbeatResponse } from '../../protocol/messages/heartbeat-response.js';
import type { LeaveGroupRequest } from '../../protocol/messages/leave-group-request.js';
import type { LeaveGroupResponse } from '../../protocol/messages/leave-group-response.js';
import type { OffsetCommitRequest } from '../../protocol/messages/offset-commit-request.js';
import type { OffsetCommitResponse } from '../../protocol/messages/offset-commit-response.js';
import type { OffsetFetchRequest } from '../../protocol/messages/offset-fetch-request.js';
import type { OffsetFetchResponse } from '../../protocol/messages/offset-fetch-response.js';
import type { DescribeGroupsRequest } from '../../protocol/messages/describe-groups-request.js';
import type { DescribeGroupsResponse } from '../../protocol/messages/describe-groups-response.js';
import type { ListGroupsRequest } from '../../protocol/messages/list-groups-request.js';
import type { ListGroupsResponse } from '../../protocol/messages/list-groups-response.js';
import type { DeleteGroupsRequest } from '../../protocol/messages/delete-groups-request.js';
import type { DeleteGroupsResponse } from '../../protocol/messages/delete-groups-response.js';

export async function joinGroup(ctx: ProxyContext, req: JoinGroupRequest, rc: RequestContext): Promise<JoinGroupResponse> {
  const r = await ctx.groups.joinGroup(
    {
      groupId: req.groupId,
      sessionTimeoutMs: req.sessionTimeoutMs,
      // v0 has no rebalance timeout: Kafka uses the session timeout.
      rebalanceTimeoutMs: rc.apiVersion >= 1 ? (req.rebalanceTimeoutMs ?? req.sessionTimeoutMs) : req.sessionTimeoutMs,
      memberId: req.memberId,
      groupInstanceId: req.groupInstanceId ?? null,
      protocolType: req.protocolType,
      protocols: req.protocols,
      reason: req.reason ?? null,
    },
    rc.apiVersion,
    { clientId: rc.clientId, clientHost: rc.clientHost },
  );
  return { throttleTimeMs: 0, ...r };
}

export async function syncGroup(ctx: ProxyContext, req: SyncGroupRequest, rc: RequestContext): Promise<SyncGroupResponse> {
  const r = await ctx.groups.syncGroup(
    {
      groupId: req.groupId,
      generationId: req.generationId,
      memberId: req.memberId,
      groupInstanceId: req.groupInstanceId ?? null,
      protocolType: req.protocolType ?? null,
      protocolName: req.protocolName ?? null,
      assignments: req.assignments,
    },
    rc.apiVersion,
  );
  return { throttleTimeMs: 0, ...r };
}

export async function heartbeat(ctx: ProxyContext, req: HeartbeatRequest): Promise<HeartbeatResponse> {
  const r = await ctx.groups.heartbeat({
    groupId: req.groupId,
    generationId: req.generationId,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId ?? null,
  });
  return { throttleTimeMs: 0, errorCode: r.errorCode };
}

export async function leaveGroup(ctx: ProxyContext, req: LeaveGroupRequest, rc: RequestContext): Promise<LeaveGroupResponse> {
  const members =
    rc.apiVersion >= 3
      ? (req.members ?? []).map((m) => ({ memberId: m.memberId ?? '', groupInstanceId: m.groupInstanceId ?? null, reason: m.reason ?? null }))
      : [{ memberId: req.memberId ?? '', groupInstanceId: null }];
  const r = await ctx.groups.leaveGroup({ groupId: req.groupId, members }, rc.apiVersion);
  // v0-2 carry one member: its error is the response's error.
  const errorCode = rc.apiVersion < 3 && r.errorCode === ErrorCode.NONE ? (r.members[0]?.errorCode ?? ErrorCode.NONE) : r.errorCode;
  return { throttleTimeMs: 0, errorCode, members: r.members };
}

export async function offsetCommit(ctx: ProxyContext, req: OffsetCommitRequest, rc: RequestContext): Promise<OffsetCommitResponse> {
  const r = await ctx.groups.commitOffsets({
    groupId: req.groupId,
    generationIdOrMemberEpoch: rc.apiVersion >= 1 ? (req.generationIdOrMemberEpoch ?? -1) : -1,
    memberId: req.memberId ?? '',
    groupInstanceId: req.groupInstanceId ?? null,
    topics: req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        committedOffset: p.committedOffset,
        committedLeaderEpoch: p.committedLeaderEpoch ?? -1,
        committedMetadata: p.committedMetadata,
      })),
    })),
  });
  return { throttleTimeMs: 0, topics: r.topics };
}

export async function offsetFetch(ctx: ProxyContext, req: OffsetFetchRequest, rc: RequestContext): Promise<OffsetFetchResponse> {
  if (rc.apiVersion >= 8) {
    // v8+: several groups per request.
    const groups = await Promise.all(
      (req.groups ?? []).map(async (g) => {
        const r = await ctx.groups.fetchOffsets({
          groupId: g.groupId ?? '',
          topics: g.topics ? g.topics.map((t) => ({ name: t.name ?? '', partitionIndexes: t.partitionIndexes ?? [] })) : null,
        });
        return { groupId: g.groupId, errorCode: r.errorCode, topics: r.topics };
      }),
    );
    return { throttleTimeMs: 0, groups };
  }
  // v0-1 have no null "all topics" form; v2+ do.
  const topics = req.topics ? req.topics.map((t) => ({ name: t.name ?? '', partitionIndexes: t.partitionIndexes ?? [] })) : null;
  const r = await ctx.groups.fetchOffsets({ groupId: req.groupId ?? '', topics });
  return { throttleTimeMs: 0, topics: r.topics, errorCode: r.errorCode };
}

export async function describeGroups(ctx: ProxyContext, req: DescribeGroupsRequest): Promise<DescribeGroupsResponse> {
  const groups = await ctx.groups.describeGroups(req.groups);
  return { throttleTimeMs: 0, groups: groups.map((g) => ({ ...g, authorizedOperations: -2147483648 })) };
}

export async function listGroups(ctx: ProxyContext, req: ListGroupsRequest): Promise<ListGroupsResponse> {
  const groups = await ctx.groups.listGroups(req.statesFilter && req.statesFilter.length > 0 ? req.statesFilter : undefined);
  return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, groups: groups.map((g) => ({ ...g, groupType: 'classic' })) };
}

export async function deleteGroups(ctx: ProxyContext, req: DeleteGroupsRequest): Promise<DeleteGroupsResponse> {
  const results = await ctx.groups.deleteGroups(req.groupsNames);
  return { throttleTimeMs: 0, results };
}
