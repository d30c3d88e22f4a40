// A real Skiff cluster for the end-to-end tests (DESIGN.md §2 "Cluster", §5): etcd,
// nats-server and s3rver on free loopback ports (test/support/servers.ts), then broker and
// proxy processes of the built CLI, each on ports it keeps across restarts, ready when it logs its ready line.
// Handles let a test signal, kill and restart any process, read `skiff cluster --json` and a
// broker's /v1/partitions, and tell expected exits from crashes. stop() tears everything
// down, also after a failed test.

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, writeFileSync, type WriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd, startNats, startS3, type EtcdServer, type NatsServer, type S3Server } from '../../test/support/servers.js';
import { GROUPS_UNIT, slotOf } from '../../services/broker/assignments.js';
import { JsonTail, readTopic, type Row } from '../support/crash.js';
import { Proc, PYTHON, run } from '../support/procs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SKIFF_MAIN = path.join(ROOT, 'dist', 'services', 'cli', 'main.js');
/** The `skiff` command users run: Node with Skiff's heap flags, exec'd (the same pid). */
export const SKIFF_BIN = path.join(ROOT, 'bin', 'skiff');
/** Directory of this folder's python scripts. */
export const CLUSTER_PY_DIR = path.dirname(fileURLToPath(import.meta.url));

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const BUCKET = 'skiff-e2e';

export type Role = 'broker' | 'proxy';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ClusterOptions {
  brokers?: number;
  proxies?: number;
  leaseTtlSeconds?: number;
  /** How proxies advertise themselves in Metadata; 'direct' lists each proxy (DESIGN.md §5). */
  advertiseMode?: 'service' | 'direct';
  /** Extra flags for every broker / proxy. */
  brokerArgs?: string[];
  proxyArgs?: string[];
}

/** One partition (or coordinator slot) as `skiff cluster --json` assigns it. */
export interface Assignment {
  /** Topic name, or `__groups` for a group-coordinator slot (then `partition` is the slot). */
  topic: string;
  topicId?: string;
  partition: number;
  broker: number;
  epoch?: number;
}

/** `skiff cluster --json`, normalised; `raw` is the document as printed. */
export interface ClusterView {
  brokers: number[];
  proxies: number[];
  controller: number | null;
  assignments: Assignment[];
  raw: unknown;
}

export interface PartitionRow {
  topic: string;
  topicId?: string;
  partition: number;
  state: string;
  highWatermark: number;
  logStartOffset: number;
  leaderEpoch?: number;
  [k: string]: unknown;
}

export class ClusterStartError extends Error {
  constructor(what: string, reason: string, output: string) {
    super(`${what} did not start: ${reason}\n--- output ---\n${output.slice(-6000)}`);
    this.name = 'ClusterStartError';
  }
}

const everyChild = new Set<ChildProcess>();
// A test run torn down without its afterAll must not leave Skiff processes behind.
process.once('exit', () => {
  for (const c of everyChild) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
  }
});

type LineWaiter = { match: (rec: Record<string, unknown>, line: string) => boolean; resolve: (line: string) => void; reject: (e: Error) => void };

/** A broker or proxy process of the cluster, which keeps its id and ports across restarts. */
export class ClusterProc {
  private child: ChildProcess | undefined;
  private output = '';
  private partial = '';
  private exitedP: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private waiters = new Set<LineWaiter>();
  private expectedExit = false;
  private logFile: WriteStream | undefined;
  /** Every exit so far, with whether the test asked for it (kill/stop) or not. */
  readonly exits: Array<ExitInfo & { expected: boolean; pid: number | undefined; at: number }> = [];
  /** Parsed log records of every run, oldest first. */
  readonly records: Array<Record<string, unknown>> = [];
  exitInfo: ExitInfo | null = null;
  startedAt = 0;
  /** Index in `records` where the current run's records begin. */
  private runFrom = 0;

  constructor(
    readonly role: Role,
    readonly nodeId: number,
    readonly kafkaPort: number,
    readonly httpPort: number,
    private readonly args: string[],
    private readonly logPath: string,
  ) {}

