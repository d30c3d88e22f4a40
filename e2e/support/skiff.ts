// Starts the built Skiff server (`skiff dev`, embedded mode) as a child process for the
// end-to-end tests: free ports, its own temp data directory, output captured, ready when it
// logs "skiff dev is ready". useSkiff() wires start and teardown into a test file's hooks.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SKIFF_MAIN = path.join(ROOT, 'dist', 'services', 'cli', 'main.js');
/** The `skiff` command users run: Node with Skiff's heap flags, exec'd (the same pid). */
export const SKIFF_BIN = path.join(ROOT, 'bin', 'skiff');
const READY_MSG = 'skiff dev is ready';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;

export interface StartSkiffOptions {
  /** Reuse a data directory; by default a fresh one is made under os.tmpdir() and removed at teardown. */
  dataDir?: string;
  /** Extra flags for `skiff dev`, e.g. ['--default-partitions', '3']. */
  args?: string[];
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Skiff {
  /** `localhost:<kafkaPort>`, what the server advertises in Metadata. */
  readonly bootstrap: string;
  readonly kafkaPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  /** Pid of the running server process; undefined while it is stopped. */
  readonly pid: number | undefined;
  /** Everything the current and earlier processes wrote to stdout and stderr. */
  logs(): string;
  /** How the last process ended, once it has. */
  readonly lastExit: ExitInfo | null;
  /** Signals the server (SIGTERM: clean shutdown) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL: no flush, no checkpoint. */
  kill9(): Promise<void>;
  /** Stops the server if it runs (SIGTERM) and starts it again on the same data directory. */
  restart(): Promise<void>;
  /** Stops the server and removes the data directory if this helper made it. */
  dispose(): Promise<void>;
  /** GET on the HTTP endpoint, parsed as JSON. */
  http<T = unknown>(pathname: string): Promise<T>;
}

export class SkiffStartError extends Error {
  constructor(reason: string, output: string) {
    super(`skiff dev did not start: ${reason}\n--- output ---\n${output.slice(-6000)}`);
    this.name = 'SkiffStartError';
  }
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

interface Started {
  child: ChildProcess;
  kafkaPort: number;
  httpPort: number;
  exited: Promise<ExitInfo>;
}

export async function startSkiff(opts: StartSkiffOptions = {}): Promise<Skiff> {
  if (!existsSync(SKIFF_MAIN)) {
    throw new Error(`${SKIFF_MAIN} is missing: run \`npm run build\` first (npm test does it in pretest)`);
  }
  const ownsDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'skiff-e2e-')));
  const extra = opts.args ?? [];
  let output = '';
  let current: Started | null = null;
  let lastExit: ExitInfo | null = null;

  const launch = (): Promise<Started> =>
    new Promise((resolve, reject) => {
      const args = [
        'dev',
        '--data-dir', dataDir,
        '--port', '0',
        '--http-port', '0',
        '--group-initial-rebalance-delay-ms', '100',
        ...extra,
      ];
      const child = spawn(SKIFF_BIN, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(child);
      let partial = '';
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        child.kill('SIGKILL');
        reject(new SkiffStartError(`no "${READY_MSG}" line within ${READY_TIMEOUT_MS} ms`, output));
      }, READY_TIMEOUT_MS);
      const exited = new Promise<ExitInfo>((res) => {
        child.on('close', (code, signal) => {
          running.delete(child);
          lastExit = { code, signal };
          output += `--- skiff process ${child.pid} exited: ${code ?? signal} ---\n`;
          res(lastExit);
          if (!settled) {
            settled = true;
            clearTimeout(timer);
            reject(new SkiffStartError(`exited with ${code ?? signal} before it was ready`, output));
          }
        });
      });
      child.on('error', (e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new SkiffStartError(`spawn failed: ${e.message}`, output));
      });
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (s: string) => {
        output += s;
      });
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (s: string) => {
        output += s;
        if (settled) return;
        const lines = (partial + s).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.includes(READY_MSG)) continue;
          let rec: { msg?: string; kafkaPort?: number; httpPort?: number };
          try {
            rec = JSON.parse(line);
          } catch {
            continue;
          }
          if (rec.msg !== READY_MSG || typeof rec.kafkaPort !== 'number' || typeof rec.httpPort !== 'number') continue;
          settled = true;
          clearTimeout(timer);
          resolve({ child, kafkaPort: rec.kafkaPort, httpPort: rec.httpPort, exited });
          return;
        }
      });
    });

  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const c = current;
    if (!c) return;
    current = null;
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill(signal);
    const timer = setTimeout(() => {
      output += `--- skiff did not exit ${STOP_TIMEOUT_MS} ms after ${signal}: SIGKILL ---\n`;
      c.child.kill('SIGKILL');
    }, STOP_TIMEOUT_MS);
    try {
      await c.exited;
    } finally {
      clearTimeout(timer);
    }
  };

  current = await launch();
  let ports = { kafkaPort: current.kafkaPort, httpPort: current.httpPort };

  const handle: Skiff = {
    get bootstrap() {
      return `localhost:${ports.kafkaPort}`;
    },
    get kafkaPort() {
      return ports.kafkaPort;
    },
    get httpPort() {
      return ports.httpPort;
    },
    dataDir,
    get pid() {
      return current?.child.pid;
    },
    logs: () => output,
    get lastExit() {
      return lastExit;
    },
    stop: (signal: NodeJS.Signals = 'SIGTERM') => stopWith(signal),
    kill9: () => stopWith('SIGKILL'),
    async restart() {
      await stopWith('SIGTERM');
      current = await launch();
      ports = { kafkaPort: current.kafkaPort, httpPort: current.httpPort };
    },
    async dispose() {
      await stopWith('SIGTERM');
      if (ownsDir) await rm(dataDir, { recursive: true, force: true });
    },
    async http<T>(pathname: string): Promise<T> {
      const res = await fetch(`http://localhost:${ports.httpPort}${pathname}`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`GET ${pathname}: HTTP ${res.status}`);
      return (await res.json()) as T;
    },
  };
  return handle;
}

/**
 * Starts one server for the calling test file in beforeAll and disposes of it in afterAll.
 * The returned getter throws if used before beforeAll ran.
 */
export function useSkiff(opts: StartSkiffOptions = {}): () => Skiff {
  let server: Skiff | undefined;
  beforeAll(async () => {
    server = await startSkiff(opts);
  });
  afterAll(async () => {
    await server?.dispose();
  });
  return () => {
    if (!server) throw new Error('the Skiff server is not started (useSkiff must be called at the top of the file)');
    return server;
  };
}

export interface PartitionState {
  topic: string;
  partition: number;
  state: string;
  highWatermark: number;
  logStartOffset: number;
}
