// Every setting Skiff has, in one table: its flag, its SKIFF_* variable, its default and what
// it does. Flags win over variables, variables over defaults. The README's configuration
// table is printed from here (`skiff config --markdown`), so the two cannot drift.
import { Command, Option } from 'commander';

type Kind = 'string' | 'int' | 'bool';

export interface Setting {
  key: string;
  kind: Kind;
  default: string;
  doc: string;
  /** Which commands take it. */
  scope: ('dev' | 'broker' | 'proxy')[];
}

const ALL: Setting['scope'] = ['dev', 'broker', 'proxy'];
const DEV_BROKER: Setting['scope'] = ['dev', 'broker'];
const DEV_PROXY: Setting['scope'] = ['dev', 'proxy'];
const CLUSTER: Setting['scope'] = ['broker', 'proxy'];

export const SETTINGS: Setting[] = [
  { key: 'data-dir', kind: 'string', default: './data', doc: 'Embedded mode: directory for objects and the metadata log.', scope: ['dev'] },
  { key: 's3-endpoint', kind: 'string', default: '', doc: 'S3 API endpoint (MinIO, s3rver, …); empty with --s3-bucket set means AWS. Empty bucket: local directory store.', scope: ALL },
  { key: 's3-bucket', kind: 'string', default: '', doc: 'Bucket for all objects; set it to store data in S3 instead of --data-dir. Proxies read catch-up fetches from it (unset: brokers serve every fetch).', scope: ALL },
  { key: 's3-region', kind: 'string', default: 'us-east-1', doc: 'S3 region.', scope: ALL },
  { key: 's3-access-key-id', kind: 'string', default: '', doc: "S3 access key; empty uses the SDK's default credential chain.", scope: ALL },
  { key: 's3-secret-access-key', kind: 'string', default: '', doc: 'S3 secret key.', scope: ALL },
  { key: 's3-path-style', kind: 'bool', default: 'true', doc: 'Path-style addressing (needed by MinIO and s3rver).', scope: ALL },
  { key: 's3-prefix', kind: 'string', default: '', doc: 'Key prefix, so several clusters can share a bucket.', scope: ALL },
  { key: 'etcd', kind: 'string', default: 'http://127.0.0.1:2379', doc: 'Cluster mode: etcd endpoints, comma-separated.', scope: CLUSTER },
  { key: 'nats', kind: 'string', default: 'nats://127.0.0.1:4222', doc: 'Cluster mode: NATS server URLs, comma-separated.', scope: CLUSTER },
  { key: 'advertise-mode', kind: 'string', default: 'service', doc: 'Proxy: "service" (one address fronts all proxies) or "direct" (every proxy listed with its own id).', scope: ['proxy'] },
  { key: 'host', kind: 'string', default: '0.0.0.0', doc: 'Address the Kafka listener binds.', scope: ALL },
  { key: 'port', kind: 'int', default: '9092', doc: 'Port of the Kafka listener.', scope: ALL },
  { key: 'advertised-host', kind: 'string', default: 'localhost', doc: 'Host put in Metadata responses: what clients connect back to.', scope: ALL },
  { key: 'advertised-port', kind: 'int', default: '0', doc: 'Port put in Metadata responses; 0 means the listener port.', scope: ALL },
  { key: 'http-port', kind: 'int', default: '9644', doc: 'Port of the HTTP endpoint: /metrics, /healthz, /readyz, /v1/partitions.', scope: ALL },
  { key: 'drain-timeout-ms', kind: 'int', default: '15000', doc: 'Broker: on SIGTERM, how long to wait for partitions to move away before closing anyway.', scope: ['broker'] },
  { key: 'node-id', kind: 'int', default: '0', doc: 'Node id of this process (proxy id in Metadata, broker id in storage keys).', scope: ALL },
  { key: 'auto-create-topics', kind: 'bool', default: 'true', doc: 'Create a topic on first use by Metadata or Produce.', scope: DEV_PROXY },
  { key: 'default-partitions', kind: 'int', default: '1', doc: 'Partitions of auto-created topics and of CreateTopics with -1.', scope: DEV_PROXY },
  { key: 'max-request-bytes', kind: 'int', default: '104857600', doc: 'Largest request frame accepted (socket.request.max.bytes); larger closes the connection.', scope: ALL },
  { key: 'max-unflushed-bytes', kind: 'int', default: '67108864', doc: 'Stop reading producer sockets while more bytes than this wait for a flush.', scope: DEV_BROKER },
  { key: 'max-roll-backlog-bytes', kind: 'int', default: '134217728', doc: 'Stop reading producer sockets while partitions hold more WAL data than this beyond a full segment each, waiting to be rolled: under sustained load segments then keep up, and roll from the tail cache.', scope: DEV_BROKER },
  { key: 'max-parked-fetches', kind: 'int', default: '10000', doc: 'Fetches that may wait for data at once; beyond it they are answered at once.', scope: DEV_PROXY },
  { key: 'flush-ms', kind: 'int', default: '10', doc: 'Longest time a produced batch waits before its WAL object is written. Each WAL object is one PUT on S3: see Object storage requests.', scope: DEV_BROKER },
  { key: 'flush-bytes', kind: 'int', default: '8388608', doc: 'Write a WAL object as soon as this many bytes are pending.', scope: DEV_BROKER },
  { key: 'flush-max-inflight', kind: 'int', default: '8', doc: 'WAL object writes in flight at once (commits stay in order).', scope: DEV_BROKER },
  { key: 'put-hedge-ms', kind: 'int', default: '500', doc: 'S3: a WAL object not written after this long (or 4 × the median of recent writes, if more) is written again under a second key, and the copy that lands first is committed: one slow PUT no longer holds every later acknowledgement. 0 disables; the local store never hedges.', scope: DEV_BROKER },
  { key: 'flush-min-ms', kind: 'int', default: '5', doc: 'Adaptive batching: with no WAL object being written, flush once this long after the previous flush began instead of waiting for flush-ms (objects then grow with the load). A value of flush-ms or more keeps the plain timer.', scope: DEV_BROKER },
  { key: 'checkpoint-ms', kind: 'int', default: '10000', doc: 'How often changed partitions write their checkpoint.', scope: DEV_BROKER },
  { key: 'cache-bytes', kind: 'int', default: '268435456', doc: 'Memory for recently committed batches (tail reads). Segments roll at half of it at most, so that rolls read no batch back.', scope: DEV_BROKER },
  { key: 'block-cache-bytes', kind: 'int', default: '67108864', doc: 'Memory for ranges read back from object storage (catch-up reads; a proxy fills it only while serving them).', scope: ALL },
  { key: 'max-message-bytes', kind: 'int', default: '104857600', doc: 'Broker-wide cap on one partition record set; topics cap lower with max.message.bytes.', scope: DEV_BROKER },
  { key: 'lease-ttl-seconds', kind: 'int', default: '5', doc: 'Lease of broker registrations and partition locks.', scope: DEV_BROKER },
  { key: 'segment-block-bytes', kind: 'int', default: '1048576', doc: 'Verified read unit inside segment objects (sparse index granularity).', scope: DEV_BROKER },
  { key: 'maintenance-ms', kind: 'int', default: '1000', doc: 'How often partitions are checked for segment rolling and retention.', scope: DEV_BROKER },
  { key: 'gc-interval-ms', kind: 'int', default: '60000', doc: 'How often unreferenced objects (rolled WAL objects, orphans) are deleted; 0 disables.', scope: DEV_BROKER },
  { key: 'gc-grace-ms', kind: 'int', default: '600000', doc: 'Unreferenced objects younger than this are kept (a write may be about to commit).', scope: DEV_BROKER },
  { key: 'group-initial-rebalance-delay-ms', kind: 'int', default: '3000', doc: 'Wait for more members before the first rebalance of a new group.', scope: DEV_BROKER },
  { key: 'log-level', kind: 'string', default: 'info', doc: 'pino log level: trace, debug, info, warn, error.', scope: ALL },
];

