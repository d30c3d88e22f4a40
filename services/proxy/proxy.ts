// The proxy: the process clients talk to. It owns no data; it decodes requests, resolves
// topics, sends partition work to the owning broker and group work to the coordinator, parks
// fetches until data arrives, and answers in request order.
import type { Logger } from 'pino';
import type { BrokerClient } from '../broker/broker-client.js';
import type { GroupService } from '../broker/group-service.js';
import type { TopicRegistry } from '../meta/topics.js';
import type { Bus } from '../bus/bus.js';
import { ApiKey } from '../protocol/messages/api-keys.js';
import { KafkaServer, type Dispatch, type RequestContext } from './server.js';
import { HwWatch } from './hw-watch.js';
import * as cluster from './handlers/cluster.js';
import * as produce from './handlers/produce.js';
import * as fetch from './handlers/fetch.js';
import * as offsets from './handlers/offsets.js';
import * as groups from './handlers/groups.js';
import * as admin from './handlers/admin.js';

export interface ProxyConfig {
  nodeId: number;
  host: string;
  port: number;
  /** Address put in Metadata; what clients connect back to. */
  advertisedHost: string;
  advertisedPort: number;
  clusterId: string;
  maxRequestBytes: number;
  autoCreateTopics: boolean;
  defaultPartitions: number;
  /** Stop reading producer sockets while the broker holds more unflushed bytes than this. */
  maxUnflushedBytes: number;
  /** Stop reading producer sockets while the broker's segment-roll backlog is above this. */
  maxRollBacklogBytes: number;
  /** Upper bound on fetches parked at once; beyond it fetches are answered at once. */
  maxParkedFetches: number;
  /**
   * service: one node (this advertised address, SERVICE_NODE_ID) leads everything, for
   * proxies behind one Service; direct: every live proxy is listed and leads a share.
   */
  advertiseMode: 'service' | 'direct';
}

/** The node id every proxy reports in service mode, so that all of them answer alike. */
export const SERVICE_NODE_ID = 0;

export interface ProxyDeps {
  broker: BrokerClient;
  groups: GroupService;
  topics: TopicRegistry;
  bus: Bus;
  log: Logger;
  /** Live proxies (cluster mode, direct advertising). */
  peers?: () => { id: number; host: string; port: number }[];
}

export interface ProxyContext extends ProxyDeps {
  cfg: ProxyConfig;
  hw: HwWatch;
}

export type Handler = (ctx: ProxyContext, req: never, rc: RequestContext) => Promise<object | undefined>;

const HANDLERS = new Map<number, Handler>([
  [ApiKey.ApiVersions, cluster.apiVersions],
  [ApiKey.Metadata, cluster.metadata],
  [ApiKey.DescribeCluster, cluster.describeCluster],
  [ApiKey.FindCoordinator, cluster.findCoordinator],
  [ApiKey.Produce, produce.produce],
  [ApiKey.Fetch, fetch.fetch],
  [ApiKey.ListOffsets, offsets.listOffsets],
  [ApiKey.OffsetForLeaderEpoch, offsets.offsetForLeaderEpoch],
  [ApiKey.DeleteRecords, offsets.deleteRecords],
  [ApiKey.InitProducerId, offsets.initProducerId],
  [ApiKey.JoinGroup, groups.joinGroup],
  [ApiKey.SyncGroup, groups.syncGroup],
  [ApiKey.Heartbeat, groups.heartbeat],
  [ApiKey.LeaveGroup, groups.leaveGroup],
  [ApiKey.OffsetCommit, groups.offsetCommit],
  [ApiKey.OffsetFetch, groups.offsetFetch],
  [ApiKey.DescribeGroups, groups.describeGroups],
  [ApiKey.ListGroups, groups.listGroups],
  [ApiKey.DeleteGroups, groups.deleteGroups],
  [ApiKey.CreateTopics, admin.createTopics],
  [ApiKey.DeleteTopics, admin.deleteTopics],
  [ApiKey.CreatePartitions, admin.createPartitions],
  [ApiKey.DescribeConfigs, admin.describeConfigs],
  [ApiKey.AlterConfigs, admin.alterConfigs],
  [ApiKey.IncrementalAlterConfigs, admin.incrementalAlterConfigs],
]);

export class Proxy {
  private server?: KafkaServer;
  private hw?: HwWatch;
  port = 0;

  constructor(
    private readonly cfg: ProxyConfig,
    private readonly deps: ProxyDeps,
  ) {}

  async start(): Promise<void> {
    const log = this.deps.log.child({ component: 'proxy', nodeId: this.cfg.nodeId });
    this.hw = new HwWatch(this.deps.bus, this.cfg.maxParkedFetches);
    const ctx: ProxyContext = { ...this.deps, log, cfg: this.cfg, hw: this.hw };
    const dispatch: Dispatch = (rc, req) => {
      const h = HANDLERS.get(rc.apiKey)!;
      return h(ctx, req as never, rc);
    };
    this.server = new KafkaServer({
      host: this.cfg.host,
      port: this.cfg.port,
      maxRequestBytes: this.cfg.maxRequestBytes,
      log,
      dispatch,
      overloaded: () =>
        this.deps.broker.unflushedBytes() > this.cfg.maxUnflushedBytes || this.deps.broker.rollBacklogBytes() > this.cfg.maxRollBacklogBytes,
    });
    this.port = await this.server.listen();
    if (this.cfg.advertisedPort === 0) this.cfg.advertisedPort = this.port;
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.hw?.close();
  }
}
