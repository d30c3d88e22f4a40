// The GroupService over the network (cluster mode): every group request goes to the broker
// that owns the group's coordinator slot, at the client's own API version where the
// version changes semantics (JoinGroup, SyncGroup). An unreachable or moving coordinator
// answers NOT_COORDINATOR, which makes clients look it up again and retry.
import type { Logger } from 'pino';
import type { GroupService } from '../broker/group-service.js';
import { slotOf, slotUnit, type Registration } from '../broker/assignments.js';
import { ApiKey } from '../protocol/messages/api-keys.js';
import { ErrorCode } from '../protocol/errors.js';
import type { ClusterView } from './cluster-view.js';
import type { BrokerConnections } from './remote-broker.js';

type Args<K extends keyof GroupService> = Parameters<GroupService[K]>;
type Result<K extends keyof GroupService> = Awaited<ReturnType<GroupService[K]>>;

const NOT_COORD = ErrorCode.NOT_COORDINATOR;

export class RemoteGroups implements GroupService {
  constructor(
    private readonly view: ClusterView,
    private readonly connections: BrokerConnections,
    private readonly log: Logger,
  ) {}

  private owner(groupId: string): Registration | undefined {
    return this.view.ownerOf(slotUnit(slotOf(groupId)));
  }

  private async send<T>(groupId: string, apiKey: number, version: number, body: object, clientId?: string): Promise<T | undefined> {
    const reg = this.owner(groupId);
    if (!reg) return undefined;
    try {
      return await this.connections.to(reg).request<T>(apiKey, version, body, clientId);
    } catch (err) {
      this.log.debug({ err, groupId }, 'coordinator request failed');
      return undefined;
    }
  }

  async joinGroup(...[req, version, ctx]: Args<'joinGroup'>): Promise<Result<'joinGroup'>> {
    const r = await this.send<Result<'joinGroup'>>(req.groupId, ApiKey.JoinGroup, version, req, ctx?.clientId);
    return r ?? { errorCode: NOT_COORD, generationId: -1, protocolType: null, protocolName: null, leader: '', skipAssignment: false, memberId: req.memberId, members: [] };
  }

  async syncGroup(...[req, version]: Args<'syncGroup'>): Promise<Result<'syncGroup'>> {
    const r = await this.send<Result<'syncGroup'>>(req.groupId, ApiKey.SyncGroup, version, req);
    return r ?? { errorCode: NOT_COORD, protocolType: null, protocolName: null, assignment: Buffer.alloc(0) };
  }

  async heartbeat(...[req]: Args<'heartbeat'>): Promise<Result<'heartbeat'>> {
    return (await this.send<Result<'heartbeat'>>(req.groupId, ApiKey.Heartbeat, 4, req)) ?? { errorCode: NOT_COORD };
  }

  async leaveGroup(...[req]: Args<'leaveGroup'>): Promise<Result<'leaveGroup'>> {
    const r = await this.send<{ errorCode: number; members?: Result<'leaveGroup'>['members'] }>(req.groupId, ApiKey.LeaveGroup, 5, req);
    return r ? { errorCode: r.errorCode, members: r.members ?? [] } : { errorCode: NOT_COORD, members: [] };
  }

  async commitOffsets(...[req]: Args<'commitOffsets'>): Promise<Result<'commitOffsets'>> {
    const r = await this.send<Result<'commitOffsets'>>(req.groupId, ApiKey.OffsetCommit, 8, req);
    return r ?? { topics: req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: NOT_COORD })) })) };
  }

  async fetchOffsets(...[req]: Args<'fetchOffsets'>): Promise<Result<'fetchOffsets'>> {
    const r = await this.send<{ groups: { errorCode: number; topics: Result<'fetchOffsets'>['topics'] }[] }>(req.groupId, ApiKey.OffsetFetch, 8, {
      groups: [{ groupId: req.groupId, topics: req.topics }],
      requireStable: false,
    });
    const g = r?.groups[0];
    return g ? { errorCode: g.errorCode, topics: g.topics } : { errorCode: NOT_COORD, topics: [] };
  }

  async describeGroups(...[ids]: Args<'describeGroups'>): Promise<Result<'describeGroups'>> {
    return Promise.all(
      ids.map(async (groupId) => {
        const r = await this.send<{ groups: Result<'describeGroups'> }>(groupId, ApiKey.DescribeGroups, 5, { groups: [groupId], includeAuthorizedOperations: false });
        return r?.groups[0] ?? { errorCode: NOT_COORD, groupId, groupState: '', protocolType: '', protocolData: '', members: [] };
      }),
    );
  }

  async listGroups(...[statesFilter]: Args<'listGroups'>): Promise<Result<'listGroups'>> {
    const all = await Promise.all(
      [...this.view.brokers.values()].map(async (reg) => {
        try {
          const r = await this.connections.to(reg).request<{ groups: Result<'listGroups'> }>(ApiKey.ListGroups, 4, { statesFilter: statesFilter ?? [] });
          return r.groups;
        } catch {
          return [];
        }
      }),
    );
    return all.flat().map((g) => ({ groupId: g.groupId, protocolType: g.protocolType, groupState: g.groupState }));
  }

  async deleteGroups(...[ids]: Args<'deleteGroups'>): Promise<Result<'deleteGroups'>> {
    return Promise.all(
      ids.map(async (groupId) => {
        const r = await this.send<{ results: Result<'deleteGroups'> }>(groupId, ApiKey.DeleteGroups, 2, { groupsNames: [groupId] });
        return r?.results[0] ?? { groupId, errorCode: NOT_COORD };
      }),
    );
  }
}
