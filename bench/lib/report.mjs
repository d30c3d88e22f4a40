// The results file: targets (met or missed and by how much), every figure, the machine and
// every command that was run.
import { writeFileSync } from 'node:fs';
import { fmt, median } from './stats.mjs';

/** A server histogram's quantile (serverTime): the bound of its bucket; null in JSON past the last one. */
const bucketBound = (h, q = 'p99') => (!h?.count ? '–' : h[q] == null || h[q] === Infinity ? 'over the last bucket' : `≤ ${h[q]} ms`);
const acksName = (a) => (a === -1 ? 'all' : String(a));
const sizeName = (s) => (s >= 1024 ? `${s / 1024} KiB` : `${s} B`);
const mbps = (x) => (Number.isFinite(x) ? `${x >= 100 ? x.toFixed(0) : x.toFixed(1)} MB/s` : '–');
const ms = (x) => (Number.isFinite(x) ? `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)} ms` : '–');
const mb = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(0)} MB` : '–');
/** Values of the runs; a run during which other processes used more than half a core is marked †. */
const runsList = (runs, f) =>
  runs
    .filter((r) => Number.isFinite(f(r)))
    .map((r) => {
      const x = f(r);
      return `${x >= 100 ? x.toFixed(0) : x.toFixed(1)}${r.cpu?.otherCpuPct > 50 ? '†' : ''}`;
    })
    .join(', ');

const find = (arr, pred) => arr.find(pred);

/** Each target: value, goal, met, and by how much. */
export function evaluateTargets(R) {
  const T = [];
  const flushMs = R.skiff.settings?.flushMs ?? 10;
  const p1 = find(R.skiff.produce, (e) => e.size === 1024 && e.acks === -1 && e.partitions === 1)?.median?.mbPerSec;
  const js = find(R.jetstream.pubAsync, (e) => e.size === 1024)?.median?.mbPerSec;
  const dd = R.limits.dd?.median?.mbPerSec;
  // One row of the targets table; `better` says whether value meets goal, `say` words the margin.
  const judge = (id, what, value, goal, unit, detail, better, say) => {
    const ok = Number.isFinite(value) && Number.isFinite(goal);
    const met = ok ? better(value, goal) : null;
    const by = ok ? value / goal - 1 : NaN;
    T.push({ id, target: what, value, goal, unit, met, margin: by, verdict: !ok ? 'not measured' : say(met, by), detail });
  };
  const atLeast = (id, what, value, goal, unit, detail) =>
    judge(id, what, value, goal, unit, detail, (v, g) => v >= g, (met, by) =>
      met ? `met by ${(by * 100).toFixed(0)}% (${unit(value)} vs ≥ ${unit(goal)})` : `missed by ${(-by * 100).toFixed(0)}% (${unit(value)} vs ≥ ${unit(goal)}; needs ${(goal / value).toFixed(2)}× more)`,
    );
  const atMost = (id, what, value, goal, unit, detail) =>
    judge(id, what, value, goal, unit, detail, (v, g) => v <= g, (met, by) =>
      met ? `met with ${unit(goal - value)} to spare (${unit(value)} vs ≤ ${unit(goal)})` : `missed by ${unit(value - goal)}, ${(by * 100).toFixed(0)}% over (${unit(value)} vs ≤ ${unit(goal)})`,
    );
  const ratio = (x) => `${x.toFixed(2)}×`;
  const pctU = (x) => `${(x * 100).toFixed(0)}%`;
  atLeast('produce-vs-jetstream', 'durable acks=all produce of 1 KiB ≥ 3× JetStream', p1 / js, 3, ratio, `Skiff ${mbps(p1)} (1 partition) / JetStream async publish ${mbps(js)}`);
  atLeast('produce-vs-disk', 'durable acks=all produce of 1 KiB ≥ 45% of the sequential-write limit', p1 / dd, 0.45, pctU, `Skiff ${mbps(p1)} / dd conv=fdatasync ${mbps(dd)}`);
  const tail = find(R.skiff.tail, (e) => e.size === 1024 && e.partitions === 1);
  // Judged on the reads with the larger fetch size when the run has them: with librdkafka's
  // default 1 MiB the single reader's fetch round trips are the bound, not the server.
  const tailRead = tail?.tuned?.median ? tail.tuned : tail;
  const fetchNote = tail?.tuned?.median ? `, fetch.message.max.bytes=${tail.tuned.fetchBytes / 1048576} MiB (${mbps(tail.median?.mbPerSec)} with librdkafka's default 1 MiB)` : '';
  atLeast('consume-cache', 'consume ≥ 1 GB/s from cache', tailRead?.median?.mbPerSec, 1000, mbps, tail ? `1 KiB, 1 partition, ${mb(tail.bytes)} read ${tailRead.runs.length}× by rdkafka_performance${fetchNote}; ${tail.cacheShare != null ? `${(tail.cacheShare * 100).toFixed(0)}% of bytes served from the tail cache` : 'cache share unknown'}` : '');
  const lat = find(R.skiff.latency, (e) => e.size === 1024 && e.acks === -1 && e.client === 'rdkafka_latency' && !e.fixedRate && !e.consumerFetchBytes);
  // The run whose produce p99 is the median one, for where its time went on the server.
  const medianRun = lat?.runs?.length ? [...lat.runs].sort((a, b) => (a.produceLatencyMs?.p99 ?? 0) - (b.produceLatencyMs?.p99 ?? 0))[(lat.runs.length - 1) >> 1] : undefined;
  const t = medianRun?.server;
  const serverNote = t ? `; in the median run the server's own p99s were: Produce request ${bucketBound(t.produceRequest)}, flush wait ${bucketBound(t.flushWait)}, WAL write ${bucketBound(t.flushWrite)}, commit ${bucketBound(t.flushCommit)} (see Where the time goes)` : '';
  const floors = (lat?.runs ?? []).map((r) => r.diskFloor?.ms_p99).filter(Number.isFinite);
  const floorNote = floors.length ? `; the disk alone, right after each run, writing the same bytes per second as the WAL does (a new O_DSYNC file every flush.ms, its directory fsync'd), had p99 ${ms(median(floors))} (runs: ${floors.map((x) => ms(x)).join(', ')})` : '';
  atMost('produce-p99', `produce p99 ≤ flush.ms + 10 ms (= ${flushMs + 10} ms) at 50% load`, lat?.median?.produce?.p99, flushMs + 10, ms, lat ? `1 KiB acks=all at ${fmt.n(lat.rate)} msg/s (50% of ${fmt.n(lat.maxMsgsPerSec)}), achieved ${fmt.n(lat.median.achievedMsgsPerSec)} msg/s${R.options.config.latencyWarmupSeconds ? `, after ${R.options.config.latencyWarmupSeconds} s of warm-up` : ''}${serverNote}${floorNote}` : '');
  const bigFetch = find(R.skiff.latency, (e) => e.size === 1024 && e.acks === -1 && e.client === 'rdkafka_latency' && !e.fixedRate && e.consumerFetchBytes);
  const bigFetchNote = bigFetch?.median?.e2e ? `; the same load with the consumer fetching ${bigFetch.consumerFetchBytes / 2 ** 20} MiB at a time (librdkafka's default is 1 MiB, one fetch in flight): produce p99 ${ms(bigFetch.median.produce?.p99)}, end-to-end p99 ${ms(bigFetch.median.e2e.p99)}` : '';
  const colds = (lat?.runs ?? []).map((r) => r.warmup?.e2eLatencyMs?.p99).filter(Number.isFinite);
  const coldNote = colds.length ? `; on the fresh server, during the warm-up before each run (first second included): end-to-end p99 ${ms(median(colds))}` : '';
  atMost('e2e-p99', 'end-to-end p99 ≤ 30 ms', lat?.median?.e2e?.p99, 30, ms, lat ? `same run: producer timestamp in the payload → consumer receipt${bigFetchNote}${coldNote}` : '');
  const fo = R.cluster?.failover;
  const sec = (x) => `${(x / 1000).toFixed(2)} s`;
  const msU = (x) => `${Math.round(x)} ms`;
  atMost(
    'failover',
    'write unavailability after a broker SIGKILL ≤ 2 s',
    fo?.summary?.medianMs,
    2000,
    msU,
    fo?.summary ? `cluster of ${fo.brokers} brokers, lease TTL ${fo.leaseTtlSeconds} s; SIGKILL → first acknowledgement from the new owner on every partition the broker owned (the last of them), idempotent acks=all producer at ${fmt.n(fo.rate)} msg/s over ${fo.partitions} partitions; median of ${fo.summary.runs} kills, max ${msU(fo.summary.maxMs)}; runs ${fo.runs.map((r) => msU(r.unavailableMs)).join(', ')}; the broker's partitions were Online on their new owners after ${fo.runs.map((r) => msU(r.allOnlineMs)).join(', ')}` : '',
  );
  const mv = R.cluster?.move;
  const moveDetail = (k, what) =>
    mv?.summary ? `${what}; median of ${mv.summary.runs} round(s), max ${msU(mv.summary[k].maxMs)}; runs ${mv.runs.map((r) => msU(k === 'scaleOut' ? r.scaleOut.registrationToAllOnlineMs : r.drain.termToAllOnlineMs)).join(', ')}; lease TTL ${mv.leaseTtlSeconds} s` : '';
  atMost('move-scale-out', `moving partitions of a ${fmt.n(mv?.partitions ?? 1000)}-partition topic ≤ 1 s: scale-out`, mv?.summary?.scaleOut?.medianMs, 1000, msU, moveDetail('scaleOut', `a 2nd broker joins the one owning all ${fmt.n(mv?.partitions)}; its registration → the last of the ${fmt.n(mv?.runs?.[0]?.scaleOut?.moved)} partitions the controller moved to it Online there`));
  atMost('move-drain', `moving partitions of a ${fmt.n(mv?.partitions ?? 1000)}-partition topic ≤ 1 s: drain`, mv?.summary?.drain?.medianMs, 1000, msU, moveDetail('drain', `SIGTERM on a broker owning ${fmt.n(mv?.runs?.[0]?.drain?.moved)} of them → the last of those Online on another broker`));
  const px = R.skiff.proxyIdle;
  if (px && Number.isFinite(px.median)) {
    atMost('idle-rss', 'proxy idle RSS ≤ 60 MB', px.median / 1e6, 60, (x) => `${x.toFixed(1)} MB`, `\`skiff proxy\` on a throwaway etcd and nats-server, no clients, VmRSS 3 s after /healthz, median of ${px.runs.length} start(s); for comparison \`skiff dev\` (proxy + broker + coordinator) idles at ${mb(R.skiff.rss?.idleMedian)}${(px.floors ?? []).map((f) => `; ${f.label} alone: ${mb(f.rss)}${Number.isFinite(f.file) ? ` (${mb(f.file)} of it mapped files)` : ''}`).join('')}${Number.isFinite(px.medianFile) ? `. Of the proxy's RSS, ${mb(px.medianAnon)} is its own memory and ${mb(px.medianFile)} pages of mapped files, mostly the node binary's code and data, shared with every other Node process on the host` : ''}`);
  } else {
    const idle = R.skiff.rss?.idleMedian;
    atMost('idle-rss', 'proxy idle RSS ≤ 60 MB', Number.isFinite(idle) ? idle / 1e6 : NaN, 60, (x) => `${x.toFixed(1)} MB`, `measured on \`skiff dev\` (proxy + broker + coordinator in one process${px?.note ? `; ${px.note}` : ''}), VmRSS 1 s after /readyz, median of ${R.skiff.rss?.servers ?? 0} starts`);
  }
  return T;
}

