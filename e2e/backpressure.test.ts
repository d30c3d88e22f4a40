// Producer backpressure of a real `skiff dev` (DESIGN.md §8 "Backpressure by pausing sockets,
// never by growing memory"): with a small --max-unflushed-bytes and timer-driven flushes,
// several producers pushing more than a gigabyte as fast as they can must be slowed down
// (the proxy stops reading their sockets) while the server's resident memory stays flat,
// and every acknowledged message must end up committed and readable.
//
// The other memory the server holds by design is kept small and explicit here, so that the
// bound measures unflushed produce data and nothing else: the tail cache (--cache-bytes) and
// segment rolling (a roll holds about three copies of one segment.bytes in memory).

import { afterAll, describe, expect, it } from 'vitest';
import { kcat, killAllProcs, Proc, pythonJson } from './support/procs.js';
import { startSkiff, type Skiff } from './support/skiff.js';
import { highWatermarks, pollUntil, rssBytes, skiffPid } from './support/crash.js';

const MiB = 1024 * 1024;

const servers: Skiff[] = [];
afterAll(async () => {
  killAllProcs();
  await Promise.allSettled(servers.splice(0).map((s) => s.dispose()));
});

type FloodReport = {
  acked: number;
  ackedBytes: number;
  errors: number;
  firstError: string | null;
  unflushed: number;
  seconds: number;
  last: Record<string, [string, number]>;
};