  get name(): string {
    return `${this.role}-${this.nodeId}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitInfo === null;
  }

  /** Everything every run of this process wrote on stdout and stderr. */
  logs(): string {
    return this.output;
  }

  /** Sends a signal. SIGKILL, SIGTERM and SIGINT mark the coming exit as expected. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.running) return;
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') this.expectedExit = true;
    this.child!.kill(signal);
  }

  /** Resolves with how the current (or last) run ended; rejects after timeoutMs. */
  waitExit(timeoutMs = 30_000): Promise<ExitInfo> {
    if (!this.running) return this.exitedP;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms\n${this.output.slice(-3000)}`)), timeoutMs);
      this.exitedP.then((e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });
  }

  /** Starts the process again (stopping it first with SIGKILL if it still runs), same id and ports. */
  async restart(): Promise<void> {
    if (this.running) {
      this.kill('SIGCONT');
      this.kill('SIGKILL');
      await this.exitedP;
    }
    await this.start();
  }

  /** Resolves on the first log record (already seen in this run, or still to come) that matches. */
  waitForLog(match: (rec: Record<string, unknown>, line: string) => boolean, timeoutMs: number, what = 'a matching log line'): Promise<string> {
    for (const rec of this.records.slice(this.runFrom)) if (match(rec, JSON.stringify(rec))) return Promise.resolve(JSON.stringify(rec));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n--- log tail ---\n${this.output.slice(-4000)}`));
      }, timeoutMs);
      const w: LineWaiter = {
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.add(w);
    });
  }

  /** GET on its HTTP endpoint, parsed as JSON. */
  async http<T = unknown>(pathname: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}${pathname}`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`${this.name} GET ${pathname}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  /** Spawns the process and resolves once it logged its ready line. */
  start(): Promise<void> {
    const readyMsg = `skiff ${this.role} is ready`;
    this.exitInfo = null;
    this.expectedExit = false;
    this.partial = '';
    this.runFrom = this.records.length;
    this.logFile ??= createWriteStream(this.logPath, { flags: 'a' });
    const child = spawn(SKIFF_BIN, [this.role, ...this.args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.startedAt = Date.now();
    everyChild.add(child);
    this.note(`--- ${this.name} started, pid ${child.pid}: ${this.role} ${this.args.join(' ')} ---`);
    this.exitedP = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        everyChild.delete(child);
        if (this.partial) this.onLine(this.partial);
        this.partial = '';
        const info = { code, signal };
        this.exitInfo = info;
        this.exits.push({ ...info, expected: this.expectedExit, pid: child.pid, at: Date.now() });
        this.note(`--- ${this.name} pid ${child.pid} exited: ${code ?? signal}${this.expectedExit ? '' : ' (unexpected)'} ---`);
        for (const w of this.waiters) w.reject(new Error(`${this.name} exited (${code ?? signal}) while a log line was awaited\n${this.output.slice(-4000)}`));
        this.waiters.clear();
        resolve(info);
      });
    });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        child.kill('SIGKILL');
        reject(new ClusterStartError(this.name, `no "${readyMsg}" line within ${READY_TIMEOUT_MS} ms`, this.output));
      }, READY_TIMEOUT_MS);
      child.on('error', (e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new ClusterStartError(this.name, `spawn failed: ${e.message}`, this.output));
      });
      this.exitedP.then((e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new ClusterStartError(this.name, `exited with ${e.code ?? e.signal} before it was ready`, this.output));
      });
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (s: string) => this.append(s));
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (s: string) => {
        this.append(s);
        const lines = (this.partial + s).split('\n');
        this.partial = lines.pop() ?? '';
        for (const line of lines) this.onLine(line);
      });
      this.waitForLog((r) => r.msg === readyMsg, READY_TIMEOUT_MS + 1000, 'ready line').then(
        () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve();
        },
        () => {},
      );
    });
  }

  private onLine(line: string): void {
    if (!line.startsWith('{')) return;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    rec.pid ??= this.child?.pid;
    this.records.push(rec);
    for (const w of [...this.waiters]) {
      if (w.match(rec, line)) {
        this.waiters.delete(w);
        w.resolve(line);
      }
    }
  }

  private append(s: string): void {
    this.output += s;
    // Memory stays bounded; the file keeps everything.
    if (this.output.length > 4_000_000) this.output = this.output.slice(-2_000_000);
    this.logFile?.write(s);
  }

  private note(s: string): void {
    this.append(`${s}\n`);
  }

  /** Teardown: SIGCONT (a stopped process cannot die gracefully) then SIGKILL. */
  async dispose(): Promise<void> {
    if (this.running) {
      this.expectedExit = true;
      this.child!.kill('SIGCONT');
      this.child!.kill('SIGKILL');
      await Promise.race([this.exitedP, new Promise((r) => setTimeout(r, STOP_TIMEOUT_MS))]);
    }
    await new Promise<void>((r) => (this.logFile ? this.logFile.end(() => r()) : r()));
    this.logFile = undefined;
  }
}

export interface Cluster {
  etcd: EtcdServer;
  nats: NatsServer;
  s3: S3Server;
  brokers: ClusterProc[];
  proxies: ClusterProc[];
  /** Proxy addresses, comma-separated: what Kafka clients are given. */
  bootstrap: string;
  /** Where the processes' logs are written. */
  dir: string;
  /** Starts one more broker (next node id) and resolves once it is ready. */
  addBroker(): Promise<ClusterProc>;
  /** `skiff cluster --etcd … --json`, normalised. */
  cluster(): Promise<ClusterView>;
  /** A broker's /v1/partitions. */
  partitions(broker: ClusterProc): Promise<PartitionRow[]>;
  /** Processes that exited without the test having killed them: [] when nothing crashed. */
  crashes(since?: number): string[];
  /** Throws, naming each one and its last error log line, if a process exited unasked (except those named). */
  assertNoCrashes(except?: ClusterProc[]): void;
  /** What an orchestrator does: starts again every broker and proxy that is not running. Returns their names. */
  restartDead(): Promise<string[]>;
  /** The last `lines` lines of every process's log, for failure messages. */
  logTail(lines?: number): string;
  broker(nodeId: number): ClusterProc;
  /** Kills everything and removes the data; logs are kept when keepLogs (or SKIFF_E2E_KEEP_LOGS) is set. */
  stop(opts?: { keepLogs?: boolean }): Promise<void>;
}

export const BROKER_ID_BASE = 1;
export const PROXY_ID_BASE = 101;

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  if (!existsSync(SKIFF_MAIN)) throw new Error(`${SKIFF_MAIN} is missing: run \`npm run build\` first`);
  const nBrokers = opts.brokers ?? 3;
  const nProxies = opts.proxies ?? 2;
  const ttl = opts.leaseTtlSeconds ?? 2;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skiff-cluster-'));
  const cleanups: Array<() => Promise<void>> = [];
  const procs: ClusterProc[] = [];
  const brokers: ClusterProc[] = [];
  const proxies: ClusterProc[] = [];

  let etcdEndpoint: string | undefined;
  const stop = async (o: { keepLogs?: boolean } = {}): Promise<void> => {
    if ((o.keepLogs || process.env.SKIFF_E2E_KEEP_LOGS) && etcdEndpoint) await dumpEtcd(etcdEndpoint, path.join(dir, 'etcd-dump.txt'));
    await Promise.allSettled(procs.map((p) => p.dispose()));
    await Promise.allSettled(cleanups.splice(0).map((f) => f()));
    if (o.keepLogs || process.env.SKIFF_E2E_KEEP_LOGS) {
      console.log(`cluster logs kept in ${dir}`);
    } else {
      await rm(dir, { recursive: true, force: true });
    }
  };

  try {
    const [etcd, nats, s3] = await Promise.all([startEtcd(), startNats(), startS3({ childProcess: true })]);
    cleanups.push(() => etcd.stop(), () => nats.stop(), () => s3.stop());
    etcdEndpoint = etcd.endpoint;
    await createBucket(s3);

    const common = (nodeId: number, kafkaPort: number, httpPort: number) => [
      '--node-id', String(nodeId),
      '--etcd', etcd.endpoints.join(','),
      '--nats', nats.url,
      '--host', '127.0.0.1',
      '--port', String(kafkaPort),
      '--advertised-host', '127.0.0.1',
      '--advertised-port', String(kafkaPort),
      '--http-port', String(httpPort),
    ];
    const s3Args = [
      '--s3-endpoint', s3.endpoint,
      '--s3-bucket', BUCKET,
      '--s3-region', s3.region,
      '--s3-access-key-id', s3.accessKeyId,
      '--s3-secret-access-key', s3.secretAccessKey,
      '--s3-path-style', 'true',
    ];
    const twoPorts = async (): Promise<[number, number]> => [await stablePort(), await stablePort()];
    const makeBroker = async (nodeId: number): Promise<ClusterProc> => {
      const [kafkaPort, httpPort] = await twoPorts();
      const args = [...common(nodeId, kafkaPort, httpPort), ...s3Args, '--lease-ttl-seconds', String(ttl), '--group-initial-rebalance-delay-ms', '500', ...(opts.brokerArgs ?? [])];
      const p = new ClusterProc('broker', nodeId, kafkaPort, httpPort, args, path.join(dir, `broker-${nodeId}.log`));
      procs.push(p);
      return p;
    };
    const makeProxy = async (nodeId: number): Promise<ClusterProc> => {
      const [kafkaPort, httpPort] = await twoPorts();
      // Proxies get the bucket too: they serve catch-up fetches from segment objects.
      const args = [...common(nodeId, kafkaPort, httpPort), ...s3Args, '--advertise-mode', opts.advertiseMode ?? 'direct', ...(opts.proxyArgs ?? [])];
      const p = new ClusterProc('proxy', nodeId, kafkaPort, httpPort, args, path.join(dir, `proxy-${nodeId}.log`));
      procs.push(p);
      return p;
    };

    for (let i = 0; i < nBrokers; i++) brokers.push(await makeBroker(BROKER_ID_BASE + i));
    for (let i = 0; i < nProxies; i++) proxies.push(await makeProxy(PROXY_ID_BASE + i));
    await Promise.all(brokers.map((b) => b.start()));
    await Promise.all(proxies.map((p) => p.start()));

    const cluster: Cluster = {
      etcd,
      nats,
      s3,
      brokers,
      proxies,
      bootstrap: proxies.map((p) => `127.0.0.1:${p.kafkaPort}`).join(','),
      dir,
      async addBroker() {
        const nextId = Math.max(BROKER_ID_BASE - 1, ...brokers.map((b) => b.nodeId)) + 1;
        const b = await makeBroker(nextId);
        brokers.push(b);
        await b.start();
        return b;
      },
      async cluster() {
        const r = await run(process.execPath, [SKIFF_MAIN, 'cluster', '--etcd', etcd.endpoints.join(','), '--json'], { cwd: ROOT, timeoutMs: 15_000 });
        if (r.code !== 0 || r.timedOut) throw new Error(`skiff cluster --json ${r.timedOut ? 'timed out' : `exited with ${r.code}`}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
        let raw: unknown;
        try {
          raw = JSON.parse(r.stdout);
        } catch {
          throw new Error(`skiff cluster --json printed no JSON:\n${r.stdout.slice(0, 2000)}`);
        }
        return normaliseCluster(raw);
      },
      async partitions(broker) {
        return broker.http<PartitionRow[]>('/v1/partitions');
      },
      crashes(since = 0) {
        const out: string[] = [];
        for (const p of procs) {
          for (const e of p.exits) if (!e.expected && e.at >= since) out.push(`${p.name} (pid ${e.pid}) exited with ${e.code ?? e.signal}`);
        }
        return out;
      },
      assertNoCrashes(except = []) {
        const bad = procs.filter((p) => !except.includes(p) && p.exits.some((e) => !e.expected));
        if (bad.length === 0) return;
        throw new Error(
          'Skiff processes exited unasked:\n' +
            bad
              .map((p) => {
                const e = p.exits.find((x) => !x.expected)!;
                const errs = p.records.filter((r) => Number(r.level) >= 50).slice(-2);
                const said = errs.map((r) => `${String(r.msg)}${r.err ? ` (${(r.err as { message?: string }).message})` : ''}`).join(' / ');
                return `  ${p.name} exited with ${e.code ?? e.signal}; last error logs: ${said || 'none'}`;
              })
              .join('\n'),
        );
      },
      async restartDead() {
        const dead = procs.filter((p) => !p.running);
        await Promise.all(dead.map((p) => p.restart()));
        return dead.map((p) => p.name);
      },
      logTail(lines = 30) {
        return procs.map((p) => `--- ${p.name} ---\n${p.logs().split('\n').slice(-lines).join('\n')}`).join('\n');
      },
      broker(nodeId) {
        const b = brokers.find((x) => x.nodeId === nodeId);
        if (!b) throw new Error(`no broker ${nodeId} (have ${brokers.map((x) => x.nodeId).join(', ')})`);
        return b;
      },
      stop,
    };
    return cluster;
  } catch (err) {
    await stop({ keepLogs: true });
    throw err;
  }
}

/** Every key under /skiff/ with its value (commit records shortened), for a post-mortem. */
async function dumpEtcd(endpoint: string, file: string): Promise<void> {
  try {
    const prefix = Buffer.from('/skiff/');
    const end = Buffer.from('/skiff0');
    const res = await fetch(`${endpoint}/v3/kv/range`, {
      method: 'POST',
      body: JSON.stringify({ key: prefix.toString('base64'), range_end: end.toString('base64') }),
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as { kvs?: Array<{ key: string; value?: string; lease?: string; mod_revision?: string }> };
    const lines = (body.kvs ?? []).map((kv) => {
      const key = Buffer.from(kv.key, 'base64').toString();
      const value = Buffer.from(kv.value ?? '', 'base64').toString('latin1');
      return `${key} rev=${kv.mod_revision ?? '?'} lease=${kv.lease ?? '0'} ${key.startsWith('/skiff/wal/') ? `(${value.length} bytes)` : value.slice(0, 300)}`;
    });
    writeFileSync(file, lines.join('\n') + '\n');
  } catch {
    // etcd is paused or gone: nothing to dump
  }
}

const PORT_LOW = 20_000;
const PORT_HIGH = 32_000;
const handedOut = new Set<number>();

/**
 * A port for a Skiff process to keep across restarts. It comes from below the kernel's
 * ephemeral range (32768+ here), so that no outgoing connection can take it between the
 * check and the process binding it, and it is free on every interface (the HTTP endpoint
 * binds 0.0.0.0).
 */
async function stablePort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW));
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${PORT_LOW}-${PORT_HIGH}`);
}

async function createBucket(s3: S3Server): Promise<void> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  } finally {
    client.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// `skiff cluster --json` (services/cli/cluster.ts, ClusterStatus) → ClusterView. Read strictly:
// a change of shape fails the tests with the document in the message, rather than letting a
// lenient reader see an empty cluster.

export class ClusterOutputError extends Error {
  constructor(why: string, raw: unknown) {
    super(`skiff cluster --json: ${why}\n${JSON.stringify(raw).slice(0, 2000)}`);
    this.name = 'ClusterOutputError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

export function normaliseCluster(raw: unknown): ClusterView {
  if (!isObj(raw)) throw new ClusterOutputError('not an object', raw);
  const idList = (k: string): number[] => {
    const v = raw[k];
    if (!Array.isArray(v) || !v.every((x) => isObj(x) && isInt(x.id))) throw new ClusterOutputError(`"${k}" is not an array of { id }`, raw);
    return v.map((x) => (x as { id: number }).id).sort((a, b) => a - b);
  };
  if (raw.controller !== null && !isInt(raw.controller)) throw new ClusterOutputError('"controller" is neither a broker id nor null', raw);
  if (!Array.isArray(raw.assignments)) throw new ClusterOutputError('"assignments" is not an array', raw);
  const topicIds = new Map<string, string>();
  if (Array.isArray(raw.topics)) for (const t of raw.topics) if (isObj(t) && typeof t.name === 'string' && typeof t.id === 'string') topicIds.set(t.name, t.id);
  const assignments = raw.assignments.map((a): Assignment => {
    if (!isObj(a) || !isInt(a.broker) || typeof a.unit !== 'string') throw new ClusterOutputError(`bad assignment ${JSON.stringify(a)}`, raw);
    const epoch = isInt(a.epoch) ? a.epoch : undefined;
    if (isInt(a.slot)) return { topic: GROUPS_UNIT, partition: a.slot, broker: a.broker, epoch };
    if (typeof a.topic !== 'string' || !isInt(a.partition)) throw new ClusterOutputError(`assignment without topic/partition or slot: ${JSON.stringify(a)}`, raw);
    return { topic: a.topic, topicId: topicIds.get(a.topic) ?? a.unit.slice(0, a.unit.lastIndexOf('/')), partition: a.partition, broker: a.broker, epoch };
  });
  return { brokers: idList('brokers'), proxies: idList('proxies'), controller: (raw.controller as number | null) ?? null, assignments, raw };
}

/** Owner broker of every partition of `topic`, by partition. */
export function owners(view: ClusterView, topic: string): Map<number, number> {
  return new Map(view.assignments.filter((a) => a.topic === topic || a.topicId === topic).map((a) => [a.partition, a.broker]));
}

/** How many partitions of `topic` each live broker owns (0 for a live broker owning none). */
export function shares(view: ClusterView, topic: string): Map<number, number> {
  const m = new Map<number, number>(view.brokers.map((b) => [b, 0]));
  for (const b of owners(view, topic).values()) m.set(b, (m.get(b) ?? 0) + 1);
  return m;
}

// ---------------------------------------------------------------------------------------------

/** Polls `check` until it returns a truthy value; an exception ends the wait at once. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs: number, intervalMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Like waitFor, but a throwing check is retried (e.g. `skiff cluster` while etcd elects). */
export async function eventually<T>(what: string, check: () => T | Promise<T>, timeoutMs: number, intervalMs = 200): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Waits until every partition of `topic` is assigned to a live broker; returns that view. */
export async function waitAssigned(cluster: Cluster, topic: string, partitions: number, timeoutMs = 20_000, exclude: number[] = []): Promise<ClusterView> {
  let last: ClusterView | undefined;
  try {
    return await eventually(
      `all ${partitions} partitions of ${topic} assigned to live brokers${exclude.length ? ` other than ${exclude.join(', ')}` : ''}`,
      async () => {
        const v = await cluster.cluster();
        last = v;
        const own = owners(v, topic);
        if (own.size !== partitions) return undefined;
        for (const b of own.values()) if (!v.brokers.includes(b) || exclude.includes(b)) return undefined;
        return v;
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\nlast skiff cluster --json: ${JSON.stringify(last?.raw).slice(0, 3000)}`);
  }
}

/** Creates a topic through a proxy with the python AdminClient and waits for its assignment. */
export async function createTopic(cluster: Cluster, topic: string, partitions: number, bootstrap = cluster.bootstrap): Promise<ClusterView> {
  const r = await run(PYTHON, ['-u', path.join(ROOT, 'e2e', 'python', 'admin.py'), bootstrap, 'create', topic, String(partitions)], { timeoutMs: 30_000 });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.code !== 0 || !last.includes('"ok": true')) {
    throw new Error(`create ${topic}: ${last || `exit ${r.code}`}\n${r.stderr.slice(-2000)}\n${cluster.logTail(20)}`);
  }
  return waitAssigned(cluster, topic, partitions);
}

/** At most `n` items, for failure messages that stay readable. */
export const few = <T>(xs: T[], n = 20): T[] => xs.slice(0, n);

// ---------------------------------------------------------------------------------------------
// The continuous producer (producer.py) and the checks every durability test makes.

export type AckLine = [partition: number, seq: number, offset: number, t: number];
export type ErrLine = [partition: number, seq: number, error: string, fatal: boolean, retriable: boolean, t: number];
export interface ClientErrorLine {
  clientError: string;
  code: string;
  fatal: boolean;
  t: number;
}
export interface ProducerDone {
  done: true;
  produced: number;
  unflushed: number;
  lastSeq: number[];
}

export interface ProducerOptions {
  rate?: number;
  idempotent?: boolean;
  acks?: 'all' | '1';
  messageTimeoutMs?: number;
  name?: string;
  /** librdkafka debug contexts (e.g. 'eos'): its log goes to the producer's stderr. */
  debug?: string;
}

/** producer.py as a child: acks, failed deliveries and client errors, parsed as they arrive. */
export class ProducerRun {
  readonly proc: Proc;
  readonly acks: AckLine[] = [];
  readonly errs: ErrLine[] = [];
  readonly clientErrors: ClientErrorLine[] = [];
  done: ProducerDone | undefined;
  private readonly tail: JsonTail<Record<string, unknown>>;

  constructor(
    bootstrap: string,
    readonly topic: string,
    readonly partitions: number,
    readonly opts: ProducerOptions = {},
  ) {
    const args = ['-u', path.join(CLUSTER_PY_DIR, 'producer.py'), bootstrap, topic, '--partitions', String(partitions), '--rate', String(opts.rate ?? 400)];
    if (opts.idempotent === false) args.push('--no-idempotent');
    if (opts.acks) args.push('--acks', opts.acks);
    if (opts.messageTimeoutMs) args.push('--message-timeout-ms', String(opts.messageTimeoutMs));
    if (opts.debug) args.push('--debug', opts.debug);
    this.proc = new Proc(opts.name ?? `producer-${topic}`, PYTHON, args);
    this.tail = new JsonTail(this.proc);
  }

  /** Parses what arrived since the last call. */
  poll(): void {
    for (const l of this.tail.poll()) {
      if (Array.isArray(l.ack)) this.acks.push(l.ack as AckLine);
      else if (Array.isArray(l.err)) this.errs.push(l.err as ErrLine);
      else if (typeof l.clientError === 'string') this.clientErrors.push(l as unknown as ClientErrorLine);
      else if (l.done === true) this.done = l as unknown as ProducerDone;
    }
  }

  /** Throws if the producer died or hit a fatal error. */
  alive(): void {
    this.poll();
    if (!this.proc.running && !this.done) throw new Error(`${this.proc.name} exited (${JSON.stringify(this.proc.exitInfo)})\n${this.proc.stderr.slice(-3000)}`);
    const fatal = this.clientErrors.filter((e) => e.fatal);
    if (fatal.length > 0) throw new Error(`${this.proc.name} hit a fatal error: ${fatal.map((e) => e.clientError).join('; ')}`);
  }

  /** Waits until `n` more acknowledgements (counted from now, or from `from`) have arrived. */
  async waitAcks(n: number, timeoutMs: number, from = this.acks.length): Promise<void> {
    await waitFor(
      `${n} acknowledgements from ${this.proc.name}`,
      () => {
        this.alive();
        return this.acks.length - from >= n;
      },
      timeoutMs,
      20,
    );
  }

  /** SIGTERM: the producer stops producing, flushes and reports. */
  async stop(timeoutMs = 90_000): Promise<ProducerDone> {
    const exit = await this.proc.stop('SIGTERM', timeoutMs);
    this.poll();
    if (exit.code !== 0 || !this.done) throw new Error(`${this.proc.name} ended with ${JSON.stringify(exit)} and no final report\n${this.proc.stderr.slice(-3000)}`);
    return this.done;
  }
}

/**
 * Everything a durability test checks of a topic after an idempotent producer finished:
 * returns the problems found (empty when all is well).
 *  - every acknowledged message is stored exactly once, at the offset it was acknowledged with;
 *  - no two acknowledgements name the same offset;
 *  - offsets run from 0 without gaps on every partition;
 *  - nothing is stored that was not produced, and (idempotence) no value is stored twice;
 *  - per partition, stored sequence numbers increase with the offset (idempotent ordering).
 */
export function checkTopic(rows: Row[], producer: ProducerRun, opts: { ordered?: boolean } = {}): string[] {
  const problems: string[] = [];
  const byPartition = new Map<number, Row[]>();
  for (const r of rows) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  const at = new Map<string, Row>();
  for (const [p, rs] of byPartition) {
    rs.sort((a, b) => a.offset - b.offset);
    rs.forEach((r, i) => {
      if (r.offset !== i) problems.push(`[gap] partition ${p}: offset ${r.offset} read at position ${i} (gap or log start moved)`);
      at.set(`${p}/${r.offset}`, r);
    });
  }
  const where = new Map<string, string[]>();
  for (const r of rows) {
    const id = (r.payload ?? '').split(':').slice(0, 2).join(':');
    where.set(id, [...(where.get(id) ?? []), `${r.partition}/${r.offset}`]);
  }
  const ackAt = new Map<string, AckLine>();
  for (const a of producer.acks) {
    const [p, seq, offset] = a;
    if (offset == null || offset < 0) {
      // librdkafka reports a delivery without an offset when a later batch's acknowledgement
      // tells it that an earlier one, whose answer it never got, was stored: only presence counts.
      if (!where.has(`${p}:${seq}`)) problems.push(`[lost] acknowledged ${p}:${seq} without an offset, but it is stored nowhere`);
      continue;
    }
    const k = `${p}/${offset}`;
    const prev = ackAt.get(k);
    if (prev) problems.push(`[wrong-offset] two acknowledgements for ${k}: seq ${prev[1]} and seq ${seq}`);
    ackAt.set(k, a);
    const r = at.get(k);
    if (!r || !(r.payload ?? '').startsWith(`${p}:${seq}:`)) {
      const stored = where.get(`${p}:${seq}`);
      problems.push(
        `${stored ? '[wrong-offset]' : '[lost]'} acknowledged ${p}:${seq} at ${k}, but ${k} ${r ? `holds ${(r.payload ?? '').split(':').slice(0, 2).join(':')}` : 'does not exist'}; ` +
          (stored ? `${p}:${seq} is stored at ${stored.join(', ')}` : `${p}:${seq} is stored nowhere (lost)`),
      );
    }
  }
  const seen = new Map<string, string>();
  const last = producer.done?.lastSeq;
  for (const [p, rs] of byPartition) {
    let prevSeq = -1;
    for (const r of rs) {
      const [vp, vs] = (r.payload ?? '').split(':');
      const id = `${vp}:${vs}`;
      if (Number(vp) !== p) problems.push(`[misplaced] ${p}/${r.offset} holds ${id}, produced to partition ${vp}`);
      if (seen.has(id)) problems.push(`[duplicate] ${id} stored twice: at ${seen.get(id)} and ${p}/${r.offset}`);
      seen.set(id, `${p}/${r.offset}`);
      if (last && !(Number(vs) >= 0 && Number(vs) <= (last[p] ?? -1))) problems.push(`[unknown] ${p}/${r.offset} holds ${id}, never produced`);
      if (opts.ordered !== false && Number(vs) <= prevSeq) problems.push(`[order] ${p}/${r.offset} holds seq ${vs} after seq ${prevSeq} (reordered)`);
      prevSeq = Math.max(prevSeq, Number(vs));
    }
  }
  return problems;
}

/** Reads `topic` through the proxies and checks it against the producer's acknowledgements. */
export interface Verdict {
  rows: Row[];
  /** Acknowledged data lost, stored twice, reordered, gaps, values never produced. */
  serious: string[];
  /** Stored once and intact, but acknowledged with an offset where another message is. */
  misacked: string[];
}

/** Splits checkTopic's problems: wrong offsets in acknowledgements apart from the rest. */
export function splitProblems(problems: string[]): { serious: string[]; misacked: string[] } {
  return { serious: problems.filter((p) => !p.startsWith('[wrong-offset]')), misacked: problems.filter((p) => p.startsWith('[wrong-offset]')) };
}

export async function verifyTopic(cluster: Cluster, producer: ProducerRun): Promise<Verdict> {
  const rows = await readTopic(cluster.bootstrap, producer.topic, 60_000);
  const problems = checkTopic(rows, producer);
  if (problems.length > 0) {
    // For the post-mortem: what the producer saw and what the topic holds, next to the logs.
    await writeFile(path.join(cluster.dir, `${producer.proc.name}.out`), producer.proc.lines.join('\n') + '\n');
    await writeFile(path.join(cluster.dir, `${producer.topic}.rows`), rows.map((r) => `${r.partition}/${r.offset} ${(r.payload ?? '').split(':').slice(0, 2).join(':')}`).join('\n') + '\n');
    await writeFile(path.join(cluster.dir, `${producer.topic}.problems`), problems.join('\n') + '\n');
  }
  return { rows, ...splitProblems(problems) };
}

/** Partitions of `topic` that the given broker owns in `view`. */
export function partitionsOf(view: ClusterView, topic: string, broker: number): number[] {
  return [...owners(view, topic)].filter(([, b]) => b === broker).map(([p]) => p).sort((a, b) => a - b);
}

/** Keys under `prefix` in etcd, through its JSON gateway (/v3/kv/range). */
export async function etcdKeys(cluster: Cluster, prefix: string): Promise<string[]> {
  const b64 = (s: Buffer) => s.toString('base64');
  const start = Buffer.from(prefix);
  const end = Buffer.from(prefix);
  end[end.length - 1] += 1;
  const res = await fetch(`${cluster.etcd.endpoint}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: b64(start), range_end: b64(end), keys_only: true }),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`etcd range ${prefix}: HTTP ${res.status}`);
  const body = (await res.json()) as { kvs?: Array<{ key: string }> };
  return (body.kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString()).sort();
}

/**
 * The broker coordinating `group`, from `skiff cluster --json`: groups hash onto slots with the
 * implementation's own function (services/broker/assignments.ts), and slots are assigned like
 * partitions (`__groups/<slot>`).
 */
export function coordinatorOf(view: ClusterView, group: string): { broker: number; slot: number } | undefined {
  const slot = slotOf(group);
  const a = view.assignments.find((x) => x.topic === GROUPS_UNIT && x.partition === slot);
  return a ? { broker: a.broker, slot } : undefined;
}

/** Writes a child's stdout and stderr next to the cluster's logs (for a failed test's post-mortem). */
export function saveOutput(cluster: Cluster, proc: Proc): void {
  try {
    writeFileSync(path.join(cluster.dir, `${proc.name}.out`), proc.lines.join('\n') + '\n--- stderr ---\n' + proc.stderr);
  } catch {
    // the directory is gone already
  }
}

/** Keys under `prefix` in etcd with their values (utf-8), through its JSON gateway. */
export async function etcdRange(cluster: Cluster, prefix: string): Promise<Array<{ key: string; value: string }>> {
  const start = Buffer.from(prefix);
  const end = Buffer.from(prefix);
  end[end.length - 1] += 1;
  const res = await fetch(`${cluster.etcd.endpoint}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: start.toString('base64'), range_end: end.toString('base64') }),
    signal: AbortSignal.timeout(2000),
  });
  if (!res.ok) throw new Error(`etcd range ${prefix}: HTTP ${res.status}`);
  const body = (await res.json()) as { kvs?: Array<{ key: string; value?: string }> };
  return (body.kvs ?? []).map((kv) => ({ key: Buffer.from(kv.key, 'base64').toString(), value: Buffer.from(kv.value ?? '', 'base64').toString() }));
}

/**
 * Times a broker's departure as etcd sees it, polling every 25 ms from now: when its
 * registration disappeared (lease expired or revoked) and when none of `units` (assignment
 * keys under /skiff/assign/, e.g. "<topicId>/<p>" or "__groups/<slot>") was assigned to it
 * any more. For the printed numbers only; the assertions use `skiff cluster --json`.
 */
export async function timeDeparture(cluster: Cluster, brokerId: number, units: string[], timeoutMs = 30_000): Promise<{ registrationGoneMs: number; reassignedMs: number }> {
  const t0 = Date.now();
  let registrationGoneMs = -1;
  await eventually(
    `broker ${brokerId} to leave etcd`,
    async () => {
      if (registrationGoneMs < 0 && (await etcdRange(cluster, `/skiff/brokers/${brokerId}`)).every((kv) => kv.key !== `/skiff/brokers/${brokerId}`)) registrationGoneMs = Date.now() - t0;
      const kvs = await etcdRange(cluster, '/skiff/assign/');
      const owner = new Map(kvs.map((kv) => [kv.key.slice('/skiff/assign/'.length), (JSON.parse(kv.value) as { broker: number }).broker]));
      return registrationGoneMs >= 0 && units.every((u) => owner.has(u) && owner.get(u) !== brokerId);
    },
    timeoutMs,
    25,
  );
  return { registrationGoneMs, reassignedMs: Date.now() - t0 };
}

/** The assignment unit ("<topicId>/<partition>") of a topic's partition in `view`. */
export function unitOf(view: ClusterView, topic: string, partition: number): string {
  const a = view.assignments.find((x) => x.topic === topic && x.partition === partition);
  if (!a?.topicId) throw new Error(`partition ${partition} of ${topic} is not in skiff cluster --json`);
  return `${a.topicId}/${partition}`;
}