/** Cluster mode: produce through a proxy, failover after SIGKILL, moving partitions. */
function clusterSection(R, L) {
  const C = R.cluster;
  const cfg = R.options.config.cluster ?? {};
  const sec = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : '–');
  const msI = (x) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '–');
  L.push('## Cluster mode');
  L.push('');
  L.push(
    `Separate processes on the real dependencies, started by \`bench/cluster.ts\` (run with vite-node) through the cluster e2e tests' launcher \`e2e/cluster/support.ts\`: etcd (one member, \`--heartbeat-interval 50 --election-timeout 250\`), nats-server, s3rver (S3 API on the local disk, in its own node process), \`skiff broker\` processes and one \`skiff proxy\` (\`--advertise-mode direct\`), each with default settings except **\`--lease-ttl-seconds ${cfg.leaseTtlSeconds ?? C.failover?.leaseTtlSeconds ?? '?'}\`** on the brokers (what a user would set for fast failover; the default is 5) and \`--group-initial-rebalance-delay-ms 500\`. Every process shares the same ${R.machine.cores} cores; data lives under the run's data directory. The exact command of every process is in [Every command run](#every-command-run).`,
  );
  L.push('');
  if (C.produce.length) {
    L.push('### Produce through a proxy');
    L.push('');
    L.push(`rdkafka_performance -P against the proxy (the only bootstrap address), ${R.options.config.produceSeconds} s per run (first second left out), \`linger.ms=${R.options.config.linger}\`, random partitioner, a fresh cluster per run; the topic is created with the AdminClient and every partition is Online before the load starts. CPU is % of one core over the run, from /proc; peak RSS is VmHWM read just before the cluster is stopped. "other CPU" is what processes outside this benchmark used meanwhile.`);
    L.push('');
    L.push('| size | acks | partitions | brokers | msgs/s | MB/s | runs (MB/s) | client CPU | other CPU |');
    L.push('| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
    for (const e of C.produce) {
      const md = e.median ?? {};
      L.push(`| ${sizeName(e.size)} | ${acksName(e.acks)} | ${e.partitions} | ${e.brokers} | ${fmt.n(md.msgsPerSec)} | ${mbps(md.mbPerSec)} | ${runsList(e.runs, (r) => r.mbPerSec)} | ${fmt.n(md.clientCpuPct)}% | ${fmt.n(md.otherCpuPct)}% |`);
    }
    L.push('');
    const names = [...new Set(C.produce.flatMap((e) => (e.median?.processes ?? []).map((x) => x.name)))];
    if (names.length) {
      L.push('Per process (median of the runs): CPU during the run / peak RSS.');
      L.push('');
      L.push(`| process | ${C.produce.map((e) => `${sizeName(e.size)} acks=${acksName(e.acks)} p=${e.partitions}`).join(' | ')} |`);
      L.push(`| --- | ${C.produce.map(() => '---:').join(' | ')} |`);
      for (const name of names) {
        L.push(`| ${name} | ${C.produce.map((e) => {
          const x = e.median?.processes?.find((p) => p.name === name);
          return x ? `${fmt.n(x.cpuPct)}% / ${mb(x.peakRss)}` : '–';
        }).join(' | ')} |`);
      }
      L.push('');
    }
  }
  // What an S3 bill counts: requests. Median per request name over the runs.
  const loads = [
    ...(C.produce ?? []).map((e) => ({ e, name: `${sizeName(e.size)} acks=${acksName(e.acks)} p=${e.partitions}, as fast as it goes` })),
    ...(C.lightLoad ?? []).map((e) => ({ e, name: `${sizeName(e.size)} acks=${acksName(e.acks)} p=${e.partitions} at ${fmt.n(e.rate)} msg/s${e.brokerArgs?.length ? `, brokers \`${e.brokerArgs.join(' ')}\`` : ''}` })),
  ].filter(({ e }) => e.runs.some((r) => r.objectRequests));
  if (loads.length) {
    const rate = (e, k) => median(e.runs.map((r) => r.objectRequests?.perBrokerPerSecond?.[k] ?? 0));
    const kinds = [...new Set(loads.flatMap(({ e }) => e.runs.flatMap((r) => Object.keys(r.objectRequests?.perBrokerPerSecond ?? {}))))].sort();
    L.push('### Object-storage requests');
    L.push('');
    L.push(`What an S3 bill counts: requests per broker per second, from \`skiff_object_store_requests_total\` of every broker and the proxy over the run, divided by the brokers (median of the runs). A broker writes one PutObject per flush whatever its partition count. A flush starts when \`--flush-bytes\` are pending, \`--flush-ms\` after the first pending batch, or, with no object being written, \`--flush-min-ms\` after the previous flush began (defaults ${R.skiff.settings?.flushMs ?? '?'} ms and ${R.skiff.settings?.flushMinMs ?? '?'} ms): a light steady load, not a heavy one, makes the most PUTs. The light-load run is bench/latency/rdkafka_latency against the proxy; its durable produce latency is that of brokers writing to s3rver on this machine.`);
    L.push('');
    L.push(`| request | ${loads.map((x) => x.name).join(' | ')} |`);
    L.push(`| --- | ${loads.map(() => '---:').join(' | ')} |`);
    for (const k of kinds) L.push(`| ${k} | ${loads.map(({ e }) => `${fmt.n(rate(e, k), 1)}/s`).join(' | ')} |`);
    const month = 86400 * 30;
    L.push(`| PutObject per broker per month, and at S3 Standard's list price of $0.005 per 1,000 | ${loads.map(({ e }) => `${fmt.n((rate(e, 'PutObject') * month) / 1e6, 1)} M, $${fmt.n((rate(e, 'PutObject') * month * 0.005) / 1000, 0)}`).join(' | ')} |`);
    const lat = (e, k, what = 'produceLatencyMs') => median(e.runs.map((r) => r[what]?.[k]));
    if (loads.some(({ e }) => e.rate)) {
      L.push(`| produce p50 / p99 | ${loads.map(({ e }) => (e.rate ? `${ms(lat(e, 'p50'))} / ${ms(lat(e, 'p99'))}` : '')).join(' | ')} |`);
      L.push(`| end-to-end p50 / p99 (a consumer in the same client) | ${loads.map(({ e }) => (e.rate ? `${ms(lat(e, 'p50', 'e2eLatencyMs'))} / ${ms(lat(e, 'p99', 'e2eLatencyMs'))}` : '')).join(' | ')} |`);
    }
    L.push('');
    L.push('`--flush-ms` and `--flush-min-ms` trade these requests against durable-produce latency (README, Object storage requests).');
    L.push('');
  }
  const fo = C.failover;
  if (fo) {
    L.push('### Write unavailability after a broker SIGKILL');
    L.push('');
    L.push(
      `${fo.brokers} brokers, ${fo.proxies} proxy, lease TTL ${fo.leaseTtlSeconds} s. \`e2e/cluster/producer.py\` (python confluent-kafka on librdkafka: idempotent, acks=all, \`linger.ms=5\`, \`retry.backoff.ms=50\`, \`topic.metadata.refresh.fast.interval.ms=100\`) sends ${fmt.n(fo.rate)} msg/s round-robin over the ${fo.partitions} partitions of one topic and prints every acknowledgement with its wall-clock time. Each run SIGKILLs a broker that owns partitions and is not the controller (so no election is measured), and takes, for each partition it owned, the first acknowledgement after etcd shows the partition reassigned (one before that was already on its way from the killed broker: counted as *stragglers*); the run's figure is the **last** of those partitions. Then the broker is started again (as an orchestrator would), the controller gives it its share back, and every partition is acknowledged again before the next kill.`,
    );
    L.push('');
    L.push(
      `Columns: *registration gone* and *reassigned* — when etcd (polled every 25 ms) showed the broker's registration deleted and all its partitions assigned elsewhere; *all Online* — the last moved partition Online on its new owner (the brokers' \`partition state\` log records), the server side alone; *first / median / last partition* — kill → first acknowledgement from the new owner; *calm* — the longest time any one partition went without an acknowledgement in the ${sec(fo.runs[0]?.calmMs)} before the kill, the resolution this producer gives on this machine; *others* — the same for the partitions that did not move, from the kill to the end of the run.`,
    );
    L.push('');
    if (fo.summary) {
      L.push(`**Kill → writes accepted again on every moved partition: median ${sec(fo.summary.medianMs)}, max ${sec(fo.summary.maxMs)} over ${fo.summary.runs} kills.** Producer: ${fmt.n(fo.producer?.produced)} messages, ${fmt.n(fo.producer?.acked)} acknowledged, ${fmt.n(fo.producer?.failedDeliveries)} failed deliveries, ${fmt.n(fo.producer?.fatalErrors)} fatal errors${Object.keys(fo.producer?.clientErrors ?? {}).length ? `, client errors ${Object.entries(fo.producer.clientErrors).map(([k, v]) => `${k} ×${v}`).join(', ')}` : ''}.${fo.crashes?.length ? ` Unexpected exits: ${fo.crashes.join('; ')}.` : ''}`);
      L.push('');
    }
    L.push('| kill | broker | partitions moved | registration gone | reassigned | all Online | first partition | median partition | last partition (the figure) | calm | others | stragglers | failed deliveries |');
    L.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of fo.runs) {
      L.push(`| ${r.run} | ${r.victim} | ${r.moved} | ${msI(r.registrationGoneMs)} | ${msI(r.reassignedMs)} | ${msI(r.allOnlineMs)} | ${msI(r.firstPartitionMs)} | ${msI(r.medianPartitionMs)} | **${msI(r.unavailableMs)}** | ${msI(r.calmLongestGapMs)} | ${msI(r.othersLongestGapMs)} | ${r.stragglers} | ${r.failedDeliveries} |`);
    }
    L.push('');
  }
  const mv = C.move;
  if (mv) {
    L.push(`### Moving the partitions of a ${fmt.n(mv.partitions)}-partition topic`);
    L.push('');
    L.push(
      `One broker and one proxy, lease TTL ${mv.leaseTtlSeconds} s. The topic is created on the single broker (all ${fmt.n(mv.partitions)} partitions Online ${sec(mv.initial?.createToAllOnlineMs)} after the AdminClient call), then ${fmt.n(mv.fill?.messages)} messages of ${mv.fill?.size} B are written over them (rdkafka_performance, acks=1) so that every move has WAL records and checkpoints to load. Each round: **scale-out** — a second broker is started; the controller moves half of the partitions to it; timed from its registration in etcd (the \`startedAt\` the broker writes just before registering) to the last moved partition Online on it. **Drain** — that broker gets SIGTERM; the controller moves its partitions back; timed from the signal to the last of them Online on the remaining broker. Times come from the brokers' \`partition state\` log records (pino stamps each transition as it happens, so the measurement costs the brokers nothing and has no polling granularity), checked against \`/v1/partitions\` after each scale-out. No client load runs meanwhile; the group-coordinator slots move too (not counted).`,
    );
    L.push('');
    if (mv.summary) {
      L.push(`**Scale-out: median ${sec(mv.summary.scaleOut.medianMs)} (max ${sec(mv.summary.scaleOut.maxMs)}); drain: median ${sec(mv.summary.drain.medianMs)} (max ${sec(mv.summary.drain.maxMs)}) over ${mv.summary.runs} round(s).**${mv.crashes?.length ? ` Unexpected exits: ${mv.crashes.join('; ')}.` : ''}`);
      L.push('');
    }
    L.push('| round | scale-out: moved | registration → assigned | → last released by the old owner | → first Online | → **all Online** | process start → registration | process start → all Online | drain: moved | SIGTERM → assigned | → first Online | → **all Online** | → process exit |');
    L.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of mv.runs) {
      const a = r.scaleOut;
      const d = r.drain;
      L.push(`| ${r.run} | ${a.moved} | ${msI(a.registrationToAssignedMs)} | ${msI(a.registrationToLastReleasedMs)} | ${msI(a.registrationToFirstOnlineMs)} | **${msI(a.registrationToAllOnlineMs)}** | ${msI(a.spawnToRegistrationMs)} | ${msI(a.spawnToAllOnlineMs)} | ${d.moved} | ${msI(d.termToAssignedMs)} | ${msI(d.termToFirstOnlineMs)} | **${msI(d.termToAllOnlineMs)}** | ${msI(d.termToExitMs)} (exit ${d.exit?.code ?? d.exit?.signal}) |`);
    }
    L.push('');
  }
}

