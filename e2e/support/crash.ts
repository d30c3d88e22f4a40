// Helpers for the crash and backpressure end-to-end tests: a free TCP port (so that a killed
// server comes back on the address its clients keep reconnecting to), the pid and resident
// memory of a `skiff dev` child found through /proc, incremental parsing of a long-running
// child's JSON lines, polling that fails fast, and a one-shot reader of a whole topic.

import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { kcat, type Proc } from './procs.js';
import type { PartitionState, Skiff } from './skiff.js';

/** A TCP port that was free a moment ago (bound on port 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '0.0.0.0', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The pid of the `skiff dev` process this test process started on `dataDir` (a direct child
 * of ours whose command line has `--data-dir <dataDir>`), or undefined if none runs.
 */
export function skiffPid(dataDir: string): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const at = argv.indexOf('--data-dir');
      if (argv.includes('dev') && at >= 0 && argv[at + 1] === dataDir) return Number(name);
    } catch {
      // the process ended while we looked
    }
  }
  return undefined;
}

/** Resident set size of a process in bytes (VmRSS), or undefined once it has exited. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a Proc's stdout JSON lines as they arrive, each line once. */
export class JsonTail<T = Record<string, unknown>> {
  private next = 0;
  readonly items: T[] = [];

  constructor(private readonly proc: Proc) {}

  /** Parses lines that arrived since the last call; returns only the new items. */
  poll(): T[] {
    const fresh: T[] = [];
    const lines = this.proc.lines;
    for (; this.next < lines.length; this.next++) {
      const line = lines[this.next];
      if (line.trim() === '') continue;
      try {
        fresh.push(JSON.parse(line) as T);
      } catch {
        // not a JSON line
      }
    }
    this.items.push(...fresh);
    return fresh;
  }
}

/**
 * Polls `check` every intervalMs until it returns a truthy value. Unlike procs.until, an
 * exception thrown by `check` ends the wait at once (use it for "the producer died").
 */
export async function pollUntil<T>(what: string, check: () => T | Promise<T>, timeoutMs: number, intervalMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** High watermark of every partition of `topic`, by partition, from /v1/partitions. */
export async function highWatermarks(server: Skiff, topic: string): Promise<Map<number, PartitionState>> {
  const states = await server.http<PartitionState[]>('/v1/partitions');
  return new Map(states.filter((s) => s.topic === topic).map((s) => [s.partition, s]));
}

export interface Row {
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
}

/** Every message of `topic` from the beginning to the end, with kcat, ordered by partition and offset. */
export async function readTopic(bootstrap: string, topic: string, timeoutMs = 60_000): Promise<Row[]> {
  const r = await kcat(bootstrap, ['-C', '-t', topic, '-e', '-o', 'beginning', '-J', '-q', '-X', 'fetch.wait.max.ms=50'], { timeoutMs });
  const rows: Row[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.trim() === '') continue;
    const { partition, offset, key, payload } = JSON.parse(line) as Row;
    rows.push({ partition, offset, key, payload });
  }
  return rows.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
