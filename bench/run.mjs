#!/usr/bin/env node
// Skiff's benchmarks (`npm run bench`): real compiled clients against a real `skiff dev`
// process and against a cluster (bench/cluster.ts: brokers and a proxy on etcd, nats-server and
// s3rver), the same load against a real peer (NATS JetStream) and the machine's own limits,
// all in one run. Writes bench/results/<YYYY-MM-DD>-<hostname>.{md,json,png,svg}.
//
//   npm run bench                 full set (~17-25 min)
//   npm run bench -- --quick      reduced set (~5 min)
//   node bench/run.mjs --help     every option
//
// See bench/README.md for what is measured and how.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, hostname, totalmem, release, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, startProcess, freePort, waitHttp, waitTcp, memOf, cpuOf, cpuWindow, machineCpu, commandLog, setScenario, setNice, setDiskDevice } from './lib/proc.mjs';
import { median, summarize, readLatencyFile, parseMetrics, metricsDelta, serverTime, SERVER_TIME_METRICS } from './lib/stats.mjs';
import { writeChart } from './lib/chart.mjs';
import { writeReport, evaluateTargets } from './lib/report.mjs';
import { summarizeProfile } from './profile-summary.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const rel = (p) => relative(REPO, p) || '.';
const BUILD = join(HERE, '.build');
const RDKPERF = rel(join(BUILD, 'rdkafka_performance'));
const JSBENCH = rel(join(BUILD, 'jsbench'));
const LIMITS = rel(join(BUILD, 'limits'));
const RDKLAT = rel(join(BUILD, 'rdkafka_latency'));
/** The CPU probe (cpuProbe()): additions, and reads spread over an array of 64 MB. */
const CPU_PROBE_LOOPS = 5e7;
const MEM_PROBE_READS = 2e7;
const PROBE_ARRAY_LENGTH = 8 << 20;
const MAIN = 'dist/services/cli/main.js';
// Servers start through the `skiff` command users run (bin/skiff: Node with Skiff's heap flags).
const SKIFF = 'bin/skiff';
/** The Node flags bin/skiff passes by default; a profiled run adds its own to them. */
// The launcher's default flags, as it would expand them (its V8 pool is the CPU count up to 4).
const LAUNCHER_FLAGS = ((readFileSync(join(REPO, SKIFF), 'utf8').match(/SKIFF_NODE_FLAGS-"([^"]*)"/) ?? [])[1] ?? '').replace('$pool', String(Math.min(4, availableParallelism())));
// The cluster scenarios are TypeScript on the e2e tests' launcher; vite-node runs them as they are.
const VITE_NODE = 'node_modules/.bin/vite-node';
const CLUSTER_TS = 'bench/cluster.ts';

// ---------------------------------------------------------------- options

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
if (flag('--help') || flag('-h')) {
  console.log(`usage: node bench/run.mjs [options]

  --quick             reduced set (about 5 minutes); results get a -quick suffix
  --only GROUPS       comma list of: limits,memory,produce,consume,latency,jetstream,profile,cluster
  --filter REGEX      only the steps whose label matches (e.g. 'produce 1KiB acks=all p=1')
  --profile           also run the CPU-profile scenario in --quick (the full set always does)
  --no-profile        skip the CPU-profile scenario
  --reps N            repetitions of each throughput/latency scenario (default 1 quick, 3 full)
  --seconds N         length of one produce run (default 4 quick, 7 full)
  --lease-ttl S       the cluster brokers' --lease-ttl-seconds (default 2: fast failover)
  --wait-idle S       before each step wait up to S seconds for the machine to be idle
                      (busy <= 20%), for shared machines; default 0 (don't wait)
  --nice N            run servers and clients under 'nice -n N' (negative needs root): on a
                      shared machine this takes CPU from other work, so it is off by default
  --build             run 'npm run build' even if dist/ looks current
  --no-build          never run 'npm run build'
  --data-root DIR     where data directories go (default ${tmpdir()}); the disk limits are
                      measured on the same filesystem
  --out DIR           results directory (default bench/results)
  --name SUFFIX       results are named <date>-<host>[-quick]-SUFFIX, so a run does not
                      replace an earlier one of the same day
  --report-from FILE  only rewrite FILE's .md/.png/.svg from the results .json FILE
`);
  process.exit(0);
}
const QUICK = flag('--quick');
const ONLY = option('--only', '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const want = (g) => ONLY.length === 0 || ONLY.includes(g);
const REPS = Number(option('--reps', QUICK ? 1 : 3));
const PROFILE = flag('--no-profile') ? false : QUICK ? flag('--profile') || ONLY.includes('profile') : true;
const DATA_ROOT = resolve(option('--data-root', tmpdir()));
const OUT = resolve(option('--out', join(HERE, 'results')));
const NAME = option('--name', '');
if (NAME && !/^[\w.-]+$/.test(NAME)) {
  console.error(`--name ${NAME}: use letters, digits, '.', '_' and '-' only`);
  process.exit(2);
}
const WAIT_IDLE = Number(option('--wait-idle', 0));
const NICE = Number(option('--nice', 0));
if (NICE) setNice(NICE);

const MiB = 1 << 20;
const C = {
  produceSeconds: Number(option('--seconds', QUICK ? 4 : 7)),
  produceReps: REPS,
  // [size, acks, partitions]
  produceMatrix: QUICK
    ? [
        [1024, -1, 1],
        [1024, 1, 1],
        [100, -1, 1],
        [100, 1, 1],
        [1024, -1, 64],
        [1024, -1, 1000],
      ]
    : [1024, 100].flatMap((s) => [-1, 1].flatMap((a) => [1, 64, 1000].map((p) => [s, a, p]))),
  maxProduceBytes: 2e9, // no produce run writes more than this
  linger: 5, // librdkafka's own default (rdkafka_performance sets 1000 unless told)
  tail: QUICK ? [[1024, 1]] : [[1024, 1], [100, 1], [1024, 64]], // [size, partitions]
  tailBytes: 200e6, // fits the default 256 MiB tail cache
  tailReps: QUICK ? 3 : 5,
  // Each tail read is repeated with this librdkafka fetch.message.max.bytes (its default is 1 MiB,
  // one fetch round trip per MiB on a single partition), so the reader is not the bound.
  tailFetchBytes: 8 * MiB,
  catchupBytes: QUICK ? 512 * MiB : 2e9,
  catchupReps: QUICK ? 1 : 2,
  latencySeconds: QUICK ? 6 : 10,
  latencyLinger: 1,
  // Each latency run first sends the same load for this long to another topic of the same
  // fresh server: a Node process's first seconds under load (JIT, heap sizing) are slower.
  latencyWarmupSeconds: QUICK ? 3 : 5,
  // the same measurement with rdkafka_performance -l (its rate limiter busy-waits): [size, acks, reps]
  latencyCrossCheck: QUICK ? [] : [[1024, -1, 1]],
  // the same rdkafka_latency run with the consumer fetching tailFetchBytes at a time: [size, acks, reps]
  latencyBigFetch: QUICK ? [] : [[1024, -1, 1]],
  // light load, to see the latency floor apart from overload: [size, acks, msgs/s]
  latencyFixed: [[1024, -1, 5000]],
  // [size, acks, reps]
  latency: QUICK ? [[1024, -1, REPS]] : [[1024, -1, REPS], [1024, 1, 1], [100, -1, 1]],
  jsSeconds: QUICK ? 4 : 7,
  jsAsyncSizes: [1024, 100],
  jsSyncSizes: QUICK ? [1024] : [1024, 100],
  jsLatency: QUICK ? [[1024, REPS]] : [[1024, REPS], [100, 1]],
  jsMaxPending: 4096,
  loopbackSeconds: QUICK ? 2 : 3,
  limitReps: REPS,
  ddBytes: QUICK ? 512 * MiB : 1024 * MiB,
  profileSeconds: QUICK ? 8 : 15,
  proxyReps: QUICK ? 1 : 3,
  cluster: {
    // What a user who wants fast failover would set; the default is 5 s.
    leaseTtlSeconds: Number(option('--lease-ttl', 2)),
    brokers: 3,
    // [size, acks, partitions], through 1 proxy to `brokers` brokers
    produce: [
      [1024, -1, 64],
      [1024, 1, 64],
    ],
    // A steady light load, where object-storage requests per byte are highest: [size, acks, partitions, msgs/s]
    // with the brokers' flags for it: the defaults, and flushes 250 ms apart
    lightLoad: [
      [1024, -1, 64, 1000, []],
      [1024, -1, 64, 1000, ['--flush-ms', '250', '--flush-min-ms', '250']],
    ],
    failoverKills: QUICK ? 3 : 5,
    failoverPartitions: 64,
    failoverRate: 2000, // msg/s over all partitions: one message per partition every 32 ms
    movePartitions: 1000,
    moveRounds: QUICK ? 1 : 3,
    moveFill: 100_000, // 100 B messages written before the moves, so recovery has WAL to read
  },
};

// ---------------------------------------------------------------- progress

class Progress {
  constructor() {
    this.tty = Boolean(process.stderr.isTTY);
    this.i = 0;
    this.total = 0;
    this.t0 = Date.now();
    this.lastPrint = 0;
  }
  clock() {
    const s = Math.round((Date.now() - this.t0) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  }
  begin(label) {
    this.i++;
    this.label = label;
    this.stepT0 = Date.now();
    this.show('starting');
  }
  line(text) {
    return `${this.clock()} [${this.i}/${this.total}] ${this.label} ${((Date.now() - this.stepT0) / 1000).toFixed(0)}s  ${text}`;
  }
  show(text) {
    const l = this.line(text);
    if (this.tty) {
      const cols = process.stderr.columns || 120;
      process.stderr.write(`\r\x1b[K${l.slice(0, cols - 1)}`);
    } else if (Date.now() - this.lastPrint > 5000) {
      process.stderr.write(`${l}\n`);
      this.lastPrint = Date.now();
    }
  }
  end(text) {
    const l = this.line(text);
    process.stderr.write(this.tty ? `\r\x1b[K${l}\n` : `${l}\n`);
    this.lastPrint = Date.now();
  }
  note(text) {
    process.stderr.write(this.tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  }
}
const progress = new Progress();

// ---------------------------------------------------------------- run state

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const REPORT_FROM = option('--report-from', '');
const runRoot = REPORT_FROM ? null : mkdtempSync(join(DATA_ROOT, 'skiff-bench-'));
const logDir = join(BUILD, 'logs', stamp);
if (!REPORT_FROM) mkdirSync(logDir, { recursive: true });
const cleanups = new Set();
let scenarioLog = join(logDir, 'setup.log');

/** Processes that take their own children down on SIGTERM (bench/cluster.ts): waited for before the data goes. */
const stopping = new Set();
function cleanupAll() {
  for (const c of cleanups) {
    try {
      c();
    } catch {
      /* best effort */
    }
  }
  cleanups.clear();
  removeRunRoot();
}
function removeRunRoot() {
  try {
    if (runRoot) rmSync(runRoot, { recursive: true, force: true });
  } catch {
    /* a server still writing there; what is left is under the data root */
  }
}
let interrupted = false;
process.on('SIGINT', async () => {
  interrupted = true;
  progress.note('\ninterrupted: stopping servers and removing data');
  cleanupAll();
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 100 && [...stopping].some(alive); i++) await sleep(100);
  removeRunRoot();
  process.exit(130);
});

const results = {
  schema: 1,
  kind: QUICK ? 'quick' : 'full',
  started: new Date().toISOString(),
  host: hostname(),
  options: { argv, reps: REPS, profile: PROFILE, dataRoot: DATA_ROOT, waitIdle: WAIT_IDLE, nice: NICE, config: C },
  idleWaits: [],
  /** cpuProbe() before each step: [{ step, aluMs, memMs }]. */
  cpuProbes: [],
  cpuProbeSize: { additions: CPU_PROBE_LOOPS, reads: MEM_PROBE_READS, arrayBytes: PROBE_ARRAY_LENGTH * 8 },
  machine: {},
  software: {},
  build: {},
  skiff: { produce: [], tail: [], catchup: [], latency: [], servers: [], proxyIdle: { runs: [] } },
  cluster: { produce: [], lightLoad: [], failover: null, move: null },
  jetstream: { pubAsync: [], pubSync: [], consume: [], latency: [], servers: [] },
  limits: {},
  profile: null,
  errors: [],
  commands: commandLog,
};

// ---------------------------------------------------------------- machine and build

async function capture(cmd, args, opts = {}) {
  try {
    const r = await run(cmd, args, { timeoutMs: 30_000, cwd: REPO, ...opts });
    return (r.stdout + r.stderr).trim();
  } catch (e) {
    return `unavailable (${e.message})`;
  }
}

async function describeMachine() {
  const cpu = cpus();
  const mem = readFileSync('/proc/meminfo', 'utf8');
  const df = await capture('df', ['-PT', DATA_ROOT]);
  const dfRow = df.split('\n').pop().split(/\s+/);
  if (dfRow[0]?.startsWith('/dev/')) setDiskDevice(dfRow[0].slice('/dev/'.length));
  results.machine = {
    hostname: hostname(),
    cores: cpu.length,
    model: cpu[0]?.model ?? 'unknown',
    mhz: cpu[0]?.speed,
    memoryBytes: totalmem(),
    memTotal: (mem.match(/^MemTotal:\s+(.*)$/m) ?? [])[1],
    kernel: release(),
    uname: await capture('uname', ['-a']),
    node: process.version,
    dataRoot: DATA_ROOT,
    dataRootFs: { device: dfRow[0], type: dfRow[1], mount: dfRow[6] },
    loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').trim(),
  };
  results.software = {
    librdkafka: await capture('dpkg-query', ['-W', '-f', '${Version}', 'librdkafka-dev']),
    kcat: (await capture('kcat', ['-V'])).split('\n').find((l) => /version/i.test(l)) ?? '',
    natsServer: await capture('nats-server', ['--version']),
    natsGo: await capture('dpkg-query', ['-W', '-f', '${Version}', 'golang-github-nats-io-go-nats-dev']),
    go: await capture('go', ['version']),
    cc: (await capture('cc', ['--version'])).split('\n')[0],
    rsvg: await capture('rsvg-convert', ['--version']),
    etcd: (await capture('etcd', ['--version'])).split('\n')[0],
    s3rver: await capture('node', ['-p', "require('s3rver/package.json').version"]),
    pythonConfluentKafka: await capture('/usr/bin/python3', ['-c', 'import confluent_kafka as c; print(c.version()[0], "on librdkafka", c.libversion()[0])']),
  };
  const head = await capture('git', ['rev-parse', 'HEAD']);
  const dirty = await capture('git', ['--no-optional-locks', 'status', '--porcelain']);
  results.software.git = { commit: head, changedFiles: dirty ? dirty.split('\n').length : 0 };
}

function newestMtime(dir, ext) {
  let newest = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith(ext)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

async function buildAll() {
  setScenario('build');
  progress.note('building load generators (bench/build.sh) ...');
  const b = await run('bash', ['bench/build.sh'], { cwd: REPO, timeoutMs: 900_000 });
  results.build.benchBuild = { exit: b.code, output: (b.stdout + b.stderr).trim().slice(-2000) };
  if (b.code !== 0) throw new Error(`bench/build.sh failed:\n${b.stderr}`);

  const mainPath = join(REPO, MAIN);
  const stale = !existsSync(mainPath) || newestMtime(join(REPO, 'services'), '.ts') > statSync(mainPath).mtimeMs;
  const doBuild = flag('--no-build') ? false : flag('--build') || stale;
  results.build.distWasStale = stale;
  if (doBuild) {
    progress.note('building Skiff (npm run build) ...');
    const t0 = Date.now();
    const r = await run('npm', ['run', 'build'], { cwd: REPO, timeoutMs: 900_000 });
    results.build.npmBuild = { exit: r.code, seconds: (Date.now() - t0) / 1000, output: (r.stdout + r.stderr).trim().slice(-3000) };
    if (r.code !== 0) {
      if (!existsSync(mainPath)) throw new Error(`npm run build failed and ${MAIN} is missing:\n${r.stdout}${r.stderr}`);
      progress.note(`warning: npm run build exited ${r.code} (tsc still emitted ${MAIN}); benchmarking what was emitted`);
    }
  } else {
    results.build.npmBuild = { skipped: true, reason: flag('--no-build') ? '--no-build' : 'dist/ newer than services/' };
  }
  if (!existsSync(mainPath)) throw new Error(`${MAIN} is missing: run npm run build`);
  results.build.distMtime = new Date(statSync(mainPath).mtimeMs).toISOString();
}

// ---------------------------------------------------------------- servers

async function startSkiff({ partitions = 1, nodeArgs = [], label = 'skiff' } = {}) {
  const dataDir = mkdtempSync(join(runRoot, 'skiff-data-'));
  const port = await freePort();
  const httpPort = await freePort();
  const args = [
    'dev',
    '--data-dir',
    dataDir,
    '--host',
    '127.0.0.1',
    '--advertised-host',
    '127.0.0.1',
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--default-partitions',
    String(partitions),
    '--log-level',
    'warn',
  ];
  const env = nodeArgs.length ? { SKIFF_NODE_FLAGS: [LAUNCHER_FLAGS, ...nodeArgs].join(' ').trim() } : undefined;
  const p = startProcess(SKIFF, args, { cwd: REPO, env, logFile: join(logDir, `${label}-server.log`) });
  const stop = async () => {
    await p.stop('SIGTERM', 20_000);
    rmSync(dataDir, { recursive: true, force: true });
  };
  const cleanup = () => {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  cleanups.add(cleanup);
  try {
    await waitHttp(`http://127.0.0.1:${httpPort}/readyz`, 60_000, () => p.child.exitCode === null);
  } catch (e) {
    await stop();
    cleanups.delete(cleanup);
    throw e;
  }
  await sleep(1000);
  const idle = memOf(p.pid);
  const srv = {
    pid: p.pid,
    port,
    httpPort,
    broker: `127.0.0.1:${port}`,
    dataDir,
    idleRss: idle.rss,
    async metrics() {
      try {
        const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
        return parseMetrics(await res.text());
      } catch {
        return {};
      }
    },
    async stop() {
      if (stopped) return stopped;
      const mem = memOf(p.pid);
      stopped = mem;
      await stop();
      cleanups.delete(cleanup);
      results.skiff.servers.push({ label, partitions, idleRss: idle.rss, peakRss: mem.hwm, finalRss: mem.rss });
      return mem;
    },
  };
  let stopped = null;
  return srv;
}

async function createTopic(srv, topic, partitions) {
  const end = Date.now() + 60_000;
  let last = '';
  while (Date.now() < end) {
    const r = await run('kcat', ['-L', '-b', srv.broker, '-t', topic, '-m', '10'], { cwd: REPO, timeoutMs: 30_000 });
    last = r.stdout + r.stderr;
    const m = last.match(/topic "[^"]+" with (\d+) partitions/);
    if (r.code === 0 && m && Number(m[1]) === partitions && !/Broker: Leader not available|Error/i.test(last)) return;
    await sleep(500);
  }
  throw new Error(`topic ${topic} did not appear with ${partitions} partitions: ${last.slice(-500)}`);
}

async function startNats(label) {
  const dir = mkdtempSync(join(runRoot, 'nats-data-'));
  const port = await freePort();
  const p = startProcess('nats-server', ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port)], { cwd: REPO, logFile: join(logDir, `${label}-nats.log`) });
  const cleanup = () => {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  cleanups.add(cleanup);
  await waitTcp(port, 20_000);
  await sleep(300);
  const idle = memOf(p.pid);
  let stopped = null;
  return {
    pid: p.pid,
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (stopped) return stopped;
      const mem = memOf(p.pid);
      stopped = mem;
      await p.stop('SIGTERM', 10_000);
      cleanups.delete(cleanup);
      rmSync(dir, { recursive: true, force: true });
      results.jetstream.servers.push({ label, idleRss: idle.rss, peakRss: mem.hwm });
      return mem;
    },
  };
}

// ---------------------------------------------------------------- load generators

const PRODUCED = /% (\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset (-?\d+), (\d+) failed\) in (\d+)ms: (\d+) msgs\/s/;
const CONSUMED = /% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms: (\d+) msgs\/s/;

/** Steady-state rate from cumulative samples [{ms, count}]: the first second is left out. */
function steadyRate(samples) {
  if (samples.length === 0) return NaN;
  const last = samples[samples.length - 1];
  const first = samples.find((s) => s.ms >= 900);
  if (first && last.ms - first.ms >= 1500) return ((last.count - first.count) * 1000) / (last.ms - first.ms);
  return last.ms > 0 ? (last.count * 1000) / last.ms : NaN;
}

async function rdkProduce(srv, topic, { size, acks, seconds, count, extra = [], label }) {
  const samples = [];
  let failed = 0;
  const args = ['-oL', RDKPERF, '-P', '-t', topic, '-b', srv.broker, '-s', String(size), '-c', String(count), '-a', String(acks), '-i', '500', '-X', `linger.ms=${C.linger}`, ...extra];
  const r = await run('stdbuf', args, {
    cwd: REPO,
    logFile: scenarioLog,
    interruptAfterMs: seconds * 1000,
    timeoutMs: seconds * 1000 + 30_000,
    onLine(line) {
      const m = line.match(PRODUCED);
      if (!m) return;
      samples.push({ ms: Number(m[6]), count: Number(m[3]) });
      failed = Number(m[5]);
      const rate = steadyRate(samples);
      progress.show(`${Math.round(rate).toLocaleString('en-US')} msg/s  ${((rate * size) / 1e6).toFixed(1)} MB/s`);
    },
  });
  const msgsPerSec = steadyRate(samples);
  return {
    exit: r.code,
    interrupted: r.interrupted,
    delivered: samples.at(-1)?.count ?? 0,
    failed,
    seconds: (samples.at(-1)?.ms ?? 0) / 1000,
    msgsPerSec,
    mbPerSec: (msgsPerSec * size) / 1e6,
    samples: samples.length,
  };
}

async function rdkConsume(srv, topic, { partitions, count, timeoutSeconds, label, size, fetchBytes }) {
  const parts = [];
  for (let i = 0; i < partitions; i++) parts.push('-p', String(i));
  if (fetchBytes) parts.push('-X', `fetch.message.max.bytes=${fetchBytes}`);
  let last = null;
  const r = await run('stdbuf', ['-oL', RDKPERF, '-C', '-t', topic, '-b', srv.broker, ...parts, '-o', 'beginning', '-e', '-c', String(count), '-i', '500'], {
    cwd: REPO,
    logFile: scenarioLog,
    timeoutMs: timeoutSeconds * 1000,
    onLine(line) {
      const m = line.match(CONSUMED);
      if (!m) return;
      last = { msgs: Number(m[1]), bytes: Number(m[2]), ms: Number(m[3]) };
      progress.show(`${last.msgs.toLocaleString('en-US')} msgs  ${((last.bytes / Math.max(last.ms, 1)) * 1000 / 1e6).toFixed(0)} MB/s`);
    },
  });
  if (!last) throw new Error(`consumer printed no result (exit ${r.code}): ${r.stderr.slice(-500)}`);
  return {
    exit: r.code,
    timedOut: r.timedOut,
    msgs: last.msgs,
    bytes: last.bytes,
    seconds: last.ms / 1000,
    msgsPerSec: (last.msgs * 1000) / Math.max(last.ms, 1),
    mbPerSec: (last.bytes / Math.max(last.ms, 1)) * 1000 / 1e6,
    complete: last.msgs >= count,
    size,
  };
}

/** Produce exactly `count` messages (to completion) to fill a topic. */
async function rdkFill(srv, topic, { size, count, label }) {
  let last = null;
  const r = await run('stdbuf', ['-oL', RDKPERF, '-P', '-t', topic, '-b', srv.broker, '-s', String(size), '-c', String(count), '-a', '1', '-i', '1000', '-X', `linger.ms=${C.linger}`], {
    cwd: REPO,
    logFile: scenarioLog,
    timeoutMs: 600_000,
    onLine(line) {
      const m = line.match(PRODUCED);
      if (!m) return;
      last = { delivered: Number(m[3]), ms: Number(m[6]) };
      progress.show(`filling ${((last.delivered / count) * 100).toFixed(0)}%  ${((last.delivered * size) / 1e6).toFixed(0)} MB`);
    },
  });
  if (r.code !== 0 || !last || last.delivered < count) throw new Error(`fill of ${topic} incomplete (exit ${r.code}, ${last?.delivered ?? 0}/${count})`);
  return { delivered: last.delivered, seconds: last.ms / 1000, mbPerSec: (last.delivered * size) / 1e6 / (last.ms / 1000) };
}

async function jsbench(url, mode, { size, seconds, extra = [], label }) {
  const samples = [];
  const r = await run(JSBENCH, ['-url', url, '-mode', mode, '-size', String(size), '-duration', `${seconds}s`, ...extra], {
    cwd: REPO,
    logFile: scenarioLog,
    timeoutMs: seconds * 1000 + 60_000,
    onLine(line, stream) {
      if (stream !== 'stderr') return;
      const m = line.match(/% \S+ (?:acked )?(\d+) msgs in ([\d.]+)s/);
      if (!m) return;
      samples.push({ ms: Number(m[2]) * 1000, count: Number(m[1]) });
      const rate = steadyRate(samples);
      progress.show(`${Math.round(rate).toLocaleString('en-US')} msg/s  ${((rate * size) / 1e6).toFixed(1)} MB/s`);
    },
  });
  const json = r.stdout.trim().split('\n').pop();
  let out;
  try {
    out = JSON.parse(json);
  } catch {
    throw new Error(`jsbench ${mode} gave no result (exit ${r.code}): ${r.stderr.slice(-500)}`);
  }
  if (mode === 'pub-async' || mode === 'pub-sync') {
    const steady = steadyRate(samples.length >= 2 ? samples : []);
    out.steadyMsgsPerSec = Number.isFinite(steady) ? steady : out.msgs_per_sec;
  } else {
    out.steadyMsgsPerSec = out.msgs_per_sec;
  }
  out.steadyMbPerSec = (out.steadyMsgsPerSec * size) / 1e6;
  out.exit = r.code;
  return out;
}

// ---------------------------------------------------------------- scenarios

const steps = [];
const step = (group, label, fn) => steps.push({ group, label, fn });
const acksName = (a) => (a === -1 ? 'all' : String(a));
const sizeName = (s) => (s >= 1024 ? `${s / 1024}KiB` : `${s}B`);

function measureWindow(pids) {
  return cpuWindow(() => pids);
}

// limits
if (want('limits')) {
  for (let rep = 1; rep <= C.limitReps; rep++) {
    step('limits', `limits: loopback TCP (run ${rep}/${C.limitReps})`, async () => {
      const r = await run(LIMITS, ['loopback', '-duration', `${C.loopbackSeconds}s`], { cwd: REPO, timeoutMs: 60_000, logFile: scenarioLog });
      const j = JSON.parse(r.stdout.trim().split('\n').pop());
      (results.limits.loopback ??= { runs: [] }).runs.push(j);
      return `${j.mb_per_sec.toFixed(0)} MB/s`;
    });
    step('limits', `limits: dd sequential write + fdatasync (run ${rep}/${C.limitReps})`, async () => {
      const file = join(runRoot, `dd-${rep}.bin`);
      const count = Math.round(C.ddBytes / MiB);
      const r = await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${count}`, 'conv=fdatasync'], { cwd: REPO, timeoutMs: 300_000, logFile: scenarioLog });
      rmSync(file, { force: true });
      const m = r.stderr.match(/(\d+) bytes .* copied, ([\d.]+) s/);
      if (!m) throw new Error(`dd: ${r.stderr}`);
      const j = { bytes: Number(m[1]), seconds: Number(m[2]), mb_per_sec: Number(m[1]) / Number(m[2]) / 1e6 };
      (results.limits.dd ??= { runs: [] }).runs.push(j);
      return `${j.mb_per_sec.toFixed(0)} MB/s`;
    });
    step('limits', `limits: 4 MiB writes each fdatasync'd (run ${rep}/${C.limitReps})`, async () => {
      const r = await run(LIMITS, ['fsync', '-dir', runRoot, '-total', String(C.ddBytes), '-chunk', String(4 * MiB)], { cwd: REPO, timeoutMs: 300_000, logFile: scenarioLog });
      const j = JSON.parse(r.stdout.trim().split('\n').pop());
      (results.limits.fsync4m ??= { runs: [] }).runs.push(j);
      return `${j.mb_per_sec.toFixed(0)} MB/s, sync p50 ${j.sync_ms_p50} ms`;
    });
  }
  step('limits', 'limits: 4 KiB append + fdatasync rate', async () => {
    const r = await run(LIMITS, ['syncrate', '-dir', runRoot, '-duration', '2s', '-chunk', '4096'], { cwd: REPO, timeoutMs: 60_000, logFile: scenarioLog });
    const j = JSON.parse(r.stdout.trim().split('\n').pop());
    results.limits.syncrate = j;
    return `${j.syncs_per_sec.toFixed(0)} syncs/s, p50 ${j.sync_ms_p50} ms, p99 ${j.sync_ms_p99} ms`;
  });
}

// Proxy idle memory: `skiff proxy` (cluster mode) on a throwaway etcd and nats-server
if (want('memory')) {
  for (let rep = 1; rep <= C.proxyReps; rep++) {
    step('memory', `skiff proxy idle RSS (run ${rep}/${C.proxyReps})`, async () => {
      const help = await run(SKIFF, ['proxy', '--help'], { cwd: REPO, timeoutMs: 30_000 });
      if (help.code !== 0) {
        results.skiff.proxyIdle.note = 'this build has no `skiff proxy` command';
        return 'skipped: no proxy command in this build';
      }
      const dir = mkdtempSync(join(runRoot, 'cluster-'));
      const [cport, pport, nport, kport, hport] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
      const procs = [];
      try {
        procs.push(
          startProcess(
            'etcd',
            ['--data-dir', join(dir, 'etcd'), '--listen-client-urls', `http://127.0.0.1:${cport}`, '--advertise-client-urls', `http://127.0.0.1:${cport}`, '--listen-peer-urls', `http://127.0.0.1:${pport}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${pport}`, '--initial-cluster', `default=http://127.0.0.1:${pport}`],
            { cwd: REPO, logFile: join(logDir, `proxy-${rep}-etcd.log`) },
          ),
        );
        procs.push(startProcess('nats-server', ['-a', '127.0.0.1', '-p', String(nport)], { cwd: REPO, logFile: join(logDir, `proxy-${rep}-nats.log`) }));
        for (const p of procs) cleanups.add(() => process.kill(p.pid, 'SIGKILL'));
        await waitTcp(cport, 30_000);
        await waitTcp(nport, 30_000);
        const proxy = startProcess(SKIFF, ['proxy', '--etcd', `http://127.0.0.1:${cport}`, '--nats', `nats://127.0.0.1:${nport}`, '--host', '127.0.0.1', '--advertised-host', '127.0.0.1', '--port', String(kport), '--http-port', String(hport), '--log-level', 'warn'], { cwd: REPO, logFile: join(logDir, `proxy-${rep}.log`) });
        procs.unshift(proxy);
        cleanups.add(() => process.kill(proxy.pid, 'SIGKILL'));
        await waitHttp(`http://127.0.0.1:${hport}/healthz`, 60_000, () => proxy.child.exitCode === null);
        await sleep(3000);
        const mem = memOf(proxy.pid);
        results.skiff.proxyIdle.runs.push({ rss: mem.rss, hwm: mem.hwm, anon: mem.anon, file: mem.file });
        return `idle RSS ${(mem.rss / 1e6).toFixed(1)} MB (peak ${(mem.hwm / 1e6).toFixed(1)} MB; own ${(mem.anon / 1e6).toFixed(1)} MB, mapped files ${(mem.file / 1e6).toFixed(1)} MB)`;
      } finally {
        for (const p of procs) await p.stop('SIGTERM', 10_000);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
  // What a proxy's RSS cannot go below: Node itself, and Node holding only the metadata and
  // bus clients every proxy needs (etcd3, with gRPC and protobufjs, and nats), read the same way.
  const floors = [
    ['node', 'setInterval(() => {}, 1e9)'],
    ['node + etcd3 + nats', "require('etcd3'); require('nats'); setInterval(() => {}, 1e9)"],
    ['node + every library a proxy loads (etcd3, nats, prom-client, pino, commander)', "for (const m of ['etcd3', 'nats', 'prom-client', 'pino', 'commander']) require(m); setInterval(() => {}, 1e9)"],
  ];
  for (const [label, script] of floors) {
    step('memory', `RSS floor: ${label}`, async () => {
      const p = startProcess(process.execPath, ['-e', script], { cwd: REPO, logFile: join(logDir, 'rss-floor.log') });
      cleanups.add(() => process.kill(p.pid, 'SIGKILL'));
      try {
        await sleep(3000);
        const mem = memOf(p.pid);
        (results.skiff.proxyIdle.floors ??= []).push({ label, rss: mem.rss, anon: mem.anon, file: mem.file });
        return `idle RSS ${(mem.rss / 1e6).toFixed(1)} MB (own ${(mem.anon / 1e6).toFixed(1)} MB, mapped files ${(mem.file / 1e6).toFixed(1)} MB)`;
      } finally {
        await p.stop('SIGTERM', 5_000);
      }
    });
  }
}

// Skiff produce
const produceByKey = new Map();
if (want('produce') || want('latency')) {
  const matrix = want('produce') ? C.produceMatrix : C.produceMatrix.filter(([s, a, p]) => p === 1 && C.latency.some(([ls, la]) => ls === s && la === a));
  for (const [size, acks, partitions] of matrix) {
    const key = `${size}/${acks}/${partitions}`;
    const entry = { size, acks, partitions, runs: [] };
    produceByKey.set(key, entry);
    results.skiff.produce.push(entry);
    for (let rep = 1; rep <= C.produceReps; rep++) {
      const label = `skiff produce ${sizeName(size)} acks=${acksName(acks)} p=${partitions}`;
      step('produce', `${label} (run ${rep}/${C.produceReps})`, async () => {
        const srv = await startSkiff({ partitions, label: `produce-${size}-${acksName(acks)}-${partitions}-${rep}` });
        try {
          const topic = `bench-${size}-${acksName(acks)}-${partitions}`;
          await createTopic(srv, topic, partitions);
          const m0 = await srv.metrics();
          const win = measureWindow([srv.pid]);
          const r = await rdkProduce(srv, topic, { size, acks, seconds: C.produceSeconds, count: Math.floor(C.maxProduceBytes / size), label });
          r.cpu = win();
          const m1 = await srv.metrics();
          r.metrics = metricsDelta(m0, m1, ['skiff_broker_segments_rolled_total', 'skiff_broker_flushes_total', 'skiff_broker_flush_bytes_sum', 'skiff_broker_bytes_in_total', 'skiff_broker_records_in_total', 'skiff_proxy_requests_total{api="Produce"}', 'skiff_proxy_request_seconds_sum{api="Produce"}', 'skiff_proxy_request_seconds_count{api="Produce"}']);
          r.idleRss = srv.idleRss;
          const mem = await srv.stop();
          r.peakRss = mem.hwm;
          entry.runs.push(r);
          if (!(r.msgsPerSec > 0)) throw new Error(`no messages delivered (exit ${r.exit})`);
          return `${Math.round(r.msgsPerSec).toLocaleString('en-US')} msg/s  ${r.mbPerSec.toFixed(1)} MB/s  server CPU ${r.cpu.serverCpuPct}%  disk writes ${r.cpu.diskWriteMBps ?? '?'} MB/s  other ${r.cpu.otherCpuPct}%  peak RSS ${(mem.hwm / 1e6).toFixed(0)} MB`;
        } finally {
          await srv.stop().catch(() => undefined);
        }
      });
    }
  }
}

// Skiff consume: tail (from the cache) and catch-up
if (want('consume')) {
  for (const [size, partitions] of C.tail) {
    const count = Math.floor(C.tailBytes / size);
    const entry = { size, partitions, bytes: count * size, runs: [], tuned: { fetchBytes: C.tailFetchBytes, runs: [] }, fill: null, cacheShare: null };
    results.skiff.tail.push(entry);
    const label = `skiff consume tail ${sizeName(size)} p=${partitions}`;
    step('consume', `${label} (${(count * size / 1e6).toFixed(0)} MB, ${C.tailReps} reads with each fetch size)`, async () => {
      const srv = await startSkiff({ partitions, label: `tail-${size}-${partitions}` });
      try {
        const topic = `tail-${size}-${partitions}`;
        await createTopic(srv, topic, partitions);
        entry.fill = await rdkFill(srv, topic, { size, count, label });
        await sleep(500);
        const m0 = await srv.metrics();
        // Reads with librdkafka's default fetch size and with a larger one, interleaved.
        for (let rep = 1; rep <= C.tailReps; rep++) {
          for (const [runs, fetchBytes] of [[entry.runs, undefined], [entry.tuned.runs, entry.tuned.fetchBytes]]) {
            const win = measureWindow([srv.pid]);
            const r = await rdkConsume(srv, topic, { partitions, count, timeoutSeconds: 120, label: `${label} read ${rep}/${C.tailReps}${fetchBytes ? `, fetch ${fetchBytes / MiB} MiB` : ''}`, size, fetchBytes });
            r.cpu = win();
            runs.push(r);
          }
        }
        const m1 = await srv.metrics();
        const d = metricsDelta(m0, m1, ['skiff_broker_bytes_out_total']);
        const cache = d['skiff_broker_bytes_out_total{source="cache"}'] ?? 0;
        const storage = d['skiff_broker_bytes_out_total{source="storage"}'] ?? 0;
        entry.cacheShare = cache + storage > 0 ? cache / (cache + storage) : null;
        entry.peakRss = (await srv.stop()).hwm;
        const med = median(entry.runs.map((r) => r.mbPerSec));
        const tuned = median(entry.tuned.runs.map((r) => r.mbPerSec));
        return `median ${med.toFixed(0)} MB/s (${tuned.toFixed(0)} MB/s with ${entry.tuned.fetchBytes / MiB} MiB fetches) over ${entry.runs.length} reads each, ${((entry.cacheShare ?? 0) * 100).toFixed(0)}% from cache`;
      } finally {
        await srv.stop().catch(() => undefined);
      }
    });
  }
  {
    const size = 1024;
    const count = Math.floor(C.catchupBytes / size);
    const entry = { size, partitions: 1, bytes: count * size, runs: [], fill: null, cacheShare: null };
    results.skiff.catchup.push(entry);
    const label = `skiff consume catch-up ${sizeName(size)} p=1`;
    step('consume', `${label} (${(count * size / 1e6).toFixed(0)} MB, ${C.catchupReps} reads)`, async () => {
      const srv = await startSkiff({ partitions: 1, label: 'catchup' });
      try {
        const topic = 'catchup-1024';
        await createTopic(srv, topic, 1);
        entry.fill = await rdkFill(srv, topic, { size, count, label });
        await sleep(1000);
        const m0 = await srv.metrics();
        for (let rep = 1; rep <= C.catchupReps; rep++) {
          const win = measureWindow([srv.pid]);
          const r = await rdkConsume(srv, topic, { partitions: 1, count, timeoutSeconds: 300, label: `${label} read ${rep}/${C.catchupReps}`, size });
          r.cpu = win();
          entry.runs.push(r);
        }
        const m1 = await srv.metrics();
        const d = metricsDelta(m0, m1, ['skiff_broker_bytes_out_total', 'skiff_broker_storage_reads_total']);
        const cache = d['skiff_broker_bytes_out_total{source="cache"}'] ?? 0;
        const storage = d['skiff_broker_bytes_out_total{source="storage"}'] ?? 0;
        entry.cacheShare = cache + storage > 0 ? cache / (cache + storage) : null;
        entry.storageReads = d['skiff_broker_storage_reads_total{result="ok"}'];
        entry.peakRss = (await srv.stop()).hwm;
        return `median ${median(entry.runs.map((r) => r.mbPerSec)).toFixed(0)} MB/s, ${((1 - (entry.cacheShare ?? 0)) * 100).toFixed(0)}% from storage`;
      } finally {
        await srv.stop().catch(() => undefined);
      }
    });
  }
}

// JetStream
const jsAsyncBySize = new Map();
if (want('jetstream')) {
  for (const size of C.jsAsyncSizes) {
    const entry = { size, maxPending: C.jsMaxPending, runs: [] };
    jsAsyncBySize.set(size, entry);
    results.jetstream.pubAsync.push(entry);
    for (let rep = 1; rep <= C.produceReps; rep++) {
      const label = `jetstream publish async ${sizeName(size)}`;
      step('jetstream', `${label} (run ${rep}/${C.produceReps})`, async () => {
        const srv = await startNats(`pub-async-${size}-${rep}`);
        try {
          const win = measureWindow([srv.pid]);
          const r = await jsbench(srv.url, 'pub-async', { size, seconds: C.jsSeconds, extra: ['-max-pending', String(C.jsMaxPending), '-max-bytes', String(C.maxProduceBytes)], label });
          r.cpu = win();
          r.peakRss = (await srv.stop()).hwm;
          entry.runs.push(r);
          return `${Math.round(r.steadyMsgsPerSec).toLocaleString('en-US')} msg/s  ${r.steadyMbPerSec.toFixed(1)} MB/s  server CPU ${r.cpu.serverCpuPct}%  other ${r.cpu.otherCpuPct}%`;
        } finally {
          await srv.stop().catch(() => undefined);
        }
      });
    }
  }
  for (const size of C.jsSyncSizes) {
    const entry = { size, workers: 1, runs: [] };
    results.jetstream.pubSync.push(entry);
    const label = `jetstream publish sync ${sizeName(size)}`;
    step('jetstream', label, async () => {
      const srv = await startNats(`pub-sync-${size}`);
      try {
        const win = measureWindow([srv.pid]);
        const r = await jsbench(srv.url, 'pub-sync', { size, seconds: Math.min(C.jsSeconds, 5), extra: ['-max-bytes', String(C.maxProduceBytes)], label });
        r.cpu = win();
        r.peakRss = (await srv.stop()).hwm;
        entry.runs.push(r);
        return `${Math.round(r.steadyMsgsPerSec).toLocaleString('en-US')} msg/s  ${r.steadyMbPerSec.toFixed(1)} MB/s`;
      } finally {
        await srv.stop().catch(() => undefined);
      }
    });
  }
  {
    const size = 1024;
    const count = Math.floor(C.tailBytes / size);
    const entry = { size, bytes: count * size, runs: [] };
    results.jetstream.consume.push(entry);
    const label = `jetstream consume ${sizeName(size)}`;
    step('jetstream', `${label} (${(count * size / 1e6).toFixed(0)} MB, ${C.tailReps} reads)`, async () => {
      const srv = await startNats('consume');
      try {
        entry.fill = await jsbench(srv.url, 'pub-async', { size, seconds: 300, extra: ['-max-bytes', String(count * size), '-quiet'], label: `${label} filling` });
        for (let rep = 1; rep <= C.tailReps; rep++) {
          const win = measureWindow([srv.pid]);
          const r = await jsbench(srv.url, 'consume', { size, seconds: 120, extra: ['-create=false', '-expect', String(entry.fill.msgs)], label: `${label} read ${rep}` });
          r.cpu = win();
          entry.runs.push(r);
        }
        entry.peakRss = (await srv.stop()).hwm;
        return `median ${median(entry.runs.map((r) => r.mb_per_sec)).toFixed(0)} MB/s`;
      } finally {
        await srv.stop().catch(() => undefined);
      }
    });
  }
}

// Latency at 50% of the measured maximum
/** Per-second produce latency from rdkafka_latency -A: the three worst seconds after the first (warm-up). */
function worstSeconds(file) {
  if (!existsSync(file)) return [];
  const buckets = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [t, l] = line.split(' ').map(Number);
    if (!Number.isFinite(l)) continue;
    const k = Math.floor(t / 1000);
    if (k < 1) continue;
    let b = buckets.get(k);
    if (!b) buckets.set(k, (b = []));
    b.push(l);
  }
  return [...buckets.entries()]
    .map(([k, v]) => {
      v.sort((a, b) => a - b);
      return { second: k, p50: Number(v[v.length >> 1].toFixed(1)), max: Number(v[v.length - 1].toFixed(1)), count: v.length };
    })
    .sort((a, b) => b.max - a.max)
    .slice(0, 3);
}

async function latencyWithRdkafkaLatency(srv, topic, { size, acks, rate, consumerFetchBytes, partitions = 1, seconds = C.latencySeconds, skipSeconds = 1 }) {
  const series = join(runRoot, `lat-series-${topic}.txt`);
  const consumer = consumerFetchBytes ? ['-C', `fetch.message.max.bytes=${consumerFetchBytes}`] : [];
  const r = await run(RDKLAT, ['-b', srv.broker, '-t', topic, '-s', String(size), '-a', String(acks), '-r', String(rate), '-d', String(seconds), '-w', String(skipSeconds), '-p', String(partitions), '-X', `linger.ms=${C.latencyLinger}`, ...consumer, '-A', series], {
    cwd: REPO,
    logFile: scenarioLog,
    timeoutMs: (seconds + 90) * 1000,
    onLine(line, stream) {
      const m = stream === 'stderr' && line.match(/% ([\d.]+)s sent (\d+) delivered (\d+)/);
      if (m) progress.show(`at ${rate.toLocaleString('en-US')} msg/s: ${Number(m[3]).toLocaleString('en-US')} delivered`);
    },
  });
  let j;
  try {
    j = JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    throw new Error(`rdkafka_latency gave no result (exit ${r.code}): ${r.stderr.slice(-500)}`);
  }
  const worst = worstSeconds(series);
  rmSync(series, { force: true });
  return { rate, achievedMsgsPerSec: j.achieved_msgs_per_sec, delivered: j.delivered, failed: j.failed, received: j.received, exit: r.code, produceLatencyMs: j.produce_ms, e2eLatencyMs: j.e2e_ms, worstSeconds: worst };
}

async function latencyWithRdkafkaPerformance(srv, topic, { size, acks, rate, label }) {
  const count = rate * C.latencySeconds;
  const prodFile = join(runRoot, `lat-prod-${topic}.txt`);
  const consFile = join(runRoot, `lat-cons-${topic}.txt`);
  const consumer = run('stdbuf', ['-oL', RDKPERF, '-C', '-t', topic, '-b', srv.broker, '-p', '0', '-o', 'end', '-l', '-A', consFile, '-i', '1000'], {
    cwd: REPO,
    logFile: scenarioLog,
    timeoutMs: (C.latencySeconds + 90) * 1000,
  });
  await sleep(2000);
  let produced = null;
  const prod = await run('stdbuf', ['-oL', RDKPERF, '-P', '-t', topic, '-b', srv.broker, '-s', String(size), '-a', String(acks), '-l', '-A', prodFile, '-r', String(rate), '-c', String(count), '-i', '1000', '-X', `linger.ms=${C.latencyLinger}`], {
    cwd: REPO,
    logFile: scenarioLog,
    timeoutMs: (C.latencySeconds + 60) * 1000,
    onLine(line) {
      const m = line.match(PRODUCED);
      if (!m) return;
      produced = { delivered: Number(m[3]), ms: Number(m[6]), failed: Number(m[5]) };
      progress.show(`at ${rate.toLocaleString('en-US')} msg/s: ${produced.delivered.toLocaleString('en-US')} delivered`);
    },
  });
  await sleep(2000);
  consumer.child.kill('SIGINT');
  const cons = await consumer;
  const drop = rate; // the first second of samples is warm-up
  const r = {
    rate,
    achievedMsgsPerSec: produced ? (produced.delivered * 1000) / Math.max(produced.ms, 1) : NaN,
    delivered: produced?.delivered ?? 0,
    failed: produced?.failed ?? 0,
    exit: prod.code,
    consumerExit: cons.code,
    produceLatencyMs: summarize(readLatencyFile(prodFile, drop)),
    e2eLatencyMs: summarize(readLatencyFile(consFile, drop)),
  };
  rmSync(prodFile, { force: true });
  rmSync(consFile, { force: true });
  return r;
}

/**
 * bench/limits paced: a new O_DSYNC file of flush.ms worth of `bytesPerSec` every flush.ms,
 * its directory fsync'd alongside (the embedded store's WAL put), on the data directories'
 * filesystem, for as long as a latency run sends.
 */
async function pacedWrites(bytesPerSec) {
  const tick = results.skiff.settings.flushMs || 10;
  const r = await run(LIMITS, ['paced', '-dir', runRoot, '-rate', String(Math.round(bytesPerSec)), '-tick', `${tick}ms`, '-duration', `${C.latencySeconds}s`], { cwd: REPO, timeoutMs: (C.latencySeconds + 60) * 1000, logFile: scenarioLog });
  if (r.code !== 0) throw new Error(`limits paced exited ${r.code}: ${r.stderr.slice(-300)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

if (want('latency')) {
  const plan = [
    ...C.latency.map(([size, acks, reps]) => [size, acks, reps, 'rdkafka_latency', 0]),
    ...C.latencyCrossCheck.map(([size, acks, reps]) => [size, acks, reps, 'rdkafka_performance', 0]),
    ...C.latencyFixed.map(([size, acks, rate]) => [size, acks, 1, 'rdkafka_latency', rate]),
    ...C.latencyBigFetch.map(([size, acks, reps]) => [size, acks, reps, 'rdkafka_latency', 0, C.tailFetchBytes]),
  ];
  for (const [size, acks, reps, client, fixedRate, consumerFetchBytes] of plan) {
    const entry = { size, acks, partitions: 1, client, fixedRate: fixedRate || undefined, consumerFetchBytes, runs: [] };
    results.skiff.latency.push(entry);
    for (let rep = 1; rep <= reps; rep++) {
      const label = `skiff latency ${sizeName(size)} acks=${acksName(acks)} [${client}]${fixedRate ? ` at a fixed ${fixedRate.toLocaleString('en-US')} msg/s` : ''}${consumerFetchBytes ? `, consumer fetches ${consumerFetchBytes / MiB} MiB` : ''}`;
      step('latency', `${label} (run ${rep}/${reps})`, async () => {
        let rate = fixedRate;
        if (!rate) {
          const base = produceByKey.get(`${size}/${acks}/1`);
          const max = median(base?.runs.map((r) => r.msgsPerSec) ?? []);
          if (!(max > 0)) throw new Error(`no produce result for ${sizeName(size)} acks=${acksName(acks)} p=1 to take 50% of`);
          rate = Math.max(100, Math.round(max / 2));
          entry.maxMsgsPerSec = max;
        }
        entry.rate = rate;
        const srv = await startSkiff({ partitions: 1, label: `latency-${size}-${acksName(acks)}-${client}-${rep}` });
        try {
          const topic = `lat-${size}-${acksName(acks)}-${rep}`;
          await createTopic(srv, topic, 1);
          // Warm the fresh server with the same load on another topic; its own figures (first
          // second included) are kept to show what a cold server gives.
          await createTopic(srv, `${topic}-warmup`, 1);
          progress.show(`warming up: ${C.latencyWarmupSeconds} s at ${rate.toLocaleString('en-US')} msg/s`);
          const cold = await latencyWithRdkafkaLatency(srv, `${topic}-warmup`, { size, acks, rate, consumerFetchBytes, seconds: C.latencyWarmupSeconds, skipSeconds: 0 });
          const m0 = await srv.metrics();
          const win = measureWindow([srv.pid]);
          const fn = client === 'rdkafka_latency' ? latencyWithRdkafkaLatency : latencyWithRdkafkaPerformance;
          const r = await fn(srv, topic, { size, acks, rate, label, consumerFetchBytes });
          r.cpu = win();
          r.warmup = { seconds: C.latencyWarmupSeconds, produceLatencyMs: cold.produceLatencyMs, e2eLatencyMs: cold.e2eLatencyMs };
          const m1 = await srv.metrics();
          r.metrics = metricsDelta(m0, m1, ['skiff_broker_segments_rolled_total', 'skiff_broker_flushes_total', 'skiff_broker_checkpoints_total']);
          r.server = serverTime(metricsDelta(m0, m1, SERVER_TIME_METRICS), m1);
          r.peakRss = (await srv.stop()).hwm;
          r.cpuProbe = stepProbe;
          // The disk alone, right after, at the same byte rate and in the same pattern as the
          // WAL: what no server could beat for durable acks on this machine at this minute.
          if (acks === -1) r.diskFloor = await pacedWrites(size * rate);
          entry.runs.push(r);
          const a = r.produceLatencyMs ?? {};
          const e = r.e2eLatencyMs ?? {};
          const floor = r.diskFloor ? `  disk alone p99 ${r.diskFloor.ms_p99.toFixed(1)} ms` : '';
          return `rate ${Math.round(r.achievedMsgsPerSec).toLocaleString('en-US')}/s of ${rate.toLocaleString('en-US')}  produce p50/p99/p999 ${a.p50}/${a.p99}/${a.p999} ms  e2e ${e.p50}/${e.p99}/${e.p999} ms${floor}  other CPU ${r.cpu.otherCpuPct}%`;
        } finally {
          await srv.stop().catch(() => undefined);
        }
      });
    }
  }
}
if (want('jetstream')) {
  for (const [size, reps] of C.jsLatency) {
    const entry = { size, runs: [] };
    results.jetstream.latency.push(entry);
    for (let rep = 1; rep <= reps; rep++) {
      const label = `jetstream latency ${sizeName(size)}`;
      step('jetstream', `${label} (run ${rep}/${reps})`, async () => {
        const base = jsAsyncBySize.get(size);
        const max = median(base?.runs.map((r) => r.steadyMsgsPerSec) ?? []);
        if (!(max > 0)) throw new Error(`no JetStream async publish result for ${sizeName(size)}`);
        const rate = Math.max(100, Math.round(max / 2));
        entry.maxMsgsPerSec = max;
        entry.rate = rate;
        const srv = await startNats(`latency-${size}-${rep}`);
        try {
          const win = measureWindow([srv.pid]);
          // The same warm-up as Skiff's (see latencyWarmupSeconds), here at the start of the run.
          const r = await jsbench(srv.url, 'latency', { size, seconds: C.latencySeconds + C.latencyWarmupSeconds, extra: ['-rate', String(rate), '-warmup', `${C.latencyWarmupSeconds + 1}s`, '-max-pending', String(C.jsMaxPending)], label });
          r.cpu = win();
          r.peakRss = (await srv.stop()).hwm;
          entry.runs.push(r);
          const a = r.ack_latency_ms ?? {};
          const e = r.e2e_latency_ms ?? {};
          return `rate ${Math.round(r.msgs_per_sec).toLocaleString('en-US')}/s  ack p50/p99/p999 ${a.p50?.toFixed(2)}/${a.p99?.toFixed(2)}/${a.p999?.toFixed(2)} ms  e2e ${e.p50?.toFixed(2)}/${e.p99?.toFixed(2)}/${e.p999?.toFixed(2)} ms`;
        } finally {
          await srv.stop().catch(() => undefined);
        }
      });
    }
  }
}

// CPU profile of the produce path
if (PROFILE && (ONLY.length === 0 || ONLY.includes('profile'))) {
  step('profile', `profile: skiff --cpu-prof under 1KiB acks=all p=1 (${C.profileSeconds}s)`, async () => {
    const profDir = join(BUILD, 'profiles', stamp);
    mkdirSync(profDir, { recursive: true });
    const srv = await startSkiff({ partitions: 1, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', rel(profDir)], label: 'profile' });
    let r;
    try {
      await createTopic(srv, 'profile-1024', 1);
      r = await rdkProduce(srv, 'profile-1024', { size: 1024, acks: -1, seconds: C.profileSeconds, count: Math.floor(C.maxProduceBytes / 1024), label: 'profiled produce' });
    } finally {
      await srv.stop();
    }
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) throw new Error(`no .cpuprofile written in ${profDir}`);
    const file = join(profDir, files[0]);
    const top = summarizeProfile(file, { top: 25, cwd: REPO });
    const byFile = summarizeProfile(file, { top: 15, cwd: REPO, byFile: true });
    results.profile = { file: rel(file), underLoad: r, top, byFile };
    return `${r.mbPerSec.toFixed(1)} MB/s while profiled; top: ${top.rows[0]?.function} ${top.rows[0]?.selfPct}%`;
  });
}

// Cluster mode: bench/cluster.ts starts the cluster with the e2e tests' launcher
// (e2e/cluster/support.ts); its processes' data goes under runRoot through TMPDIR.

/** Commands bench/cluster.ts started, into the results' command list under the current step. */
function foldCommands(scenario, cmds) {
  for (const c of cmds ?? []) commandLog.push({ scenario, command: c.command, started: c.started, seconds: null, exit: null, background: c.background, via: CLUSTER_TS, note: c.note });
}

function clusterArgs(mode, label) {
  if (!existsSync(join(REPO, VITE_NODE))) throw new Error(`${VITE_NODE} is missing (it comes with vitest): run npm install`);
  const slug = label.replace(/[^\w=.-]+/g, '_').slice(0, 60);
  return [CLUSTER_TS, '--', mode, '--lease-ttl', String(C.cluster.leaseTtlSeconds), '--log-dir', logDir, '--log-prefix', slug];
}

const showClusterProgress = (line, stream) => stream === 'stderr' && line.startsWith('% ') && progress.show(line.slice(2));

/**
 * A cluster (`bench/cluster.ts serve`) with `topic` created and Online, held until stop():
 * the load runs from here, and /proc of its processes is read from here.
 */
async function startCluster({ label, topic, partitions, brokerArgs = [] }) {
  let ready;
  const gotReady = new Promise((resolve, reject) => (ready = { resolve, reject }));
  const p = run(VITE_NODE, [...clusterArgs('serve', label), '--topic', topic, '--partitions', String(partitions), '--brokers', String(C.cluster.brokers), ...(brokerArgs.length ? ['--broker-args', brokerArgs.join(' ')] : [])], {
    cwd: REPO,
    env: { TMPDIR: runRoot },
    logFile: join(logDir, `${label.replace(/[^\w=.-]+/g, '_').slice(0, 60)}-cluster.log`),
    timeoutMs: 3_600_000,
    timeoutSignal: 'SIGTERM',
    onLine(line, stream) {
      showClusterProgress(line, stream);
      if (stream === 'stdout' && line.startsWith('{"ready"')) ready.resolve(JSON.parse(line).ready);
    },
  });
  p.then(
    (r) => ready.reject(new Error(`bench/cluster.ts serve exited (${r.code ?? r.signal}) before its cluster was ready: ${r.stderr.slice(-1500)}`)),
    (e) => ready.reject(e),
  );
  const cleanup = clusterCleanup(p.child.pid);
  let info;
  try {
    info = await gotReady;
  } catch (e) {
    cleanup();
    cleanups.delete(cleanup);
    throw e;
  }
  foldCommands(label, info.commands);
  // The launcher itself parses the brokers' logs; its CPU is the benchmark's, not "other".
  const processes = [...info.processes, { name: 'launcher (bench/cluster.ts)', pid: p.child.pid }];
  let stopped = null;
  return {
    broker: info.bootstrap,
    info,
    processes,
    async stop() {
      if (stopped) return stopped;
      stopped = Object.fromEntries(processes.map((x) => [x.name, memOf(x.pid)]));
      p.child.kill('SIGTERM');
      const t = setTimeout(() => p.child.kill('SIGKILL'), 30_000);
      await p.catch(() => undefined);
      clearTimeout(t);
      cleanups.delete(cleanup);
      return stopped;
    },
  };
}

/** SIGTERM, not SIGKILL, when interrupted: bench/cluster.ts then takes its etcd, brokers and proxy down with it. */
function clusterCleanup(pid) {
  const cleanup = () => {
    stopping.add(pid);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  };
  cleanups.add(cleanup);
  return cleanup;
}

/** `bench/cluster.ts <mode>` to completion; returns what it measured. */
async function clusterScenario(mode, label, args, timeoutMs) {
  const json = join(runRoot, `cluster-${mode}-${Date.now()}.json`);
  const p = run(VITE_NODE, [...clusterArgs(mode, label), '--json', json, ...args], { cwd: REPO, env: { TMPDIR: runRoot }, logFile: scenarioLog, timeoutMs, timeoutSignal: 'SIGTERM', onLine: showClusterProgress });
  const cleanup = clusterCleanup(p.child.pid);
  const r = await p.finally(() => cleanups.delete(cleanup));
  if (!existsSync(json)) throw new Error(`bench/cluster.ts ${mode} wrote no results (exit ${r.code ?? r.signal}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-1500)}`);
  const out = JSON.parse(readFileSync(json, 'utf8'));
  rmSync(json, { force: true });
  foldCommands(label, out.commands);
  delete out.commands;
  if (out.error) throw new Error(out.error);
  return out;
}

/** skiff_object_store_requests_total{store="s3"} summed over the cluster's brokers and proxies, by request. */
async function objectRequests(processes) {
  const out = {};
  for (const x of processes) {
    if (!x.httpPort) continue;
    try {
      const res = await fetch(`http://127.0.0.1:${x.httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      for (const [k, v] of Object.entries(parseMetrics(await res.text()))) {
        const m = k.match(/^skiff_object_store_requests_total\{(.*)\}$/);
        if (!m || !m[1].includes('store="s3"')) continue;
        const request = m[1].match(/request="([^"]+)"/)?.[1];
        if (request) out[request] = (out[request] ?? 0) + v;
      }
    } catch {
      /* a process that does not answer counts nothing */
    }
  }
  return out;
}

/** Requests per second per broker over a run, by request, from two objectRequests() readings. */
function objectRequestRates(before, after, seconds, brokers) {
  const perBroker = {};
  for (const [k, v] of Object.entries(after)) {
    const n = v - (before[k] ?? 0);
    if (n > 0) perBroker[k] = Number((n / seconds / Math.max(1, brokers)).toFixed(1));
  }
  return { seconds: Number(seconds.toFixed(1)), brokers, perBrokerPerSecond: perBroker };
}

if (want('cluster')) {
  for (const [size, acks, partitions] of C.cluster.produce) {
    const entry = { size, acks, partitions, brokers: C.cluster.brokers, proxies: 1, runs: [] };
    results.cluster.produce.push(entry);
    for (let rep = 1; rep <= C.produceReps; rep++) {
      const label = `cluster produce ${sizeName(size)} acks=${acksName(acks)} p=${partitions} (run ${rep}/${C.produceReps})`;
      step('cluster', label, async () => {
        const topic = `bench-${size}-${acksName(acks)}-${partitions}`;
        const c = await startCluster({ label, topic, partitions });
        try {
          const win = measureWindow(c.processes.map((x) => x.pid));
          const cpu0 = c.processes.map((x) => cpuOf(x.pid).self);
          const requests0 = await objectRequests(c.processes);
          const t0 = performance.now();
          const r = await rdkProduce(c, topic, { size, acks, seconds: C.produceSeconds, count: Math.floor(C.maxProduceBytes / size), label });
          const wall = (performance.now() - t0) / 1000;
          r.objectRequests = objectRequestRates(requests0, await objectRequests(c.processes), wall, C.cluster.brokers);
          r.cpu = win();
          const cpuPct = c.processes.map((x, i) => (100 * (cpuOf(x.pid).self - cpu0[i])) / wall);
          const mem = await c.stop();
          r.processes = c.processes.map((x, i) => ({ name: x.name, cpuPct: Number(cpuPct[i].toFixed(1)), peakRss: mem[x.name].hwm, finalRss: mem[x.name].rss }));
          r.controller = c.info.controller;
          r.shares = c.info.shares;
          entry.runs.push(r);
          if (!(r.msgsPerSec > 0)) throw new Error(`no messages delivered (exit ${r.exit})`);
          const of = (re) => r.processes.filter((x) => re.test(x.name));
          const peak = (re) => Math.max(...of(re).map((x) => x.peakRss));
          const cpu = (re) => of(re).reduce((a, x) => a + x.cpuPct, 0);
          return `${Math.round(r.msgsPerSec).toLocaleString('en-US')} msg/s  ${r.mbPerSec.toFixed(1)} MB/s  CPU brokers ${cpu(/^broker/).toFixed(0)}% proxy ${cpu(/^proxy/).toFixed(0)}%  peak RSS brokers ≤ ${(peak(/^broker/) / 1e6).toFixed(0)} MB, proxy ${(peak(/^proxy/) / 1e6).toFixed(0)} MB  S3 PUTs ${r.objectRequests.perBrokerPerSecond.PutObject ?? 0}/s per broker  other ${r.cpu.otherCpuPct}%`;
        } finally {
          await c.stop().catch(() => undefined);
        }
      });
    }
  }
  for (const [size, acks, partitions, rate, brokerArgs] of C.cluster.lightLoad) {
    const entry = { size, acks, partitions, rate, brokerArgs, brokers: C.cluster.brokers, proxies: 1, runs: [] };
    results.cluster.lightLoad.push(entry);
    const label = `cluster light load: ${sizeName(size)} acks=${acksName(acks)} p=${partitions} at ${rate.toLocaleString('en-US')} msg/s${brokerArgs.length ? `, brokers ${brokerArgs.join(' ')}` : ''}`;
    step('cluster', label, async () => {
      const topic = `light-${size}-${acksName(acks)}-${partitions}`;
      const c = await startCluster({ label, topic, partitions, brokerArgs });
      try {
        const requests0 = await objectRequests(c.processes);
        const t0 = performance.now();
        const r = await latencyWithRdkafkaLatency(c, topic, { size, acks, rate, partitions });
        r.objectRequests = objectRequestRates(requests0, await objectRequests(c.processes), (performance.now() - t0) / 1000, C.cluster.brokers);
        entry.runs.push(r);
        const a = r.produceLatencyMs ?? {};
        return `rate ${Math.round(r.achievedMsgsPerSec).toLocaleString('en-US')}/s  produce p50/p99 ${a.p50}/${a.p99} ms  S3 PUTs ${r.objectRequests.perBrokerPerSecond.PutObject ?? 0}/s per broker`;
      } finally {
        await c.stop().catch(() => undefined);
      }
    });
  }
  {
    const n = C.cluster.failoverKills;
    const label = `cluster failover: SIGKILL a broker under an idempotent acks=all producer (${n} kills)`;
    step('cluster', label, async () => {
      const out = await clusterScenario('failover', label, ['--runs', String(n), '--partitions', String(C.cluster.failoverPartitions), '--rate', String(C.cluster.failoverRate)], (120 + n * 150) * 1000);
      results.cluster.failover = out;
      const u = out.runs.map((r) => r.unavailableMs);
      return `writes to a killed broker's partitions resumed after median ${median(u)} ms, max ${Math.max(...u)} ms (${u.join(', ')} ms)`;
    });
  }
  {
    const n = C.cluster.moveRounds;
    const label = `cluster move ${C.cluster.movePartitions.toLocaleString('en-US')} partitions: scale-out and drain (${n} round${n > 1 ? 's' : ''})`;
    step('cluster', label, async () => {
      const out = await clusterScenario('move', label, ['--runs', String(n), '--partitions', String(C.cluster.movePartitions), '--fill', String(C.cluster.moveFill), '--rdkperf', RDKPERF], (300 + n * 300) * 1000);
      results.cluster.move = out;
      const so = out.runs.map((r) => r.scaleOut.registrationToAllOnlineMs);
      const dr = out.runs.map((r) => r.drain.termToAllOnlineMs);
      return `scale-out ${so.join(', ')} ms (${out.runs[0]?.scaleOut.moved} moved), drain ${dr.join(', ')} ms (${out.runs[0]?.drain.moved} moved)`;
    });
  }
}

// ---------------------------------------------------------------- run

function aggregate() {
  const med = (arr, f) => median(arr.map(f));
  for (const e of results.skiff.produce) {
    e.median = { msgsPerSec: med(e.runs, (r) => r.msgsPerSec), mbPerSec: med(e.runs, (r) => r.mbPerSec), peakRss: med(e.runs, (r) => r.peakRss), otherCpuPct: med(e.runs, (r) => r.cpu?.otherCpuPct), serverCpuPct: med(e.runs, (r) => r.cpu?.serverCpuPct), clientCpuPct: med(e.runs, (r) => r.cpu?.benchCpuPct - r.cpu?.serverCpuPct), diskWriteMBps: med(e.runs, (r) => r.cpu?.diskWriteMBps) };
  }
  for (const e of [...results.skiff.tail, ...results.skiff.tail.map((t) => t.tuned).filter(Boolean), ...results.skiff.catchup]) {
    e.median = { msgsPerSec: med(e.runs, (r) => r.msgsPerSec), mbPerSec: med(e.runs, (r) => r.mbPerSec), otherCpuPct: med(e.runs, (r) => r.cpu?.otherCpuPct) };
  }
  for (const e of results.skiff.latency) {
    const p = (k, q) => med(e.runs, (r) => r[k]?.[q]);
    e.median = {
      achievedMsgsPerSec: med(e.runs, (r) => r.achievedMsgsPerSec),
      produce: { p50: p('produceLatencyMs', 'p50'), p99: p('produceLatencyMs', 'p99'), p999: p('produceLatencyMs', 'p999') },
      e2e: { p50: p('e2eLatencyMs', 'p50'), p99: p('e2eLatencyMs', 'p99'), p999: p('e2eLatencyMs', 'p999') },
      otherCpuPct: med(e.runs, (r) => r.cpu?.otherCpuPct),
    };
  }
  for (const e of [...results.jetstream.pubAsync, ...results.jetstream.pubSync]) {
    e.median = { msgsPerSec: med(e.runs, (r) => r.steadyMsgsPerSec), mbPerSec: med(e.runs, (r) => r.steadyMbPerSec), peakRss: med(e.runs, (r) => r.peakRss), otherCpuPct: med(e.runs, (r) => r.cpu?.otherCpuPct), serverCpuPct: med(e.runs, (r) => r.cpu?.serverCpuPct) };
  }
  for (const e of results.jetstream.consume) e.median = { msgsPerSec: med(e.runs, (r) => r.msgs_per_sec), mbPerSec: med(e.runs, (r) => r.mb_per_sec) };
  for (const e of results.jetstream.latency) {
    const p = (k, q) => med(e.runs, (r) => r[k]?.[q]);
    e.median = {
      achievedMsgsPerSec: med(e.runs, (r) => r.msgs_per_sec),
      produce: { p50: p('ack_latency_ms', 'p50'), p99: p('ack_latency_ms', 'p99'), p999: p('ack_latency_ms', 'p999') },
      e2e: { p50: p('e2e_latency_ms', 'p50'), p99: p('e2e_latency_ms', 'p99'), p999: p('e2e_latency_ms', 'p999') },
      otherCpuPct: med(e.runs, (r) => r.cpu?.otherCpuPct),
    };
  }
  for (const [k, v] of Object.entries(results.limits)) if (v?.runs) v.median = { mbPerSec: med(v.runs, (r) => r.mb_per_sec) };
  const cl = results.cluster;
  if (cl) {
    for (const e of cl.produce) {
      const names = [...new Set(e.runs.flatMap((r) => r.processes.map((x) => x.name)))];
      const per = (name, k) => med(e.runs, (r) => r.processes.find((x) => x.name === name)?.[k]);
      e.median = {
        msgsPerSec: med(e.runs, (r) => r.msgsPerSec),
        mbPerSec: med(e.runs, (r) => r.mbPerSec),
        otherCpuPct: med(e.runs, (r) => r.cpu?.otherCpuPct),
        clientCpuPct: med(e.runs, (r) => r.cpu?.benchCpuPct - r.cpu?.serverCpuPct),
        processes: names.map((name) => ({ name, cpuPct: per(name, 'cpuPct'), peakRss: per(name, 'peakRss') })),
      };
    }
    if (cl.failover?.runs?.length) {
      const u = cl.failover.runs.map((r) => r.unavailableMs);
      cl.failover.summary = { medianMs: median(u), maxMs: Math.max(...u), runs: u.length };
    }
    if (cl.move?.runs?.length) {
      const so = cl.move.runs.map((r) => r.scaleOut.registrationToAllOnlineMs);
      const dr = cl.move.runs.map((r) => r.drain.termToAllOnlineMs);
      cl.move.summary = { scaleOut: { medianMs: median(so), maxMs: Math.max(...so) }, drain: { medianMs: median(dr), maxMs: Math.max(...dr) }, runs: so.length };
    }
  }
  const plain = results.skiff.servers.filter((s) => s.label !== 'profile');
  const idle = plain.map((s) => s.idleRss).filter(Number.isFinite);
  const peak = plain.map((s) => s.peakRss).filter(Number.isFinite);
  results.skiff.proxyIdle.median = median(results.skiff.proxyIdle.runs.map((r) => r.rss));
  results.skiff.proxyIdle.medianAnon = median(results.skiff.proxyIdle.runs.map((r) => r.anon));
  results.skiff.proxyIdle.medianFile = median(results.skiff.proxyIdle.runs.map((r) => r.file));
  results.skiff.rss = { idleMedian: median(idle), idleMin: Math.min(...idle), idleMax: Math.max(...idle), peakMax: Math.max(...peak), servers: results.skiff.servers.length };
}

/**
 * The machine's speed now, timed on this process's thread, the fastest of three tries a
 * quarter-second apart (a stopping server or the kernel writing back its files can slow one):
 * `aluMs`, a loop of additions in registers, and `memMs`, reads spread over a 64 MB array (the
 * caches and memory, which neighbours on a shared host contend for). On the VM these
 * benchmarks were written on, code that allocates and touches memory ran 2-4x slower at some
 * hours than at others while register arithmetic did not; a step's figures are read with its
 * probe.
 */
let stepProbe;
let probeArray;
async function cpuProbe() {
  probeArray ??= Float64Array.from({ length: PROBE_ARRAY_LENGTH }, (_, i) => i);
  let aluMs = Infinity;
  let memMs = Infinity;
  for (let k = 0; k < 3; k++) {
    if (k > 0) await sleep(250);
    aluMs = Math.min(aluMs, timed(addLoop, CPU_PROBE_LOOPS));
    memMs = Math.min(memMs, timed(spreadReads, MEM_PROBE_READS));
  }
  return { aluMs: Number(aluMs.toFixed(1)), memMs: Number(memMs.toFixed(1)) };
}
function timed(fn, n) {
  const t0 = performance.now();
  probeSink = fn(n);
  return performance.now() - t0;
}
function addLoop(n) {
  let x = 0;
  for (let i = 0; i < n; i++) x += i;
  return x;
}
function spreadReads(n) {
  const a = probeArray;
  const mask = a.length - 1;
  let x = 0;
  let j = 0;
  for (let i = 0; i < n; i++) {
    j = (j + 1048573) & mask;
    x += a[j];
  }
  return x;
}
let probeSink = 0;

/** Waits (at most WAIT_IDLE s) until the machine is at most 20% busy over one second. */
async function waitIdle(label) {
  const t0 = Date.now();
  let busy = 100;
  while (Date.now() - t0 < WAIT_IDLE * 1000) {
    const a = machineCpu();
    await sleep(1000);
    const b = machineCpu();
    busy = (100 * (b.busy - a.busy)) / Math.max(b.total - a.total, 1e-9);
    if (busy <= 20) break;
    progress.show(`waiting for an idle machine (${busy.toFixed(0)}% busy)`);
  }
  results.idleWaits.push({ step: label, waitedSeconds: Math.round((Date.now() - t0) / 1000), busyPctWhenStarted: Number(busy.toFixed(0)) });
}

async function main() {
  progress.note(`Skiff benchmarks: ${QUICK ? 'quick' : 'full'} set, data under ${runRoot}, logs in ${rel(logDir)}`);
  await describeMachine();
  await buildAll();
  const table = await capture(SKIFF, ['config', '--markdown']);
  const dflt = (key) => Number((table.match(new RegExp('`--' + key + '` \\| `[A-Z_]+` \\| `(\\d+)`')) ?? [])[1]);
  results.skiff.settings = {
    flushMs: dflt('flush-ms'),
    flushMinMs: dflt('flush-min-ms'),
    flushBytes: dflt('flush-bytes'),
    cacheBytes: dflt('cache-bytes'),
    maxUnflushedBytes: dflt('max-unflushed-bytes'),
    note: 'skiff dev defaults: no flags besides the data dir, host, ports, --default-partitions and --log-level warn',
    table,
  };
  const filter = option('--filter', '');
  if (filter) {
    const re = new RegExp(filter);
    steps.splice(0, steps.length, ...steps.filter((s) => re.test(s.label)));
  }
  progress.total = steps.length;
  progress.t0 = Date.now();
  for (const s of steps) {
    const slug = s.label.replace(/[^\w=.-]+/g, '_').slice(0, 80);
    scenarioLog = join(logDir, `${String(progress.i + 1).padStart(3, '0')}-${slug}.log`);
    setScenario(s.label);
    progress.begin(s.label);
    if (WAIT_IDLE > 0) await waitIdle(s.label);
    stepProbe = await cpuProbe();
    results.cpuProbes.push({ step: s.label, ...stepProbe });
    try {
      const summary = await s.fn();
      progress.end(summary ?? 'done');
    } catch (e) {
      // A step cut short by Ctrl-C is no result; the SIGINT handler ends the process.
      if (interrupted) await new Promise(() => {});
      results.errors.push({ step: s.label, error: String(e?.stack ?? e) });
      progress.end(`FAILED: ${String(e?.message ?? e).split('\n')[0]}`);
    }
    if (interrupted) await new Promise(() => {});
  }
  setScenario('report');
  results.finished = new Date().toISOString();
  results.seconds = (Date.now() - progress.t0) / 1000;
  aggregate();
  results.targets = evaluateTargets(results);

  mkdirSync(OUT, { recursive: true });
  const day = new Date().toISOString().slice(0, 10);
  const base = join(OUT, `${day}-${hostname()}${QUICK ? '-quick' : ''}${NAME ? `-${NAME}` : ''}`);
  results.files = { md: rel(`${base}.md`), json: rel(`${base}.json`), png: rel(`${base}.png`), svg: rel(`${base}.svg`), logs: rel(logDir) };
  try {
    await writeChart(chartSpec(), `${base}.svg`, `${base}.png`);
  } catch (e) {
    results.errors.push({ step: 'chart', error: String(e?.message ?? e) });
  }
  writeReport(results, `${base}.md`);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  progress.note(`\nwrote ${results.files.md}, ${results.files.json}, ${results.files.png} in ${Math.round(results.seconds)} s${results.errors.length ? ` (${results.errors.length} step(s) failed, see the report)` : ''}`);
}

function chartSpec() {
  const t = [];
  for (const e of results.skiff.produce) if (e.median) t.push({ label: `Skiff produce ${sizeName(e.size)} acks=${acksName(e.acks)} p=${e.partitions}`, value: e.median.mbPerSec, kind: 'skiff' });
  for (const e of results.cluster?.produce ?? []) if (e.median) t.push({ label: `Skiff cluster (${e.brokers} brokers) ${sizeName(e.size)} acks=${acksName(e.acks)} p=${e.partitions}`, value: e.median.mbPerSec, kind: 'skiff' });
  for (const e of results.jetstream.pubAsync) if (e.median) t.push({ label: `JetStream publish async ${sizeName(e.size)}`, value: e.median.mbPerSec, kind: 'jetstream' });
  for (const e of results.jetstream.pubSync) if (e.median) t.push({ label: `JetStream publish sync ${sizeName(e.size)}`, value: e.median.mbPerSec, kind: 'jetstream' });
  for (const e of results.skiff.tail) {
    if (e.median) t.push({ label: `Skiff consume tail ${sizeName(e.size)} p=${e.partitions}`, value: e.median.mbPerSec, kind: 'skiff' });
    if (e.tuned?.median) t.push({ label: `Skiff consume tail ${sizeName(e.size)} p=${e.partitions}, ${e.tuned.fetchBytes / MiB} MiB fetches`, value: e.tuned.median.mbPerSec, kind: 'skiff' });
  }
  for (const e of results.skiff.catchup) if (e.median) t.push({ label: `Skiff consume catch-up ${sizeName(e.size)}`, value: e.median.mbPerSec, kind: 'skiff' });
  for (const e of results.jetstream.consume) if (e.median) t.push({ label: `JetStream consume ${sizeName(e.size)}`, value: e.median.mbPerSec, kind: 'jetstream' });
  const L = results.limits;
  if (L.dd?.median) t.push({ label: 'limit: dd seq. write + fdatasync', value: L.dd.median.mbPerSec, kind: 'limit' });
  if (L.fsync4m?.median) t.push({ label: 'limit: 4 MiB writes, each fdatasync', value: L.fsync4m.median.mbPerSec, kind: 'limit' });
  if (L.loopback?.median) t.push({ label: 'limit: loopback TCP', value: L.loopback.median.mbPerSec, kind: 'limit' });
  const l = [];
  for (const e of results.skiff.latency) {
    if (!e.median) continue;
    const via = (e.client === 'rdkafka_latency' ? '' : ` (${e.client})`) + (e.fixedRate ? ` at ${e.fixedRate.toLocaleString('en-US')}/s` : '') + (e.consumerFetchBytes ? `, ${e.consumerFetchBytes / MiB} MiB fetches` : '');
    l.push({ label: `Skiff produce ${sizeName(e.size)} acks=${acksName(e.acks)}${via}`, kind: 'skiff', ...e.median.produce });
    l.push({ label: `Skiff end-to-end ${sizeName(e.size)} acks=${acksName(e.acks)}${via}`, kind: 'skiff', ...e.median.e2e });
  }
  for (const e of results.jetstream.latency) {
    if (!e.median) continue;
    l.push({ label: `JetStream publish ack ${sizeName(e.size)}`, kind: 'jetstream', ...e.median.produce });
    l.push({ label: `JetStream end-to-end ${sizeName(e.size)}`, kind: 'jetstream', ...e.median.e2e });
  }
  const m = results.machine;
  return {
    title: `Skiff benchmarks, ${results.kind} set — ${results.started.slice(0, 10)} on ${m.hostname}`,
    subtitle: `${m.cores} cores ${m.model}, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${m.node}, Linux ${m.kernel}; clients: rdkafka_performance & rdkafka_latency (librdkafka ${results.software.librdkafka}), jsbench (nats.go)`,
    throughput: t,
    latency: l,
    latencyTargets: [
      { label: `produce p99 target ${results.skiff.settings.flushMs + 10} ms`, value: results.skiff.settings.flushMs + 10 },
      { label: 'e2e p99 target 30 ms', value: 30 },
    ],
  };
}

/** --report-from FILE.json: write the .md/.png/.svg again from a results .json (no runs). */
async function reportFrom(file) {
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  // Results from before a group existed must not show that group's (empty) entries of this run.
  Object.assign(results, { cluster: { produce: [], lightLoad: [], failover: null, move: null } }, saved);
  results.targets = evaluateTargets(results);
  const base = file.replace(/\.json$/, '');
  await writeChart(chartSpec(), `${base}.svg`, `${base}.png`);
  // The run's own commands, not the chart conversion just done.
  commandLog.splice(0, commandLog.length, ...saved.commands);
  results.commands = commandLog;
  writeReport(results, `${base}.md`);
  progress.note(`wrote ${rel(base)}.md and .png from ${rel(file)}`);
}

(REPORT_FROM ? reportFrom(resolve(REPORT_FROM)) : main())
  .catch((e) => {
    progress.note(`bench failed: ${e?.stack ?? e}`);
    process.exitCode = 1;
  })
  .finally(() => cleanupAll());
