// Cluster-mode scenarios of `npm run bench`: bench/run.mjs runs this file with vite-node so that
// it drives the same launcher as the cluster e2e tests (e2e/cluster/support.ts: real etcd,
// nats-server and s3rver, brokers and proxies as separate processes of the built CLI).
//
//   vite-node bench/cluster.ts -- serve --topic T --partitions N [--brokers 3]
//       starts a cluster, creates the topic, waits until every partition is Online, prints one
//       {"ready": …} line (bootstrap, every process with its pid and command) and holds the
//       cluster until SIGTERM; run.mjs drives the load and reads /proc of the pids meanwhile.
//   vite-node bench/cluster.ts -- failover --runs N --json FILE
//       SIGKILLs a broker under an idempotent acks=all producer, N times.
//   vite-node bench/cluster.ts -- move --runs N --json FILE --rdkperf PATH
//       scale-out and drain of a 1,000-partition topic, N rounds.
//
// Common: --lease-ttl S, --log-dir DIR and --log-prefix P (every process's log is copied there).
// Progress goes to stderr as "% …" lines, which run.mjs shows on its live line.
import { spawn } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTopic,
  eventually,
  partitionsOf,
  ProducerRun,
  shares,
  SKIFF_MAIN,
  startCluster,
  timeDeparture,
  unitOf,
  waitFor,
  type Cluster,
  type ClusterProc,
  type ClusterView,
} from '../e2e/cluster/support.js';
import { PYTHON } from '../e2e/support/procs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------- options

// vite-node hands over what follows `--`.
const argv = process.argv.slice(2).filter((a) => a !== '--');
const MODE = argv[0];
const option = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const LEASE_TTL = Number(option('--lease-ttl', '2'));
const RUNS = Number(option('--runs', '3'));
const JSON_OUT = option('--json', '');
const LOG_DIR = option('--log-dir', '');
const LOG_PREFIX = option('--log-prefix', `cluster-${MODE}`);

let said = '';
const say = (text: string) => {
  if (text === said) return;
  said = text;
  process.stderr.write(`% ${text}\n`);
};
const ms = (x: number) => `${Math.round(x)} ms`;

// ---------------------------------------------------------------- processes and commands

interface ProcessInfo {
  name: string;
  pid: number;
  command: string;
  /** Brokers and proxies: their /metrics port. */
  httpPort?: number;
}

const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
/** A path argument relative to the repository, as run.mjs prints its own commands (they run there too). */
const relPath = (a: string) => (a.startsWith(`${ROOT}/`) ? a.slice(ROOT.length + 1) : a);

/** This process's children as /proc shows them: the cluster's servers, brokers, proxies, clients. */
function children(cluster?: Cluster): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const pid = Number(d);
      const base = path.basename(args[0] ?? '');
      // vite-node's own transformer is not part of what is measured.
      if (base === 'esbuild') continue;
      const node = [...(cluster?.brokers ?? []), ...(cluster?.proxies ?? [])].find((p) => p.pid === pid);
      const name = node?.name ?? (args.some((a) => a.includes('S3rver')) ? 's3rver' : args.some((a) => a.endsWith('producer.py')) ? 'producer.py' : base);
      out.push({ name, pid, command: args.map((a) => quote(relPath(a))).join(' '), ...(node ? { httpPort: node.httpPort } : {}) });
    } catch {
      // gone meanwhile
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
}

/** Every command this run started, for the results' command list (deduplicated). */
const commands: Array<{ command: string; started: string; background?: boolean; note?: string }> = [];
function noteCommand(command: string, opts: { background?: boolean; note?: string } = {}): void {
  if (commands.some((c) => c.command === command)) return;
  commands.push({ command, started: new Date().toISOString(), ...opts });
}
function noteChildren(cluster: Cluster): void {
  for (const p of children(cluster)) noteCommand(p.command, { background: true });
}
function noteHelpers(cluster: Cluster): void {
  noteCommand(`${PYTHON} -u e2e/python/admin.py ${cluster.bootstrap} create TOPIC PARTITIONS`, { note: 'topic creation (e2e/cluster/support.ts createTopic)' });
  noteCommand(`node ${relPath(SKIFF_MAIN)} cluster --etcd ${cluster.etcd.endpoint} --json`, { note: 'reads the assignments before and after each timed step' });
}

