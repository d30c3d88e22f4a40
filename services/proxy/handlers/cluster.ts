// ApiVersions, Metadata, DescribeCluster and FindCoordinator: how a client discovers the
// cluster. The proxy advertises itself as the one node that leads every partition and
// coordinates every group (DESIGN.md §5, "service" mode), so clients only ever dial it.
import { SERVICE_NODE_ID, type ProxyContext } from '../proxy.js';
import type { RequestContext } from '../server.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { MetadataRequest as MetaReq } from '../../protocol/messages/metadata-request.js';
import type { MetadataResponse, MetadataResponseTopic } from '../../protocol/messages/metadata-response.js';
import type { ApiVersionsResponse } from '../../protocol/messages/api-versions-response.js';
import type { DescribeClusterResponse } from '../../protocol/messages/describe-cluster-response.js';
import type { FindCoordinatorRequest } from '../../protocol/messages/find-coordinator-request.js';
import type { FindCoordinatorResponse } from '../../protocol/messages/find-coordinator-response.js';
import { supportedApiKeys } from '../server.js';
import { isValidTopicName, type TopicRecord } from '../../meta/topics.js';
import { ensureTopic } from './topics.js';

export async function apiVersions(): Promise<ApiVersionsResponse> {
  return { errorCode: ErrorCode.NONE, apiKeys: supportedApiKeys(), throttleTimeMs: 0 };
}

interface Node {
  nodeId: number;
  host: string;
  port: number;
}

/** The nodes clients see: this proxy alone (service mode) or every live proxy (direct mode). */
function nodes(ctx: ProxyContext): Node[] {
  const self = { nodeId: ctx.cfg.advertiseMode === 'direct' ? ctx.cfg.nodeId : SERVICE_NODE_ID, host: ctx.cfg.advertisedHost, port: ctx.cfg.advertisedPort };
  if (ctx.cfg.advertiseMode !== 'direct' || !ctx.peers) return [self];
  const peers = ctx.peers().map((p) => ({ nodeId: p.id, host: p.host, port: p.port }));
  if (!peers.some((p) => p.nodeId === self.nodeId)) peers.push(self);
  return peers.sort((a, b) => a.nodeId - b.nodeId);
}

/** Spreads partition leadership over the listed nodes by a stable hash. */
function leaderOf(list: Node[], topicId: string, partition: number): number {
  let h = partition;
  for (let i = 0; i < topicId.length; i++) h = (h * 31 + topicId.charCodeAt(i)) | 0;
  return list[Math.abs(h) % list.length].nodeId;
}

function topicMetadata(ctx: ProxyContext, t: TopicRecord, list: Node[]): MetadataResponseTopic {
  const partitions = [];
  for (let i = 0; i < t.partitions; i++) {
    const node = leaderOf(list, t.id, i);
    const epoch = ctx.broker.leaderEpoch(t.id, i);
    partitions.push({
      errorCode: epoch < 0 ? ErrorCode.LEADER_NOT_AVAILABLE : ErrorCode.NONE,
      partitionIndex: i,
      leaderId: node,
      leaderEpoch: epoch,
      replicaNodes: [node],
      isrNodes: [node],
      offlineReplicas: [],
    });
  }
  return { errorCode: ErrorCode.NONE, name: t.name, topicId: t.id, isInternal: false, partitions, topicAuthorizedOperations: -2147483648 };
}

export async function metadata(ctx: ProxyContext, req: MetaReq, rc: RequestContext): Promise<MetadataResponse> {
  const { cfg, topics } = ctx;
  const list = nodes(ctx);
  const brokers = list.map((n) => ({ ...n, rack: null }));
  let out: MetadataResponseTopic[];
  // v0: an empty list means every topic; v1+: null means every topic, empty means none.
  if (req.topics === null || (rc.apiVersion === 0 && req.topics.length === 0)) {
    out = topics.list().map((t) => topicMetadata(ctx, t, list));
  } else {
    const autoCreate = cfg.autoCreateTopics && (rc.apiVersion < 4 || req.allowAutoTopicCreation !== false);
    out = [];
    for (const rt of req.topics) {
      let t = rt.name != null ? topics.get(rt.name) : rt.topicId ? topics.getById(rt.topicId) : undefined;
      const name = rt.name ?? t?.name ?? null;
      if (!t && name !== null && !isValidTopicName(name)) {
        out.push({ errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION, name, topicId: rt.topicId, isInternal: false, partitions: [] });
        continue;
      }
      if (!t && name !== null && autoCreate) t = await ensureTopic(ctx, name);
      if (!t) {
        const errorCode = rt.name == null ? ErrorCode.UNKNOWN_TOPIC_ID : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        out.push({ errorCode, name, topicId: rt.topicId, isInternal: false, partitions: [] });
        continue;
      }
      out.push(topicMetadata(ctx, t, list));
    }
  }
  return {
    throttleTimeMs: 0,
    brokers,
    clusterId: cfg.clusterId,
    controllerId: list[0].nodeId,
    topics: out,
    clusterAuthorizedOperations: -2147483648,
  };
}

export async function describeCluster(ctx: ProxyContext): Promise<DescribeClusterResponse> {
  const list = nodes(ctx);
  return {
    throttleTimeMs: 0,
    errorCode: ErrorCode.NONE,
    errorMessage: null,
    endpointType: 1,
    clusterId: ctx.cfg.clusterId,
    controllerId: list[0].nodeId,
    brokers: list.map((n) => ({ brokerId: n.nodeId, host: n.host, port: n.port, rack: null })),
    clusterAuthorizedOperations: -2147483648,
  };
}

const GROUP_KEY = 0;

export async function findCoordinator(ctx: ProxyContext, req: FindCoordinatorRequest, rc: RequestContext): Promise<FindCoordinatorResponse> {
  const { cfg } = ctx;
  // Any proxy can reach any coordinator: the client is sent back to the proxy it asked.
  const self = cfg.advertiseMode === 'direct' ? cfg.nodeId : SERVICE_NODE_ID;
  const answer = (key: string) =>
    (req.keyType ?? GROUP_KEY) === GROUP_KEY
      ? { key, nodeId: self, host: cfg.advertisedHost, port: cfg.advertisedPort, errorCode: ErrorCode.NONE, errorMessage: null }
      : // Transactions are not supported: say so with a non-retriable error.
        { key, nodeId: -1, host: '', port: -1, errorCode: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, errorMessage: 'transactions are not supported' };
  if (rc.apiVersion >= 4) return { throttleTimeMs: 0, coordinators: (req.coordinatorKeys ?? []).map(answer) };
  const a = answer(req.key ?? '');
  return { throttleTimeMs: 0, errorCode: a.errorCode, errorMessage: a.errorMessage, nodeId: a.nodeId, host: a.host, port: a.port };
}
