// `skiff dev`, the embedded default: proxy, broker, controller and group coordinator in one
// process, on the local-directory object store, the embedded metadata store and the
// in-process bus. Same code paths as cluster mode; only the adapters differ.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EmbeddedMetaStore } from '../meta/embedded-meta-store.js';
import { LocalBus } from '../bus/local-bus.js';
import { TopicRegistry } from '../meta/topics.js';
import { Broker } from '../broker/broker.js';
import { GroupCoordinator } from '../broker/group-coordinator.js';
import { Proxy } from '../proxy/proxy.js';
import { startHttp } from './http.js';
import type { Resolved } from './config.js';
import { brokerConfig, clusterId, objectStore, proxyConfig, type Running } from './common.js';

export type { Running };

export async function runDev(c: Resolved, log: Logger): Promise<Running> {
  const dataDir = String(c.dataDir);
  const store = await objectStore(c, dataDir, log);
  const meta = await EmbeddedMetaStore.open(join(dataDir, 'meta', 'meta.log'));
  const bus = new LocalBus();
  const topics = await TopicRegistry.open(meta);
  const id = await clusterId(meta);
  const nodeId = Number(c.nodeId);
  const broker = new Broker(brokerConfig(c, 'all'),
    { store, meta, bus, topics, log },
  );
  await broker.start();
  const groups = new GroupCoordinator({ meta, log: log.child({ component: 'groups' }), initialRebalanceDelayMs: Number(c.groupInitialRebalanceDelayMs) });
  await groups.loadGroups();
  const proxy = new Proxy(proxyConfig(c, id, 'service'),
    { broker, groups, topics, bus, log },
  );
  await proxy.start();
  let ready = true;
  const httpServer = await startHttp({
    port: Number(c.httpPort),
    log,
    ready: () => ready,
    routes: {
      '/v1/partitions': () => broker.partitions(),
      '/v1/topics': () => topics.list(),
      '/v1/cluster': () => ({ clusterId: id, mode: 'embedded', nodeId, kafkaPort: proxy.port }),
    },
  });
  log.info({ clusterId: id, kafkaPort: proxy.port, httpPort: httpServer.port, dataDir }, 'skiff dev is ready');
  return {
    kafkaPort: proxy.port,
    httpPort: httpServer.port,
    async stop() {
      ready = false;
      await proxy.close();
      await groups.close();
      await broker.close();
      await topics.close();
      await httpServer.close();
      await bus.close();
      await meta.close();
      await store.close();
    },
  };
}