async function launch(opts: { brokers: number; proxies: number; brokerArgs?: string[] }): Promise<Cluster> {
  say(`starting etcd, nats-server, s3rver, ${opts.brokers} broker(s) and ${opts.proxies} proxy (lease TTL ${LEASE_TTL} s)`);
  const cluster = await startCluster({ brokers: opts.brokers, proxies: opts.proxies, leaseTtlSeconds: LEASE_TTL, advertiseMode: 'direct', brokerArgs: opts.brokerArgs });
  current = cluster;
  noteChildren(cluster);
  noteHelpers(cluster);
  return cluster;
}

let current: Cluster | undefined;
let onTerm: () => void = () => process.exit(143);

/** Copies the processes' logs next to run.mjs's, then stops everything. */
async function teardown(): Promise<void> {
  const cluster = current;
  current = undefined;
  if (!cluster) return;
  if (LOG_DIR) {
    for (const f of readdirSync(cluster.dir).filter((f) => f.endsWith('.log'))) {
      try {
        copyFileSync(path.join(cluster.dir, f), path.join(LOG_DIR, `${LOG_PREFIX}-${f}`));
      } catch {
        // a log that cannot be copied is not worth failing the run for
      }
    }
  }
  await cluster.stop();
}

// ---------------------------------------------------------------- partition states from the logs

/**
 * When each partition of `topic` went to `state` on one of `brokers` at or after `since`, from
 * the brokers' "partition state" log records: pino stamps each record when the transition
 * happens, so this costs the brokers nothing and has no polling granularity.
 */
function transitions(brokers: ClusterProc[], topic: string, state: string, since: number): Map<number, number> {
  const at = new Map<number, number>();
  for (const b of brokers) {
    for (const r of b.records) {
      if (r.msg !== 'partition state' || r.topic !== topic || r.to !== state) continue;
      const t = Number(r.time);
      const p = Number(r.partition);
      if (t < since) continue;
      const seen = at.get(p);
      if (seen === undefined || t < seen) at.set(p, t);
    }
  }
  return at;
}

/** Waits until every partition in `parts` went Online on one of `brokers` since `since`; returns the times. */
async function waitOnline(brokers: () => ClusterProc[], topic: string, parts: number[], since: number, timeoutMs: number, what: string): Promise<Map<number, number>> {
  let at = new Map<number, number>();
  await waitFor(
    what,
    () => {
      at = transitions(brokers(), topic, 'Online', since);
      const left = parts.filter((p) => !at.has(p)).length;
      say(`${what}: ${parts.length - left}/${parts.length} Online`);
      return left === 0;
    },
    timeoutMs,
    50,
  );
  return new Map(parts.map((p) => [p, at.get(p)!]));
}

/** Every partition of `topic` Online on its owner, as the brokers' /v1/partitions report it. */
async function allOnline(cluster: Cluster, topic: string, partitions: number, timeoutMs = 60_000): Promise<void> {
  await eventually(
    `all ${partitions} partitions of ${topic} Online`,
    async () => {
      let online = 0;
      for (const b of cluster.brokers.filter((x) => x.running)) online += (await cluster.partitions(b)).filter((r) => r.topic === topic && r.state === 'Online').length;
      return online === partitions;
    },
    timeoutMs,
    100,
  );
}

