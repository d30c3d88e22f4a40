// What the process kinds share: the cluster id, the object store and the settings each
// component takes. Apart from dev.ts so that `skiff proxy` loads none of the broker's modules.
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { FsObjectStore } from '../storage/fs-object-store.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { MetaStore } from '../meta/meta-store.js';
import { Keys } from '../meta/keys.js';
import type { BrokerConfig } from '../broker/broker.js';
import type { ProxyConfig } from '../proxy/proxy.js';
import type { Resolved } from './config.js';

/** The cluster id is made once and kept in the metadata store, so every restart reports the same. */
export async function clusterId(meta: MetaStore): Promise<string> {
  const fresh = randomUUID().replace(/-/g, '').slice(0, 22);
  await meta.txn([{ key: Keys.cluster, target: 'exists', value: false }], [{ type: 'put', key: Keys.cluster, value: Buffer.from(fresh) }]);
  const kv = await meta.get(Keys.cluster);
  return kv!.value.toString();
}

/** The local directory store, or S3 when a bucket is configured. */
export async function objectStore(c: Resolved, dataDir: string, log: Logger): Promise<ObjectStore> {
  if (!c.s3Bucket) return new FsObjectStore(join(dataDir, 'objects'));
  // Loaded only when used: the AWS SDK is a large share of a process's memory.
  const { S3ObjectStore } = await import('../storage/s3-object-store.js');
  const s3 = new S3ObjectStore({
    endpoint: String(c.s3Endpoint) || undefined,
    region: String(c.s3Region),
    bucket: String(c.s3Bucket),
    accessKeyId: String(c.s3AccessKeyId) || undefined,
    secretAccessKey: String(c.s3SecretAccessKey) || undefined,
    forcePathStyle: Boolean(c.s3PathStyle),
    prefix: String(c.s3Prefix) || undefined,
    logger: log.child({ component: 's3' }),
  });
  await s3.ensureBucket();
  return s3;
}

export function brokerConfig(c: Resolved, ownership: BrokerConfig['ownership'], advertise?: BrokerConfig['advertise']): BrokerConfig {
  return {
    brokerId: Number(c.nodeId),
    flushMs: Number(c.flushMs),
    flushBytes: Number(c.flushBytes),
    flushMaxInflight: Math.max(1, Number(c.flushMaxInflight)),
    flushMinMs: Number(c.flushMinMs),
    // The local store's writes are its own disk's: a second copy would wait on the same disk.
    putHedgeMs: c.s3Bucket ? Number(c.putHedgeMs) : 0,
    checkpointMs: Math.max(100, Number(c.checkpointMs)),
    cacheBytes: Number(c.cacheBytes),
    blockCacheBytes: Number(c.blockCacheBytes),
    maxMessageBytes: Number(c.maxMessageBytes),
    leaseTtlSeconds: Math.max(1, Number(c.leaseTtlSeconds)),
    segmentBlockBytes: Math.max(4096, Number(c.segmentBlockBytes)),
    maintenanceMs: Math.max(10, Number(c.maintenanceMs)),
    gcIntervalMs: Number(c.gcIntervalMs),
    gcGraceMs: Number(c.gcGraceMs),
    ownership,
    advertise,
  };
}

export function proxyConfig(c: Resolved, clusterId: string, advertiseMode: ProxyConfig['advertiseMode']): ProxyConfig {
  return {
    nodeId: Number(c.nodeId),
    host: String(c.host),
    port: Number(c.port),
    advertisedHost: String(c.advertisedHost),
    advertisedPort: Number(c.advertisedPort),
    clusterId,
    maxRequestBytes: Number(c.maxRequestBytes),
    autoCreateTopics: Boolean(c.autoCreateTopics ?? false),
    defaultPartitions: Math.max(1, Number(c.defaultPartitions ?? 1)),
    maxUnflushedBytes: Number(c.maxUnflushedBytes ?? Number.MAX_SAFE_INTEGER),
    maxRollBacklogBytes: Number(c.maxRollBacklogBytes ?? Number.MAX_SAFE_INTEGER),
    maxParkedFetches: Number(c.maxParkedFetches ?? 10_000),
    advertiseMode,
  };
}

export interface Running {
  kafkaPort: number;
  httpPort: number;
  stop(): Promise<void>;
}