export function writeReport(R, path) {
  const L = [];
  const m = R.machine;
  const s = R.software;
  L.push(`# Skiff benchmarks — ${R.started.slice(0, 10)} on ${m.hostname} (${R.kind} set)`);
  L.push('');
  L.push(`Written by \`npm run bench${R.kind === 'quick' ? ' -- --quick' : ''}\` (bench/run.mjs) in ${Math.round(R.seconds ?? 0)} s, ${R.started} → ${R.finished}. Skiff at git ${String(s.git?.commit).slice(0, 12)} with ${s.git?.changedFiles ?? '?'} changed/untracked files in the work tree; dist/ built ${R.build.distMtime}${R.build.npmBuild?.exit ? ` (npm run build exited ${R.build.npmBuild.exit}; tsc emitted anyway)` : ''}. Figures are medians of the runs listed; MB = 10^6 bytes of message payload.`);
  L.push('');
  if (R.errors.length) {
    L.push(`**${R.errors.length} step(s) failed** — see [Errors](#errors).`);
    L.push('');
  }
  {
    const all = [...R.skiff.produce, ...R.skiff.tail, ...R.skiff.catchup, ...R.skiff.latency, ...(R.cluster?.produce ?? []), ...R.jetstream.pubAsync, ...R.jetstream.pubSync, ...R.jetstream.latency].flatMap((e) => e.runs);
    const other = all.map((r) => r.cpu?.otherCpuPct).filter(Number.isFinite).sort((a, b) => a - b);
    const noisy = other.filter((x) => x > 50).length;
    const steal = all.map((r) => r.cpu?.stealPct).filter(Number.isFinite).sort((a, b) => a - b);
    // On a VM the hypervisor can take the cores (heavy disk I/O does it on some hosts): that
    // time is counted in "other CPU" and shown on its own here.
    const stealNote = steal.length ? ` Time the hypervisor took from this VM (part of "other"): median ${steal[steal.length >> 1].toFixed(0)}%, highest ${steal[steal.length - 1].toFixed(0)}%.` : '';
    const spread = (key) => {
      const v = (R.cpuProbes ?? []).map((p) => p[key]).filter(Number.isFinite);
      const [lo, hi] = [Math.min(...v), Math.max(...v)];
      return v.length ? `median ${ms(median(v))}, fastest ${ms(lo)}, slowest ${ms(hi)} (${(hi / lo).toFixed(1)}× apart)` : undefined;
    };
    const mem = spread('memMs');
    if (mem) {
      const z = R.cpuProbeSize ?? {};
      L.push(`**Machine speed:** before every step the bench timed, on its own thread (the fastest of three tries), ${fmt.n(z.reads)} reads spread over a ${mb(z.arrayBytes)} array: ${mem}; and ${fmt.n(z.additions)} additions in registers: ${spread('aluMs')}. On a shared VM, neighbours contend for the caches and memory: figures from steps with a slow memory probe are lower bounds of the same build on the same machine.`);
      L.push('');
    }
    if (other.length) {
      L.push(`**Machine noise:** other processes (not this benchmark) used a median ${other[other.length >> 1].toFixed(0)}% CPU (of ${m.cores * 100}%) during the measured runs; ${noisy} of ${other.length} runs had more than 50% and are marked † in the run lists. Absolute figures from a shared machine are lower bounds.${stealNote}${R.options.nice ? ` Servers and clients ran under \`nice -n ${R.options.nice}\`.` : ''}${R.idleWaits?.length ? ` Steps waited up to ${R.options.waitIdle} s for an idle machine (${R.idleWaits.reduce((a, w) => a + w.waitedSeconds, 0)} s in all).` : ''}`);
      L.push('');
    }
  }

  // Targets
  L.push('## Targets');
  L.push('');
  L.push('| target | measured | result | how |');
  L.push('| --- | --- | --- | --- |');
  for (const t of R.targets ?? []) {
    const v = Number.isFinite(t.value) ? t.unit(t.value) : '–';
    L.push(`| ${t.target} | ${v} | ${t.met === null ? '**not measured**' : t.met ? '**met**' : '**missed**'}: ${t.verdict} | ${t.detail} |`);
  }
  L.push('');

  // Machine
  L.push('## Machine');
  L.push('');
  L.push('| | |');
  L.push('| --- | --- |');
  L.push(`| host | ${m.hostname} |`);
  L.push(`| CPU | ${m.cores} × ${m.model}${m.mhz ? ` (${m.mhz} MHz)` : ''} |`);
  L.push(`| memory | ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB (${m.memTotal}) |`);
  L.push(`| kernel | ${m.kernel} — \`${m.uname}\` |`);
  L.push(`| Node | ${m.node} |`);
  L.push(`| data filesystem | ${m.dataRoot} on ${m.dataRootFs?.device} (${m.dataRootFs?.type}, mounted at ${m.dataRootFs?.mount}) |`);
  L.push(`| load average at start | ${m.loadavgAtStart} |`);
  L.push(`| librdkafka | ${s.librdkafka} (Debian librdkafka-dev; rdkafka_performance built from its example source) |`);
  L.push(`| kcat | ${s.kcat} |`);
  L.push(`| nats-server | ${s.natsServer} |`);
  L.push(`| nats.go | ${s.natsGo} (Debian golang-github-nats-io-go-nats-dev) |`);
  if (s.etcd) L.push(`| cluster mode | ${s.etcd}; s3rver ${s.s3rver}; python3-confluent-kafka ${s.pythonConfluentKafka} |`);
  L.push(`| Go / cc | ${s.go} / ${s.cc} |`);
  L.push('');

  // Skiff produce
  const jsBy = (size) => R.jetstream.pubAsync.find((e) => e.size === size)?.median?.mbPerSec;
  const dd = R.limits.dd?.median?.mbPerSec;
  const f4 = R.limits.fsync4m?.median?.mbPerSec;
  const lo = R.limits.loopback?.median?.mbPerSec;
  if (R.skiff.produce.length) {
    L.push('## Skiff produce throughput');
    L.push('');
    L.push(`rdkafka_performance -P, ${R.options.config.produceSeconds} s per run (first second left out), \`linger.ms=${R.options.config.linger}\`, random partitioner, a fresh \`skiff dev\` per run. Ratios: to JetStream async publish of the same size, to \`dd conv=fdatasync\` (sequential-write limit), to 4 MiB writes each fdatasync'd (durable-append limit). "server CPU" is the skiff process, "client CPU" rdkafka_performance, "other CPU" CPU used by processes outside this benchmark during the run (the machine is shared), out of ${m.cores * 100}%. "disk writes" is everything written to the data disk during the run (/proc/diskstats): WAL objects, the segments they are rolled into (on the local store a segment links the WAL files that are mostly its own batches and writes only its index; ranges of WAL files shared by many partitions are copied), and the metadata log.`);
    L.push('');
    L.push('| size | acks | partitions | msgs/s | MB/s | runs (MB/s) | × JetStream | × dd | × 4 MiB fsync | disk writes | server CPU | client CPU | other CPU | peak RSS |');
    L.push('| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const e of R.skiff.produce) {
      const md = e.median ?? {};
      L.push(
        `| ${sizeName(e.size)} | ${acksName(e.acks)} | ${e.partitions} | ${fmt.n(md.msgsPerSec)} | ${mbps(md.mbPerSec)} | ${runsList(e.runs, (r) => r.mbPerSec)} | ${fmt.ratio(md.mbPerSec / jsBy(e.size))} | ${fmt.pct(md.mbPerSec / dd)} | ${fmt.pct(md.mbPerSec / f4)} | ${md.diskWriteMBps === undefined ? '–' : mbps(md.diskWriteMBps)} | ${fmt.n(md.serverCpuPct)}% | ${fmt.n(md.clientCpuPct)}% | ${fmt.n(md.otherCpuPct)}% | ${mb(md.peakRss)} |`,
      );
    }
    L.push('');
    const withMetrics = R.skiff.produce.filter((e) => e.runs[0]?.metrics);
    if (withMetrics.length) {
      L.push('<details><summary>Server-side counters per run (WAL flushes, segment rolls, Produce requests)</summary>');
      L.push('');
      L.push('| scenario | WAL objects | mean WAL object | segments rolled | Produce requests | mean Produce request time |');
      L.push('| --- | ---: | ---: | ---: | ---: | ---: |');
      for (const e of withMetrics) {
        for (const r of e.runs) {
          const x = r.metrics ?? {};
          const fl = x.skiff_broker_flushes_total;
          const fb = x.skiff_broker_flush_bytes_sum;
          const pr = x['skiff_proxy_requests_total{api="Produce"}'];
          const ps = x['skiff_proxy_request_seconds_sum{api="Produce"}'];
          const pc = x['skiff_proxy_request_seconds_count{api="Produce"}'];
          L.push(`| ${sizeName(e.size)} acks=${acksName(e.acks)} p=${e.partitions} | ${fmt.n(fl)} | ${fl ? `${(fb / fl / 1e3).toFixed(0)} kB` : '–'} | ${fmt.n(x.skiff_broker_segments_rolled_total)} | ${fmt.n(pr)} | ${pc ? ms((ps / pc) * 1000) : '–'} |`);
        }
      }
      L.push('');
      L.push('</details>');
      L.push('');
    }
  }

  // Consume
  if (R.skiff.tail.length || R.skiff.catchup.length || R.jetstream.consume.length) {
    const jsC = R.jetstream.consume.find((e) => e.size === 1024)?.median?.mbPerSec;
    L.push('## Consume throughput');
    L.push('');
    L.push('rdkafka_performance -C from offset 0 to the end (-e), timed from the first message, with librdkafka\'s default fetch size (`fetch.message.max.bytes`, 1 MiB per partition per fetch) and, on rows marked *MiB fetches*, with a larger one, reads of the two kinds interleaved on the same data. *Tail*: the data was just produced and fits the tail cache (default 256 MiB); *catch-up*: more data than the cache, so most reads go to object storage (the local directory store; the OS page cache is not dropped). JetStream: ordered push consumer over the same amount of 1 KiB messages.');
    L.push('');
    L.push('| system | read | size | partitions | data | msgs/s | MB/s | runs (MB/s) | from cache | × JetStream | × loopback TCP |');
    L.push('| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |');
    for (const [kind, arr] of [
      ['tail', R.skiff.tail],
      ['catch-up', R.skiff.catchup],
    ]) {
      for (const e of arr) {
        const md = e.median ?? {};
        const row = (read, md, runs) =>
          L.push(`| Skiff | ${read} | ${sizeName(e.size)} | ${e.partitions} | ${mb(e.bytes)} | ${fmt.n(md.msgsPerSec)} | ${mbps(md.mbPerSec)} | ${runsList(runs, (r) => r.mbPerSec)} | ${e.cacheShare != null ? `${(e.cacheShare * 100).toFixed(0)}%` : '–'} | ${e.size === 1024 ? fmt.ratio(md.mbPerSec / jsC) : '–'} | ${fmt.pct(md.mbPerSec / lo)} |`);
        row(kind, md, e.runs);
        if (e.tuned?.median) row(`${kind}, ${e.tuned.fetchBytes / 1048576} MiB fetches`, e.tuned.median, e.tuned.runs);
      }
    }
    for (const e of R.jetstream.consume) {
      const md = e.median ?? {};
      L.push(`| JetStream | stream from start | ${sizeName(e.size)} | – | ${mb(e.bytes)} | ${fmt.n(md.msgsPerSec)} | ${mbps(md.mbPerSec)} | ${runsList(e.runs, (r) => r.mb_per_sec)} | – | 1× | ${fmt.pct(md.mbPerSec / lo)} |`);
    }
    L.push('');
    const fills = [...R.skiff.tail, ...R.skiff.catchup].filter((e) => e.fill);
    if (fills.length) {
      L.push(`Fill rates (acks=1, to completion): ${fills.map((e) => `${sizeName(e.size)} p=${e.partitions} ${mb(e.bytes)} at ${mbps(e.fill.mbPerSec)}`).join('; ')}.`);
      L.push('');
    }
  }

  // Latency
  if (R.skiff.latency.length || R.jetstream.latency.length) {
    L.push('## Latency at 50% of the measured maximum');
    const warmup = R.options.config.latencyWarmupSeconds;
    L.push('');
    L.push(`Skiff: bench/latency/rdkafka_latency (librdkafka, \`linger.ms=${R.options.config.latencyLinger}\`) sends at a fixed rate, paced by the clock without busy-waiting, and reads the tail with a consumer in the same process; *produce* is produce() call → delivery report (the broker's ack), *end-to-end* is produce() call → receipt by the consumer. The rate is half the median maximum of the matching produce scenario (1 partition); the row marked *fixed light load* runs at a fixed low rate to show the latency floor apart from overload. The row marked *consumer fetches 8 MiB* is the main run again with the consumer's \`fetch.message.max.bytes\` raised from librdkafka's 1 MiB (as in the consume rows): librdkafka keeps one fetch in flight per broker, so at high rates on one partition the default caps the reader at 1 MiB per round trip, and its end-to-end figures show what is left without that cap. Rows marked rdkafka_performance are the same measurement with \`rdkafka_performance -l -r\` as a cross-check; its rate limiter spins on a core, which on a small machine takes CPU from the server. JetStream: bench/jetstream in latency mode at half its own async-publish maximum; *produce* is publish → PubAck, *end-to-end* publish → delivery to a push consumer. ${warmup ? `Each Skiff run starts a fresh server and first sends it the same load for ${warmup} s on another topic, because a Node process's first seconds under load are slower (JIT compilation, heap sizing; the run list gives that warm-up's own p99s, its first second included); each JetStream run sends ${warmup} s longer and leaves them out. The first second of each measured run is left out too.` : 'The first second of each run is left out.'} Ratios > 1× mean Skiff is slower.`);
    L.push('');
    L.push('| system | client | size | acks | rate | achieved | produce p50 | p99 | p99.9 | e2e p50 | p99 | p99.9 | e2e p99 × JetStream | other CPU |');
    L.push('| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const e of R.skiff.latency) {
      const md = e.median ?? {};
      const j = R.jetstream.latency.find((x) => x.size === e.size)?.median;
      L.push(`| Skiff | ${e.client}${e.fixedRate ? ' (fixed light load)' : ''}${e.consumerFetchBytes ? ` (consumer fetches ${e.consumerFetchBytes / 2 ** 20} MiB)` : ''} | ${sizeName(e.size)} | ${acksName(e.acks)} | ${fmt.n(e.rate)} | ${fmt.n(md.achievedMsgsPerSec)} | ${ms(md.produce?.p50)} | ${ms(md.produce?.p99)} | ${ms(md.produce?.p999)} | ${ms(md.e2e?.p50)} | ${ms(md.e2e?.p99)} | ${ms(md.e2e?.p999)} | ${fmt.ratio(md.e2e?.p99 / j?.e2e?.p99)} | ${fmt.n(md.otherCpuPct)}% |`);
    }
    for (const e of R.jetstream.latency) {
      const md = e.median ?? {};
      L.push(`| JetStream | jsbench | ${sizeName(e.size)} | ack | ${fmt.n(e.rate)} | ${fmt.n(md.achievedMsgsPerSec)} | ${ms(md.produce?.p50)} | ${ms(md.produce?.p99)} | ${ms(md.produce?.p999)} | ${ms(md.e2e?.p50)} | ${ms(md.e2e?.p99)} | ${ms(md.e2e?.p999)} | 1× | ${fmt.n(md.otherCpuPct)}% |`);
    }
    L.push('');
    const runsDetail = R.skiff.latency.flatMap((e) =>
      e.runs.map((r) => {
        const worst = (r.worstSeconds ?? []).map((w) => `${w.second}–${w.second + 1} s: max ${ms(w.max)}, p50 ${ms(w.p50)}`).join('; ');
        const rolls = r.metrics?.skiff_broker_segments_rolled_total;
        return `- ${sizeName(e.size)} acks=${acksName(e.acks)} [${e.client}]${e.fixedRate ? ` at ${fmt.n(e.fixedRate)} msg/s` : ''}${e.consumerFetchBytes ? `, consumer fetches ${e.consumerFetchBytes / 2 ** 20} MiB` : ''}: produce p99 ${ms(r.produceLatencyMs?.p99)}, e2e p99 ${ms(r.e2eLatencyMs?.p99)} (${fmt.n(r.e2eLatencyMs?.count)} samples), other CPU ${fmt.n(r.cpu?.otherCpuPct)}%${Number.isFinite(rolls) ? `, ${rolls} segment roll(s) and ${r.metrics?.skiff_broker_flushes_total ?? '?'} WAL flushes during the run` : ''}${worst ? `; worst seconds (since the start of sending) ${worst}` : ''}${r.warmup ? `; the warm-up before it on the cold server (${r.warmup.seconds} s): produce p99 ${ms(r.warmup.produceLatencyMs?.p99)}, e2e p99 ${ms(r.warmup.e2eLatencyMs?.p99)}` : ''}`;
      }),
    );
    if (runsDetail.length) {
      L.push('Skiff runs:');
      L.push('');
      L.push(...runsDetail);
      L.push('');
    }
    const timed = R.skiff.latency.flatMap((e) => e.runs.filter((r) => r.server).map((r) => [e, r]));
    if (timed.length) {
      L.push('Where the time goes, per run, from the server\'s own metrics over the run: *Produce request* is the proxy\'s time from a request\'s frame read to its response queued (acks=all: it includes the flush); *flush* is a WAL object from its flush start to its commit, split into *wait* (its oldest batch appended → flush start), *write* (the object\'s put, fsync included) and *commit* (object written → commit record durable). *Event-loop timer* is the interval between ticks of a 10 ms timer (10 ms means no delay; more is time the loop was busy or the process was not scheduled). Percentiles of server histograms are bucket upper bounds. The gap between the client\'s p99 and the server\'s is time outside request handling: a request waiting in its socket while the loop is busy, the client\'s own scheduling on the shared cores, and the network stack. *Disk alone* is bench/limits paced right after the run: the run\'s bytes per second written the way the WAL writes them on the local store (a new O_DSYNC file every flush.ms, its directory fsync\'d alongside), timed from when each file\'s bytes were due to both syncs done; no server could acknowledge durable writes faster on this disk at that minute. *Memory probe* is the machine\'s speed before the run (see Machine speed).');
      L.push('');
      L.push('| run | client produce p99 | Produce request p50 | p99 | flush p99 | wait p99 | write p99 | commit p99 | disk alone p50 | p99 | event-loop timer p99 | max | GC pauses | memory probe |');
      L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
      for (const [e, r] of timed) {
        const t = r.server;
        const gc = Object.entries(t.gc ?? {});
        const gcText = gc.length ? `${ms(gc.reduce((a, [, g]) => a + g.pauseMs, 0))} in ${fmt.n(gc.reduce((a, [, g]) => a + g.count, 0))} (${gc.map(([k, g]) => `${k} ${g.count}, longest ≤ ${g.longestMsAtMost ?? '?'} ms`).join('; ')})` : '–';
        L.push(`| ${sizeName(e.size)} acks=${acksName(e.acks)} [${e.client}]${e.fixedRate ? ` at ${fmt.n(e.fixedRate)} msg/s` : ''}${e.consumerFetchBytes ? `, ${e.consumerFetchBytes / 2 ** 20} MiB fetches` : ''} | ${ms(r.produceLatencyMs?.p99)} | ${bucketBound(t.produceRequest, 'p50')} | ${bucketBound(t.produceRequest)} | ${bucketBound(t.flush)} | ${bucketBound(t.flushWait)} | ${bucketBound(t.flushWrite)} | ${bucketBound(t.flushCommit)} | ${r.diskFloor ? ms(r.diskFloor.ms_p50) : '–'} | ${r.diskFloor ? ms(r.diskFloor.ms_p99) : '–'} | ${ms(t.eventLoopIntervalMs?.p99)} | ${ms(t.eventLoopIntervalMs?.max)} | ${gcText} | ${Number.isFinite(r.cpuProbe?.memMs) ? ms(r.cpuProbe.memMs) : '–'} |`);
      }
      L.push('');
    }
  }

  // JetStream throughput
  if (R.jetstream.pubAsync.length || R.jetstream.pubSync.length) {
    L.push('## NATS JetStream (the peer)');
    L.push('');
    L.push(`\`nats-server -js\` with file storage in a fresh directory on the same filesystem, one stream, one replica, loaded by bench/jetstream (nats.go). Async: PublishAsync with at most ${R.options.config.jsMaxPending} unacknowledged; sync: one Publish at a time, each waiting for its PubAck. Note: nats-server ${String(s.natsServer).replace(/^nats-server: /, '')} acknowledges after the write to its file (the OS page cache) and fsyncs on its own interval, so it is not an fsync-per-ack comparison.`);
    L.push('');
    L.push('| mode | size | msgs/s | MB/s | runs (MB/s) | server CPU | other CPU | peak RSS |');
    L.push('| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |');
    for (const [mode, arr] of [
      ['async publish', R.jetstream.pubAsync],
      ['sync publish', R.jetstream.pubSync],
    ]) {
      for (const e of arr) {
        const md = e.median ?? {};
        L.push(`| ${mode} | ${sizeName(e.size)} | ${fmt.n(md.msgsPerSec)} | ${mbps(md.mbPerSec)} | ${runsList(e.runs, (r) => r.steadyMbPerSec)} | ${fmt.n(md.serverCpuPct)}% | ${fmt.n(md.otherCpuPct)}% | ${mb(md.peakRss)} |`);
      }
    }
    L.push('');
  }

  // Limits
  const lim = R.limits;
  if (Object.keys(lim).length) {
    L.push('## Machine limits');
    L.push('');
    L.push('| test | result | runs | command |');
    L.push('| --- | ---: | --- | --- |');
    if (lim.loopback) L.push(`| loopback TCP, 1 connection, 256 KiB writes | ${mbps(lim.loopback.median?.mbPerSec)} | ${runsList(lim.loopback.runs, (r) => r.mb_per_sec)} | bench/.build/limits loopback |`);
    if (lim.dd) L.push(`| sequential write, one fdatasync at the end | ${mbps(lim.dd.median?.mbPerSec)} | ${runsList(lim.dd.runs, (r) => r.mb_per_sec)} | dd bs=1M conv=fdatasync, ${mb(lim.dd.runs[0]?.bytes)} |`);
    if (lim.fsync4m) L.push(`| sequential 4 MiB writes, fdatasync after each | ${mbps(lim.fsync4m.median?.mbPerSec)} | ${runsList(lim.fsync4m.runs, (r) => r.mb_per_sec)} | bench/.build/limits fsync (sync p50 ${lim.fsync4m.runs[0]?.sync_ms_p50} ms) |`);
    if (lim.syncrate) L.push(`| 4 KiB append + fdatasync | ${fmt.n(lim.syncrate.syncs_per_sec)} syncs/s | p50 ${lim.syncrate.sync_ms_p50} ms, p99 ${lim.syncrate.sync_ms_p99} ms | bench/.build/limits syncrate |`);
    L.push('');
  }

  // Memory
  if (R.skiff.rss && R.skiff.servers.length) {
    L.push('## Skiff server memory');
    L.push('');
    const rss = R.skiff.rss;
    if (Number.isFinite(R.skiff.proxyIdle?.median)) L.push(`\`skiff proxy\` idle RSS: ${R.skiff.proxyIdle.runs.map((r) => mb(r.rss)).join(', ')} (median ${mb(R.skiff.proxyIdle.median)}).`, '');
    L.push(`\`skiff dev\` idle RSS (VmRSS 1 s after /readyz): median ${mb(rss.idleMedian)} (${mb(rss.idleMin)}–${mb(rss.idleMax)}) over ${rss.servers} starts. Peak RSS (VmHWM at the end of a run): highest ${mb(rss.peakMax)}.`);
    L.push('');
    L.push('| server | idle RSS | peak RSS (VmHWM) |');
    L.push('| --- | ---: | ---: |');
    for (const x of R.skiff.servers) L.push(`| ${x.label} | ${mb(x.idleRss)} | ${mb(x.peakRss)} |`);
    L.push('');
  }

  if (R.cluster && (R.cluster.produce.length || R.cluster.lightLoad?.length || R.cluster.failover || R.cluster.move)) clusterSection(R, L);

  // Profile
  if (R.profile) {
    const p = R.profile;
    L.push('## Where the produce path spends its CPU');
    L.push('');
    L.push(`\`node --cpu-prof\` on \`skiff dev\` while rdkafka_performance produced 1 KiB acks=all to 1 partition (${mbps(p.underLoad?.mbPerSec)} while profiled). Profile: \`${p.file}\` (${(p.top.sampledMs / 1000).toFixed(1)} s sampled, ${(p.top.busyMs / 1000).toFixed(1)} s busy on the main thread, ${(p.top.idleMs / 1000).toFixed(1)} s idle). Locations in dist/ are mapped to the TypeScript through the source maps. Re-run the summary: \`node bench/profile-summary.mjs ${p.file}\`.`);
    L.push('');
    L.push('"self %" is of all sampled time (idle included), "total %" counts time with the function anywhere on the stack, "called from" names the nearest callers in Skiff\'s own code (Node library frames skipped) with their share of the self time.');
    L.push('');
    L.push('| # | function | location | self ms | self % | total % | called from |');
    L.push('| ---: | --- | --- | ---: | ---: | ---: | --- |');
    const callers = (r) => (r.callers ?? []).slice(0, 2).map((c) => `${c.pctOfSelf.toFixed(0)}% ${c.caller.replace(/^(\S+) \((.*)\)$/, '`$1` ($2)')}`).join('; ');
    for (const r of p.top.rows) L.push(`| ${r.rank} | \`${r.function || '(anonymous)'}\` | ${r.location ? `\`${r.location}\`` : ''} | ${r.selfMs.toFixed(0)} | ${r.selfPct.toFixed(1)} | ${r.totalPct.toFixed(1)} | ${callers(r)} |`);
    L.push('');
    L.push('By file (self time):');
    L.push('');
    L.push('| file | self ms | self % |');
    L.push('| --- | ---: | ---: |');
    for (const r of p.byFile.rows) L.push(`| \`${r.function}\` | ${r.selfMs.toFixed(0)} | ${r.selfPct.toFixed(1)} |`);
    L.push('');
  }

  if (R.files?.png) {
    L.push('## Chart');
    L.push('');
    L.push(`![throughput and latency](${R.files.png.split('/').pop()})`);
    L.push('');
  }

  // Method
  L.push('## Method and caveats');
  L.push('');
  L.push('- Every Skiff run starts a fresh `skiff dev` (defaults: ' + `flush.ms ${R.skiff.settings?.flushMs}, flush.bytes ${R.skiff.settings?.flushBytes}, cache ${R.skiff.settings?.cacheBytes} bytes` + ') on a new data directory, creates the topic with kcat (auto-create with `--default-partitions`), and is stopped with SIGTERM afterwards; every JetStream run starts a fresh `nats-server -js`.');
  L.push('- Clients, servers and the machine-limit tools share the same cores; the load generators themselves take CPU (rdkafka_performance\'s `-r` rate limiter spins when the gap between messages is under 1 ms). "other CPU" columns show load from processes outside the benchmark (e.g. other builds or tests on a shared machine); runs with a high value are noisy.');
  L.push('- Throughput is payload bytes; Kafka record and batch framing is not counted, nor is NATS protocol overhead.');
  L.push('- acks=1 on Skiff is answered after the append to memory (lost on a crash within flush.ms); acks=all after the WAL object is written and fdatasync\'d.');
  L.push('- The sequential-write limit is `dd if=/dev/zero bs=1M conv=fdatasync` on the filesystem of the data directories.');
  L.push('');

  if (R.errors.length) {
    L.push('## Errors');
    L.push('');
    for (const e of R.errors) {
      L.push(`- **${e.step}**:`);
      L.push('');
      L.push('  ```');
      for (const line of e.error.split('\n').slice(0, 12)) L.push(`  ${line}`);
      L.push('  ```');
    }
    L.push('');
  }

  // Commands
  L.push('## Every command run');
  L.push('');
  L.push('In order, with the scenario it belonged to, its wall time and exit status (servers ran in the background until stopped). Logs of this run: `' + (R.files?.logs ?? '') + '`.');
  L.push('');
  L.push('```');
  let last = '';
  for (const c of R.commands) {
    if (c.scenario !== last) {
      L.push(`# ${c.scenario}`);
      last = c.scenario;
    }
    const how = c.via ? `started by ${c.via}${c.background ? ', background' : ''}${c.note ? `; ${c.note}` : ''}` : `${c.seconds ?? '?'} s, exit ${c.exit ?? '?'}${c.background ? ', background' : ''}`;
    L.push(`${c.command}    # ${how}`);
  }
  L.push('```');
  L.push('');
  writeFileSync(path, L.join('\n'));
}