const maxOf = (m: Map<number, number>) => Math.max(...m.values());
const minOf = (m: Map<number, number>) => Math.min(...m.values());
function medianOf(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const registeredAt = (view: ClusterView, id: number) => ((view.raw as { brokers: Array<{ id: number; startedAt?: number }> }).brokers.find((b) => b.id === id)?.startedAt ?? NaN);
const firstLog = (b: ClusterProc | undefined, msg: string, since: number) => Number(b?.records.find((r) => r.msg === msg && Number(r.time) >= since)?.time ?? NaN);

// ---------------------------------------------------------------- serve

async function serve(): Promise<void> {
  const topic = option('--topic', 'bench');
  const partitions = Number(option('--partitions', '64'));
  // Extra broker flags, space-separated (e.g. "--flush-ms 250 --flush-min-ms 250").
  const brokerArgs = option('--broker-args', '').split(' ').filter(Boolean);
  const cluster = await launch({ brokers: Number(option('--brokers', '3')), proxies: 1, brokerArgs });
  say(`creating ${topic} with ${partitions} partitions`);
  await createTopic(cluster, topic, partitions);
  await allOnline(cluster, topic, partitions);
  const view = await cluster.cluster();
  const stopped = new Promise<void>((resolve) => (onTerm = resolve));
  process.stdout.write(
    `${JSON.stringify({
      ready: {
        bootstrap: cluster.bootstrap,
        leaseTtlSeconds: LEASE_TTL,
        controller: view.controller,
        shares: Object.fromEntries(shares(view, topic)),
        processes: children(cluster),
        commands,
      },
    })}\n`,
  );
  await stopped;
  say('stopping the cluster');
  await teardown();
}

// ---------------------------------------------------------------- failover

const CALM_MS = 3000;

/** The longest time between `from` and `to` during which one of the chosen partitions had no acknowledgement. */
function longestAckGap(producer: ProducerRun, from: number, to: number, chosen: (p: number) => boolean): number {
  producer.poll();
  const last = new Map<number, number>();
  let gap = 0;
  for (const [p, , , t] of producer.acks) {
    if (t < from || t > to || !chosen(p)) continue;
    gap = Math.max(gap, t - (last.get(p) ?? from));
    last.set(p, t);
  }
  for (let p = 0; p < producer.partitions; p++) if (chosen(p)) gap = Math.max(gap, to - (last.get(p) ?? from));
  return gap;
}

async function failover(): Promise<unknown> {
  const topic = 'failover';
  const partitions = Number(option('--partitions', '64'));
  const rate = Number(option('--rate', '2000'));
  const nBrokers = 3;
  const cluster = await launch({ brokers: nBrokers, proxies: 1 });
  say(`creating ${topic} with ${partitions} partitions`);
  await createTopic(cluster, topic, partitions);
  await allOnline(cluster, topic, partitions);

  const producer = new ProducerRun(cluster.bootstrap, topic, partitions, { rate, name: 'producer' });
  const acksOnEvery = async (since: number, what: string) =>
    waitFor(
      what,
      () => {
        producer.alive();
        const seen = new Set<number>();
        for (let i = producer.acks.length - 1; i >= 0 && producer.acks[i][3] > since; i--) seen.add(producer.acks[i][0]);
        return seen.size === partitions;
      },
      60_000,
      50,
    );
  say(`producer at ${rate} msg/s over ${partitions} partitions`);
  await producer.waitAcks(rate, 60_000);
  noteChildren(cluster);

  const runs: unknown[] = [];
  let view = await cluster.cluster();
  for (let run = 1; run <= RUNS; run++) {
    await acksOnEvery(Date.now(), 'an acknowledgement on every partition');
    // The noise floor: how long one partition goes without an acknowledgement anyway (the
    // producer's batching, a busy machine), over a calm stretch just before the kill.
    const calmFrom = Date.now();
    await sleep(CALM_MS);
    // Not the controller: what is measured is partition failover, not an election as well.
    // Victims alternate between the other brokers.
    const candidates = view.brokers.filter((b) => b !== view.controller && partitionsOf(view, topic, b).length > 0);
    if (candidates.length === 0) throw new Error(`no broker other than the controller owns partitions: ${JSON.stringify(view.raw).slice(0, 2000)}`);
    const victimId = candidates[(run - 1) % candidates.length];
    const victim = cluster.broker(victimId);
    const affected = partitionsOf(view, topic, victimId);
    const errsBefore = producer.errs.length;
    const calm = longestAckGap(producer, calmFrom, Date.now(), () => true);
    const from = producer.acks.length;

    say(`run ${run}/${RUNS}: SIGKILL broker ${victimId} (owns ${affected.length} partitions)`);
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    const departure = timeDeparture(cluster, victimId, affected.map((p) => unitOf(view, topic, p)), 60_000);
    await victim.waitExit(10_000);
    const { registrationGoneMs, reassignedMs } = await departure;
    // An acknowledgement after the reassignment can only come from the new owner; one before it
    // was already on its way from the killed broker.
    const firstAck = new Map<number, number>();
    let stragglers = 0;
    await waitFor(
      `acknowledgements from the new owners of ${affected.length} partitions`,
      () => {
        producer.alive();
        stragglers = 0;
        for (let i = from; i < producer.acks.length; i++) {
          const [p, , , t] = producer.acks[i];
          if (!affected.includes(p)) continue;
          if (t <= killedAt + reassignedMs) stragglers++;
          else if (!firstAck.has(p)) firstAck.set(p, t);
        }
        say(`run ${run}/${RUNS}: ${firstAck.size}/${affected.length} moved partitions acknowledged again`);
        return firstAck.size === affected.length;
      },
      90_000,
      20,
    );
    const endAt = maxOf(firstAck);
    // The other partitions should not notice: compared with the noise floor above.
    const othersGap = longestAckGap(producer, killedAt, endAt, (p) => !affected.includes(p));
    // Server side alone: when each moved partition went Online on its new owner.
    const survivors = cluster.brokers.filter((b) => b !== victim);
    const online = transitions(survivors, topic, 'Online', killedAt);
    const newOwner = (p: number) => survivors.find((b) => transitions([b], topic, 'Online', killedAt).has(p))?.nodeId;
    const perPartition = affected.map((p) => ({ partition: p, newOwner: newOwner(p), killToOnlineMs: (online.get(p) ?? NaN) - killedAt, killToFirstAckMs: firstAck.get(p)! - killedAt }));
    const r = {
      run,
      victim: victimId,
      controller: view.controller,
      moved: affected.length,
      registrationGoneMs,
      reassignedMs,
      allOnlineMs: Math.max(...perPartition.map((x) => x.killToOnlineMs)),
      unavailableMs: endAt - killedAt,
      firstPartitionMs: minOf(firstAck) - killedAt,
      medianPartitionMs: medianOf(perPartition.map((x) => x.killToFirstAckMs)),
      othersLongestGapMs: othersGap,
      calmLongestGapMs: calm,
      calmMs: CALM_MS,
      stragglers,
      failedDeliveries: producer.errs.length - errsBefore,
      perPartition,
    };
    say(`run ${run}/${RUNS}: all ${affected.length} moved partitions writable after ${ms(r.unavailableMs)} (registration gone ${ms(registrationGoneMs)}, reassigned ${ms(reassignedMs)})`);
    runs.push(r);

    // What an orchestrator does: start it again; the controller gives it its share back.
    say(`run ${run}/${RUNS}: restarting broker ${victimId} and waiting for the rebalance`);
    await victim.restart();
    const share = Math.floor(partitions / nBrokers);
    await waitFor(
      `broker ${victimId} to get its share of ${topic} back`,
      () => {
        producer.alive();
        return transitions([victim], topic, 'Online', victim.startedAt).size >= share;
      },
      60_000,
      50,
    );
    await allOnline(cluster, topic, partitions);
    noteChildren(cluster);
    view = await cluster.cluster();
  }
  const done = await producer.stop();
  const crashes = cluster.crashes();
  const clientErrors: Record<string, number> = {};
  for (const e of producer.clientErrors) clientErrors[e.code] = (clientErrors[e.code] ?? 0) + 1;
  return {
    scenario: 'failover',
    leaseTtlSeconds: LEASE_TTL,
    brokers: nBrokers,
    proxies: 1,
    topic,
    partitions,
    rate,
    producer: {
      script: 'e2e/cluster/producer.py',
      produced: done.produced,
      acked: producer.acks.length,
      unflushed: done.unflushed,
      failedDeliveries: producer.errs.length,
      failedExamples: producer.errs.slice(0, 5),
      fatalErrors: producer.clientErrors.filter((e) => e.fatal).length,
      clientErrors,
    },
    crashes,
    runs,
  };
}

// ---------------------------------------------------------------- moving partitions

async function fill(cluster: Cluster, topic: string, count: number, size: number): Promise<{ messages: number; size: number; seconds: number; exit: number | null }> {
  const rdkperf = option('--rdkperf', 'bench/.build/rdkafka_performance');
  const args = ['-P', '-t', topic, '-b', cluster.bootstrap, '-s', String(size), '-c', String(count), '-a', '1', '-i', '1000', '-X', 'linger.ms=5'];
  noteCommand([rdkperf, ...args].map(quote).join(' '), { note: 'fills every partition a little before the moves' });
  const t0 = Date.now();
  const child = spawn(path.resolve(ROOT, rdkperf), args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const orphan = () => child.kill('SIGKILL');
  process.once('exit', orphan);
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const exit = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  clearTimeout(timer);
  process.off('exit', orphan);
  if (exit !== 0) throw new Error(`filling ${topic} failed (exit ${exit}): ${err}`);
  return { messages: count, size, seconds: (Date.now() - t0) / 1000, exit };
}

async function move(): Promise<unknown> {
  const topic = 'move';
  const partitions = Number(option('--partitions', '1000'));
  const fillMessages = Number(option('--fill', '100000'));
  const cluster = await launch({ brokers: 1, proxies: 1 });
  const first = cluster.brokers[0];

  say(`creating ${topic} with ${partitions} partitions on one broker`);
  const createdAt = Date.now();
  await createTopic(cluster, topic, partitions);
  const initial = await waitOnline(() => [first], topic, [...Array(partitions).keys()], createdAt, 120_000, `${partitions} new partitions on broker ${first.nodeId}`);
  const initialMs = maxOf(initial) - createdAt;
  say(`filling: ${fillMessages} messages of 100 B over ${partitions} partitions`);
  const filled = await fill(cluster, topic, fillMessages, 100);
  await sleep(1000);

  const runs: unknown[] = [];
  for (let run = 1; run <= RUNS; run++) {
    // Scale-out: a second broker joins; the controller moves half of the partitions to it.
    const stay = cluster.brokers.filter((b) => b.running);
    const before = await cluster.cluster();
    const nAfter = before.brokers.length + 1;
    say(`round ${run}/${RUNS}: starting a broker next to ${stay.map((b) => b.name).join(', ')}`);
    const count = cluster.brokers.length;
    const adding = cluster.addBroker();
    adding.catch(() => undefined); // awaited below; a failure must not surface as an unhandled rejection first
    await waitFor('the new broker to be spawned', () => cluster.brokers.length > count, 30_000, 5);
    const added = cluster.brokers[cluster.brokers.length - 1];
    await adding;
    const spawnedAt = added.startedAt;
    const readyAt = Number(added.records.find((r) => r.msg === 'skiff broker is ready')?.time ?? NaN);
    let online = new Map<number, number>();
    let gained: number[] = [];
    await waitFor(
      `partitions Online on ${added.name}`,
      async () => {
        online = transitions([added], topic, 'Online', spawnedAt);
        say(`round ${run}/${RUNS}: ${online.size} partitions Online on ${added.name}`);
        if (online.size < Math.floor(partitions / nAfter)) return false;
        // The controller has written its moves; which ones is only read now, outside the timing.
        const v = await cluster.cluster();
        gained = partitionsOf(v, topic, added.nodeId);
        return gained.length > 0 && gained.every((p) => online.has(p));
      },
      120_000,
      50,
    );
    const after = await cluster.cluster();
    const regAt = registeredAt(after, added.nodeId);
    const lastOnline = Math.max(...gained.map((p) => online.get(p)!));
    const released = transitions(stay, topic, 'Offline', spawnedAt);
    const lastReleased = Math.max(...gained.map((p) => released.get(p) ?? NaN).filter(Number.isFinite));
    const controller = cluster.brokers.find((b) => b.nodeId === after.controller);
    const rows = await cluster.partitions(added);
    const notOnline = gained.filter((p) => !rows.some((r) => r.topic === topic && r.partition === p && r.state === 'Online'));
    const scaleOut = {
      broker: added.nodeId,
      moved: gained.length,
      brokersAfter: after.brokers.length,
      registrationToAllOnlineMs: lastOnline - regAt,
      spawnToAllOnlineMs: lastOnline - spawnedAt,
      spawnToRegistrationMs: regAt - spawnedAt,
      spawnToReadyMs: readyAt - spawnedAt,
      registrationToAssignedMs: firstLog(controller, 'assignments updated', regAt) - regAt,
      registrationToLastReleasedMs: lastReleased - regAt,
      registrationToFirstOnlineMs: Math.min(...gained.map((p) => online.get(p)!)) - regAt,
      notOnlineInHttp: notOnline.length,
    };
    say(`round ${run}/${RUNS}: ${gained.length} partitions moved to ${added.name}, all Online ${ms(scaleOut.registrationToAllOnlineMs)} after its registration`);
    await sleep(1000);

    // Drain: SIGTERM the broker that just joined (it is not the controller: the first one is).
    const view = await cluster.cluster();
    const leaving = cluster.brokers.find((b) => b.running && b.nodeId !== view.controller && partitionsOf(view, topic, b.nodeId).length > 0)!;
    const owned = partitionsOf(view, topic, leaving.nodeId);
    const others = () => cluster.brokers.filter((b) => b !== leaving && b.running);
    say(`round ${run}/${RUNS}: SIGTERM ${leaving.name} (owns ${owned.length} partitions)`);
    const termAt = Date.now();
    leaving.kill('SIGTERM');
    const moved = await waitOnline(others, topic, owned, termAt, 120_000, `round ${run}/${RUNS}: partitions of ${leaving.name} Online elsewhere`);
    const exit = await leaving.waitExit(60_000);
    const exitedAt = leaving.exits.at(-1)?.at ?? NaN;
    const stayController = cluster.brokers.find((b) => b.nodeId === view.controller);
    const drain = {
      broker: leaving.nodeId,
      moved: owned.length,
      termToAllOnlineMs: maxOf(moved) - termAt,
      termToFirstOnlineMs: minOf(moved) - termAt,
      termToAssignedMs: firstLog(stayController, 'assignments updated', termAt) - termAt,
      termToExitMs: exitedAt - termAt,
      exit,
    };
    say(`round ${run}/${RUNS}: ${owned.length} partitions of ${leaving.name} Online elsewhere ${ms(drain.termToAllOnlineMs)} after SIGTERM`);
    runs.push({ run, scaleOut, drain });
    await allOnline(cluster, topic, partitions);
    await sleep(1000);
  }
  noteChildren(cluster);
  return {
    scenario: 'move',
    leaseTtlSeconds: LEASE_TTL,
    topic,
    partitions,
    fill: filled,
    initial: { broker: first.nodeId, createToAllOnlineMs: initialMs },
    method: "'partition state' log records (pino's time stamp of each transition), checked once against /v1/partitions after each scale-out",
    crashes: cluster.crashes(),
    runs,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  // Interrupted (Ctrl-C, or run.mjs cleaning up): exiting runs the launchers' exit hooks,
  // which SIGKILL every server and Skiff process started here. Only a served cluster that is
  // ready takes SIGTERM as "done" and stops gracefully.
  process.on('SIGTERM', () => onTerm());
  process.on('SIGINT', () => process.exit(130));
  let result: unknown;
  try {
    if (MODE === 'serve') await serve();
    else if (MODE === 'failover') result = await failover();
    else if (MODE === 'move') result = await move();
    else throw new Error(`usage: vite-node bench/cluster.ts -- serve|failover|move [options] (got ${JSON.stringify(MODE)})`);
  } catch (e) {
    result = { error: String((e as Error)?.stack ?? e) };
    process.stderr.write(`bench/cluster.ts ${MODE} failed: ${(result as { error: string }).error}\n`);
    process.exitCode = 1;
  } finally {
    await teardown().catch(() => undefined);
  }
  if (JSON_OUT) writeFileSync(JSON_OUT, `${JSON.stringify({ ...(result as object), commands }, null, 2)}\n`);
  // Timers of the launchers' teardown would keep the process alive for seconds more.
  process.exit();
}

void main();