describe('producer backpressure', () => {
  it('stops reading producers instead of growing memory', { timeout: 240_000 }, async () => {
    const MAX_UNFLUSHED = 8 * MiB;
    const PRODUCERS = 3;
    const PARTITIONS = 4;
    const PER_PRODUCER = 384 * MiB; // 1.125 GiB in all
    const MESSAGE = 64 * 1024;
    const RSS_LIMIT = 400 * MiB; // unbounded buffering of the flood would need more than 1 GiB
    const topic = 'backpressure-flood';

    const server = await startSkiff({
      args: [
        '--max-unflushed-bytes', String(MAX_UNFLUSHED),
        // Flushes come from the timer only (flush-bytes is out of reach), so data piles up
        // for 100 ms at a time unless the proxy stops reading.
        '--flush-ms', '100',
        '--flush-bytes', String(1024 * MiB),
        '--cache-bytes', String(32 * MiB),
      ],
    });
    servers.push(server);
    const pid = skiffPid(server.dataDir);
    expect(pid, 'pid of the skiff process').toBeDefined();
    const created = await pythonJson<{ ok: boolean }>('bp_create_topic.py', [server.bootstrap, topic, String(PARTITIONS), `segment.bytes=${16 * MiB}`]);
    expect(created).toEqual({ ok: true });

    // Sample the server: resident memory every 100 ms, the broker's unflushed bytes as often
    // as /metrics answers.
    let peakRss = 0;
    let samples = 0;
    let peakUnflushed = 0;
    let metricsBusy = false;
    const rssTimeline: number[] = [];
    const sampler = setInterval(() => {
      const rss = rssBytes(pid!);
      if (rss !== undefined) {
        samples++;
        peakRss = Math.max(peakRss, rss);
        if (samples % 10 === 0) rssTimeline.push(Math.round(rss / MiB));
      }
      if (metricsBusy) return;
      metricsBusy = true;
      fetch(`http://localhost:${server.httpPort}/metrics`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.text())
        .then((text) => {
          const m = /^skiff_broker_unflushed_bytes (\d+)/m.exec(text);
          if (m) peakUnflushed = Math.max(peakUnflushed, Number(m[1]));
        })
        .catch(() => undefined)
        .finally(() => {
          metricsBusy = false;
        });
    }, 100);

    const started = Date.now();
    let reports: FloodReport[];
    try {
      const floods = Array.from({ length: PRODUCERS }, (_, i) =>
        Proc.python(`flood-${i + 1}`, 'bp_flood.py', [
          server.bootstrap, topic, '--bytes', String(PER_PRODUCER), '--size', String(MESSAGE), '--id', `f${i + 1}`, '--partitions', String(PARTITIONS),
        ]),
      );
      reports = await Promise.all(floods.map((f) => f.waitForJson<FloodReport>((d) => typeof d.acked === 'number', 200_000, 'the final report')));
      const exits = await Promise.all(floods.map((f) => f.exited));
      for (const [i, e] of exits.entries()) expect(e, floods[i].stderr.slice(-2000)).toEqual({ code: 0, signal: null });
    } finally {
      clearInterval(sampler);
    }
    const seconds = (Date.now() - started) / 1000;

    // Every message was acknowledged; none failed or timed out.
    const perProducer = Math.ceil(PER_PRODUCER / MESSAGE);
    for (const r of reports) {
      expect({ errors: r.errors, firstError: r.firstError, unflushed: r.unflushed, acked: r.acked }).toEqual({ errors: 0, firstError: null, unflushed: 0, acked: perProducer });
    }
    const ackedCount = reports.reduce((a, r) => a + r.acked, 0);
    const ackedBytes = reports.reduce((a, r) => a + r.ackedBytes, 0);
    expect(ackedBytes).toBeGreaterThanOrEqual(1e9);

    // Everything acknowledged becomes committed: the high watermarks add up to the acked count.
    const hw = await pollUntil(
      'the high watermarks to cover every acknowledged message',
      async () => {
        const states = await highWatermarks(server, topic);
        const sum = [...states.values()].reduce((a, s) => a + s.highWatermark, 0);
        return sum >= ackedCount ? states : undefined;
      },
      10_000,
      50,
    );
    expect([...hw.values()].reduce((a, s) => a + s.highWatermark, 0)).toBe(ackedCount);

    // ... and readable: the first message of each partition (rolled into segments by now) and
    // the last one, which is the one a producer was acknowledged for at that offset.
    for (let p = 0; p < PARTITIONS; p++) {
      const end = hw.get(p)!.highWatermark;
      const lastAcked = reports.map((r) => r.last[String(p)]).filter((x) => x !== undefined).sort((a, b) => b[1] - a[1])[0];
      expect(lastAcked?.[1], `last acknowledged offset of partition ${p}`).toBe(end - 1);
      for (const [offset, prefix] of [[0, undefined], [end - 1, lastAcked[0]]] as const) {
        const r = await kcat(server.bootstrap, ['-C', '-t', topic, '-p', String(p), '-o', String(offset), '-c', '1', '-e', '-q', '-J'], { timeoutMs: 30_000 });
        const msg = JSON.parse(r.stdout.trim()) as { offset: number; payload: string };
        expect(msg.offset).toBe(offset);
        expect(msg.payload).toHaveLength(MESSAGE);
        expect(msg.payload).toMatch(prefix === undefined ? /^f\d-\d+\|\.+$/ : new RegExp(`^${prefix}\\|\\.+$`));
      }
    }

    console.log(
      `[backpressure] ${PRODUCERS} producers pushed ${(ackedBytes / MiB).toFixed(0)} MiB (${ackedCount} messages, acks=1) in ${seconds.toFixed(1)} s ` +
        `= ${(ackedBytes / MiB / seconds).toFixed(1)} MiB/s with --max-unflushed-bytes ${MAX_UNFLUSHED / MiB} MiB, --flush-ms 100; ` +
        `peak RSS ${(peakRss / MiB).toFixed(0)} MiB over ${samples} samples (every 1 s: ${rssTimeline.join(' ')}); ` +
        `peak sampled unflushed ${(peakUnflushed / MiB).toFixed(1)} MiB`,
    );
    expect(samples).toBeGreaterThan(50);
    expect(peakRss, 'peak resident memory of the server').toBeLessThan(RSS_LIMIT);
    // The proxy may read at most about one more request per connection after crossing the limit.
    expect(peakUnflushed, 'peak unflushed bytes of the broker').toBeLessThanOrEqual(MAX_UNFLUSHED + PRODUCERS * 4 * MiB);
    await server.dispose();
  });
});
