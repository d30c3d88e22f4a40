// `skiff broker`, `skiff proxy` and `skiff cluster`: cluster mode on etcd, NATS and S3.
// A broker owns what the controller assigns it and serves proxies over the Kafka protocol;
// a proxy holds client connections and routes; neither keeps data of its own.
import type { Logger } from 'pino';
import { EtcdMetaStore } from '../meta/etcd-meta-store.js';
import { NatsBus } from '../bus/nats-bus.js';
import { TopicRegistry } from '../meta/topics.js';
import { Keys } from '../meta/keys.js';
import type { Lease, MetaStore } from '../meta/meta-store.js';
import type { Broker } from '../broker/broker.js';
import type { Controller } from '../broker/controller.js';
import type { SlotGroups } from '../broker/slot-groups.js';
import { DeadBrokers } from '../proxy/dead-brokers.js';
import { decodeAssignment, unitOfKey, type Registration } from '../broker/assignments.js';
import { Proxy } from '../proxy/proxy.js';
import { ClusterView } from '../proxy/cluster-view.js';
import { BrokerConnections, RemoteBrokerClient } from '../proxy/remote-broker.js';
import { RemoteGroups } from '../proxy/remote-groups.js';
import { CatchUpReads } from '../proxy/catch-up.js';
import { brokerConfig, clusterId, objectStore, proxyConfig, type Running } from './common.js';
import { startHttp } from './http.js';
import { ConfigError, type Resolved } from './config.js';

const list = (s: unknown) =>
  String(s)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

async function connect(c: Resolved, log: Logger) {
  const meta = await EtcdMetaStore.connect({ hosts: list(c.etcd), logger: log.child({ component: 'etcd' }) });
  const bus = await NatsBus.connect({ servers: list(c.nats), logger: log.child({ component: 'nats' }) });
  return { meta, bus };
}

export interface BrokerProcess extends Running {
  /** SIGTERM: ask to be drained, wait for the partitions to move away, then stop. */
  drain(): Promise<void>;
}

/**
 * Forwards every property to whatever `target()` returns now, so that long-lived parts (the
 * listener, HTTP routes) keep working across broker generations.
 */