export const envName = (key: string) => `SKIFF_${key.toUpperCase().replace(/-/g, '_')}`;

const camel = (key: string) => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Adds the settings of `scope` to a command as options with env fallbacks. */
export function addSettings(cmd: Command, scope: Setting['scope'][number]): Command {
  for (const s of SETTINGS.filter((x) => x.scope.includes(scope))) {
    const flag = s.kind === 'bool' ? `--${s.key} <true|false>` : `--${s.key} <${s.kind === 'int' ? 'n' : 'value'}>`;
    cmd.addOption(new Option(flag, s.doc).env(envName(s.key)).default(s.default));
  }
  return cmd;
}

export type Resolved = Record<string, string | number | boolean>;

/** Parses and validates option values; invalid values are errors, not silent defaults. */
export function resolveSettings(opts: Record<string, string>, scope: Setting['scope'][number]): Resolved {
  const out: Resolved = {};
  for (const s of SETTINGS.filter((x) => x.scope.includes(scope))) {
    const raw = String(opts[camel(s.key)] ?? s.default);
    if (s.kind === 'int') {
      if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw)) || Number(raw) < 0) {
        throw new ConfigError(`--${s.key} (${envName(s.key)}) must be a non-negative integer, got ${JSON.stringify(raw)}`);
      }
      out[camel(s.key)] = Number(raw);
    } else if (s.kind === 'bool') {
      if (raw !== 'true' && raw !== 'false') throw new ConfigError(`--${s.key} (${envName(s.key)}) must be true or false, got ${JSON.stringify(raw)}`);
      out[camel(s.key)] = raw === 'true';
    } else {
      out[camel(s.key)] = raw;
    }
  }
  return out;
}

export function settingsMarkdown(): string {
  const rows = SETTINGS.map((s) => `| \`--${s.key}\` | \`${envName(s.key)}\` | \`${s.default}\` | ${s.scope.join(', ')} | ${s.doc} |`);
  return ['| flag | variable | default | commands | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