function forward<T extends object>(target: () => T): T {
  return new globalThis.Proxy({} as T, {
    get(_, key) {
      const t = target();
      const v = Reflect.get(t, key, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

interface Generation {
  broker: Broker;
  groups: SlotGroups;
  controller: Controller;
}

export async function runBroker(c: Resolved, log: Logger): Promise<BrokerProcess> {
  if (!c.s3Bucket) throw new ConfigError('skiff broker keeps data in S3: set --s3-bucket (SKIFF_S3_BUCKET)');
  // Imported here, not at the top: `skiff proxy` loads this file too and needs none of them.
  const [{ Broker }, { Controller }, { SlotGroups }] = await Promise.all([
    import('../broker/broker.js'),
    import('../broker/controller.js'),
    import('../broker/slot-groups.js'),
  ]);
  const { meta, bus } = await connect(c, log);
  const store = await objectStore(c, '', log);
  const topics = await TopicRegistry.open(meta);
  const id = await clusterId(meta);
  const nodeId = Number(c.nodeId);
  let gen: Generation | undefined;
  let ready = false;
  let stopping = false;

  const newGeneration = (): Generation => {
    const broker = new Broker(brokerConfig(c, 'assigned'), { store, meta, bus, topics, log });
    const groups = new SlotGroups(meta, nodeId, () => broker.registrationLease, log.child({ component: 'groups' }), {
      initialRebalanceDelayMs: Number(c.groupInitialRebalanceDelayMs),
    });
    const controller = new Controller(meta, topics, nodeId, () => broker.registrationLease, log.child({ component: 'controller' }));
    broker.gcAllowed = () => controller.isLeader;
    return { broker, groups, controller };
  };
  // The listener and HTTP outlive generations; their ports go into every registration.
  gen = newGeneration();
  const server = new Proxy(proxyConfig({ ...c, autoCreateTopics: false }, id, 'service'), {
    broker: forward(() => gen!.broker),
    groups: forward(() => gen!.groups),
    topics,
    bus,
    log,
  });
  await server.start();
  const http = await startHttp({
    port: Number(c.httpPort),
    log,
    ready: () => ready && !gen!.broker.isFenced,
    routes: {
      '/v1/partitions': () => gen!.broker.partitions(),
      '/v1/cluster': () => ({ clusterId: id, mode: 'broker', nodeId, controller: gen!.controller.isLeader, groupSlots: gen!.groups.ownedSlots }),
    },
  });
  const advertise = { host: String(c.advertisedHost), port: Number(c.advertisedPort) || server.port, httpPort: http.port };

  const start = async (g: Generation) => {
    g.broker.setAdvertise(advertise);
    g.broker.onFenced = () => void rejoin(g);
    await g.broker.start();
    await g.controller.start();
    await g.groups.start();
  };

  /**
   * A fenced broker holds nothing any more: it drops the generation (no flush, its writes
   * could not commit anyway) and joins again with a new lease, retrying while the metadata
   * store is unreachable. To the cluster it is a broker that restarted.
   */
  const rejoin = async (old: Generation) => {
    if (gen !== old || stopping) return;
    log.error({ nodeId }, 'broker fenced: rejoining with a new registration');
    ready = false;
    await old.controller.close().catch(() => undefined);
    await old.groups.close().catch(() => undefined);
    await old.broker.close().catch(() => undefined);
    for (let attempt = 0; !stopping; attempt++) {
      const next = newGeneration();
      gen = next;
      try {
        await start(next);
        ready = true;
        log.info({ nodeId, attempt }, 'broker rejoined');
        return;
      } catch (err) {
        log.warn({ err, attempt }, 'rejoin failed; retrying');
        await next.controller.close().catch(() => undefined);
        await next.broker.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
      }
    }
  };

  await start(gen);
  ready = true;
  log.info({ clusterId: id, nodeId, kafkaPort: server.port, httpPort: http.port }, 'skiff broker is ready');

  const stop = async () => {
    stopping = true;
    ready = false;
    await gen!.controller.close();
    await gen!.groups.close();
    await server.close();
    await gen!.broker.close();
    await topics.close();
    await http.close();
    await bus.close();
    await meta.close();
    await store.close();
  };
  return {
    kafkaPort: server.port,
    httpPort: http.port,
    stop,
    async drain() {
      ready = false;
      const g = gen!;
      // A leased marker: the controller moves everything off this broker.
      await meta.put(Keys.draining(nodeId), Buffer.from('1'), { lease: g.broker.registrationLease.id });
      // Released at once; clients retry until the controller's reassignment reaches them.
      const released = g.broker.leave().catch((err) => log.warn({ err }, 'releasing partitions failed; they move as reassigned'));
      const deadline = Date.now() + Number(c.drainTimeoutMs);
      const others = async () => (await meta.getPrefix(Keys.brokersPrefix)).length > (await meta.getPrefix(Keys.drainingPrefix)).length;
      while ((g.broker.ownedCount > 0 || g.groups.ownedSlots.length > 0) && Date.now() < deadline && !g.broker.isFenced && (await others())) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await released;
      log.info({ remaining: g.broker.ownedCount, slots: g.groups.ownedSlots.length }, 'drained');
      await stop();
    },
  };
}

export async function runProxy(c: Resolved, log: Logger): Promise<Running> {
  const mode = String(c.advertiseMode);
  if (mode !== 'service' && mode !== 'direct') throw new ConfigError(`--advertise-mode (SKIFF_ADVERTISE_MODE) must be service or direct, got ${JSON.stringify(mode)}`);
  const { meta, bus } = await connect(c, log);
  const topics = await TopicRegistry.open(meta);
  const view = await ClusterView.open(meta);
  const id = await clusterId(meta);
  const nodeId = Number(c.nodeId);
  const dead = new DeadBrokers(meta, log.child({ component: 'dead-brokers' }));
  const connections = new BrokerConnections(`skiff-proxy-${nodeId}`, (reg) => void dead.refused(reg));
  // Catch-up fetches are read from segment objects here (DESIGN.md §3); the object store (and
  // with it the S3 SDK) is opened on the first one, so an idle proxy never loads it.
  const catchUp = c.s3Bucket ? new CatchUpReads(meta, topics, () => objectStore(c, '', log), Number(c.blockCacheBytes), log.child({ component: 'catch-up' })) : undefined;
  const broker = new RemoteBrokerClient(view, topics, connections, log.child({ component: 'remote-broker' }), catchUp);
  const groups = new RemoteGroups(view, connections, log.child({ component: 'remote-groups' }));
  const proxy = new Proxy(proxyConfig(c, id, mode), {
    broker,
    groups,
    topics,
    bus,
    log,
    peers: () => [...view.proxies.values()],
  });
  await proxy.start();
  let ready = false;
  const http = await startHttp({
    port: Number(c.httpPort),
    log,
    ready: () => ready && view.brokers.size > 0,
    routes: { '/v1/cluster': () => ({ clusterId: id, mode: 'proxy', nodeId, brokers: [...view.brokers.values()], proxies: [...view.proxies.values()] }) },
  });
  const ttl = Math.max(1, Number(c.leaseTtlSeconds ?? 5));
  const reg: Registration = { id: nodeId, host: String(c.advertisedHost), port: Number(c.advertisedPort) || proxy.port, httpPort: http.port, startedAt: Date.now() };
  let lease: Lease | undefined;
  let stopping = false;
  // Registration only feeds direct-mode Metadata: a lost lease means registering again, for
  // as long as it takes (etcd may be down), never to stop serving.
  const register = async (): Promise<void> => {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        const l = await meta.grantLease(ttl);
        // A lease whose key was not written is given back, not left to be "lost" later.
        await meta.put(Keys.proxy(nodeId), Buffer.from(JSON.stringify(reg)), { lease: l.id }).catch(async (err: unknown) => {
          await l.revoke().catch(() => undefined);
          throw err;
        });
        lease = l;
        l.onLost(() => void register());
        if (attempt > 0) log.info({ attempt }, 'proxy registered again');
        return;
      } catch (err) {
        log.warn({ err, attempt }, 'proxy registration failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
      }
    }
  };
  await register();
  // In-flight requests to a broker that left fail now, not at the client's timeout.
  view.onChange(() => connections.prune(new Set(view.brokers.keys())));
  ready = true;
  log.info({ clusterId: id, nodeId, kafkaPort: proxy.port, httpPort: http.port, advertiseMode: mode }, 'skiff proxy is ready');
  return {
    kafkaPort: proxy.port,
    httpPort: http.port,
    async stop() {
      ready = false;
      stopping = true;
      await lease?.revoke().catch(() => undefined);
      await proxy.close();
      connections.close();
      await catchUp?.close();
      await view.close();
      await topics.close();
      await http.close();
      await bus.close();
      await meta.close();
    },
  };
}

export interface ClusterStatus {
  clusterId: string | null;
  controller: number | null;
  brokers: (Registration & { draining: boolean })[];
  proxies: Registration[];
  topics: { name: string; id: string; partitions: number }[];
  assignments: { unit: string; topic?: string; partition?: number; slot?: number; broker: number; epoch: number }[];
}

export async function clusterStatus(meta: MetaStore): Promise<ClusterStatus> {
  const parse = <T>(b: Buffer) => JSON.parse(b.toString()) as T;
  const draining = new Set((await meta.getPrefix(Keys.drainingPrefix)).map((kv) => Number(kv.key.slice(Keys.drainingPrefix.length))));
  const topics = (await meta.getPrefix(Keys.topicsPrefix)).map((kv) => parse<{ name: string; id: string; partitions: number }>(kv.value));
  const names = new Map(topics.map((t) => [t.id, t.name]));
  return {
    clusterId: (await meta.get(Keys.cluster))?.value.toString() ?? null,
    controller: ((v) => (v ? Number(v.value.toString()) : null))(await meta.get(Keys.controller)),
    brokers: (await meta.getPrefix(Keys.brokersPrefix)).map((kv) => ({ ...parse<Registration>(kv.value), draining: draining.has(parse<Registration>(kv.value).id) })),
    proxies: (await meta.getPrefix(Keys.proxiesPrefix)).map((kv) => parse<Registration>(kv.value)),
    topics: topics.map((t) => ({ name: t.name, id: t.id, partitions: t.partitions })),
    assignments: (await meta.getPrefix(Keys.assignPrefix)).map((kv) => {
      const unit = unitOfKey(kv.key);
      const a = decodeAssignment(kv.value);
      const cut = unit.lastIndexOf('/');
      const head = unit.slice(0, cut);
      const n = Number(unit.slice(cut + 1));
      return head === '__groups' ? { unit, slot: n, ...a } : { unit, topic: names.get(head) ?? head, partition: n, ...a };
    }),
  };
}

export async function printCluster(c: { etcd: string; json?: boolean }): Promise<void> {
  const meta = await EtcdMetaStore.connect({ hosts: list(c.etcd) });
  try {
    const s = await clusterStatus(meta);
    if (c.json) {
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    console.log(`cluster ${s.clusterId ?? '(none)'}  controller: broker ${s.controller ?? '(none)'}`);
    console.log('\nBROKER\tADDRESS\tHTTP\tPARTITIONS\tSLOTS\tDRAINING');
    for (const b of s.brokers) {
      const mine = s.assignments.filter((a) => a.broker === b.id);
      console.log([b.id, `${b.host}:${b.port}`, b.httpPort, mine.filter((a) => a.slot === undefined).length, mine.filter((a) => a.slot !== undefined).length, b.draining].join('\t'));
    }
    console.log('\nPROXY\tADDRESS\tHTTP');
    for (const p of s.proxies) console.log([p.id, `${p.host}:${p.port}`, p.httpPort].join('\t'));
    // Partition states come from each broker's HTTP endpoint; an unreachable one shows '?'.
    const states = new Map<string, { state: string; highWatermark: number }>();
    await Promise.all(
      s.brokers.map(async (b) => {
        try {
          const res = await fetch(`http://${b.host}:${b.httpPort}/v1/partitions`, { signal: AbortSignal.timeout(2000) });
          for (const p of (await res.json()) as { topic: string; partition: number; state: string; highWatermark: number }[]) states.set(`${p.topic}/${p.partition}`, p);
        } catch {
          // not reachable from here
        }
      }),
    );
    console.log('\nTOPIC\tPARTITION\tBROKER\tEPOCH\tSTATE\tHIGH-WATERMARK');
    for (const a of s.assignments.filter((x) => x.slot === undefined)) {
      const st = states.get(`${a.topic}/${a.partition}`);
      console.log([a.topic, a.partition, a.broker, a.epoch, st?.state ?? '?', st?.highWatermark ?? '?'].join('\t'));
    }
  } finally {
    await meta.close();
  }
}
