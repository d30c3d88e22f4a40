// Real servers for tests: etcd and nats-server as child processes, s3rver in-process, each on
// free loopback ports with a temp directory, plus the failure helpers (pause/resume with
// SIGSTOP/SIGCONT, kill/restart) that the adapters' failure tests need.

import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export class ServerBinaryMissingError extends Error {
  constructor(binary: string, debianPackage: string) {
    super(`'${binary}' was not found on PATH or in /usr/bin, /usr/sbin: install it with 'apt-get install ${debianPackage}'`);
    this.name = 'ServerBinaryMissingError';
  }
}

export class ServerStartError extends Error {
  constructor(what: string, reason: string, output: string) {
    super(`${what} did not start: ${reason}${output ? `\n--- output ---\n${output}` : ''}`);
    this.name = 'ServerStartError';
  }
}

export interface ProcessServer {
  /** Stops the server for good and removes its data. */
  stop(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets but answers nothing, like a hung or partitioned host. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGKILL, keeping data and ports for restart(). */
  kill(): Promise<void>;
  /** Starts the server again on the same ports and data; resolves once it is ready. */
  restart(): Promise<void>;
}

export interface EtcdServer extends ProcessServer {
  /** Client URL, e.g. http://127.0.0.1:23790. */
  endpoint: string;
  endpoints: string[];
}

export interface NatsServer extends ProcessServer {
  /** e.g. nats://127.0.0.1:4222. */
  url: string;
  port: number;
}

export interface S3Server {
  endpoint: string;
  port: number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Closes the HTTP server (dropping open connections) and removes the data. */
  stop(): Promise<void>;
  /** Closes the HTTP server (dropping open connections), keeping the data. */
  kill(): Promise<void>;
  /** Serves the same data on the same port again. */
  restart(): Promise<void>;
}

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function startEtcd(): Promise<EtcdServer> {
  const bin = await findBinary('etcd', 'etcd-server');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skiff-etcd-'));
  const [clientPort, peerPort] = await distinctFreePorts(2);
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'skiff-test',
    '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `skiff-test=${peerUrl}`,
    // A single member elects itself after one election timeout; keep that short. It also lowers
    // etcd's minimum lease TTL, so a 1 s test lease really is 1 s.
    '--heartbeat-interval', '50',
    '--election-timeout', '250',
    '--logger', 'zap',
    '--log-level', 'warn',
  ];
  const proc = new ManagedProcess('etcd', bin, args, waitForEtcdHealth(clientUrl));
  await proc.start();
  return {
    endpoint: clientUrl,
    endpoints: [clientUrl],
    ...proc.controls(dir),
  };
}

export async function startNats(): Promise<NatsServer> {
  const bin = await findBinary('nats-server', 'nats-server');
  const [port] = await distinctFreePorts(1);
  const proc = new ManagedProcess('nats-server', bin, ['-p', String(port), '-a', '127.0.0.1'], waitForNatsInfo(port));
  await proc.start();
  return { url: `nats://127.0.0.1:${port}`, port, ...proc.controls(undefined) };
}

interface S3rverLike {
  run(): Promise<unknown>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverLike;

export interface StartS3Options {
  /**
   * Run s3rver in a child node process started with --openssl-legacy-provider. s3rver encrypts
   * ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in its legacy provider,
   * so in-process it fails (HTTP 500) any listing longer than one page.
   */
  childProcess?: boolean;
}

export async function startS3(options: StartS3Options = {}): Promise<S3Server> {
  const require = createRequire(import.meta.url);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'skiff-s3-'));
  const [port] = await distinctFreePorts(1);
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { endpoint, port, region: 'us-east-1', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

  if (options.childProcess) {
    const script = `const S3rver = require(${JSON.stringify(require.resolve('s3rver'))});
new S3rver(${JSON.stringify({ port, address: '127.0.0.1', directory, silent: true })}).run();`;
    const proc = new ManagedProcess('s3rver', process.execPath, ['--openssl-legacy-provider', '-e', script], (isAlive) =>
      pollUntil('s3rver', isAlive, async () => {
        await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
        return true;
      }),
    );
    await proc.start();
    const { kill, restart, stop } = proc.controls(directory);
    return { ...credentials, kill, restart, stop };
  }

  // s3rver is CommonJS without type declarations.
  const S3rver = require('s3rver') as S3rverConstructor;
  let server: S3rverLike | undefined;
  const start = async (): Promise<void> => {
    const s = new S3rver({ port, address: '127.0.0.1', directory, silent: true });
    await s.run();
    server = s;
  };
  const kill = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (!s?.httpServer) return;
    // close() alone waits for every keep-alive connection the SDK holds open.
    const closed = s.close();
    s.httpServer.closeAllConnections();
    await closed;
  };
  await start();
  return {
    ...credentials,
    kill,
    restart: start,
    stop: async () => {
      await kill();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------

const running = new Set<ChildProcess>();
// A crashed or interrupted test run must not leave servers behind holding ports.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';

  constructor(
    private readonly name: string,
    private readonly bin: string,
    private readonly args: string[],
    private readonly ready: (isAlive: () => boolean) => Promise<void>,
  ) {}

  async start(): Promise<void> {
    this.output = '';
    const child = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(child);
    let exitInfo: string | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitInfo = `exited with ${signal ?? `code ${code}`}`;
        running.delete(child);
        resolve();
      });
    });
    const keep = (chunk: Buffer): void => {
      // Only the tail is useful for a start-up failure message.
      this.output = (this.output + chunk.toString()).slice(-8000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('error', (err) => {
      exitInfo = err.message;
    });
    try {
      await this.ready(() => exitInfo === undefined);
    } catch (err) {
      await this.kill();
      throw new ServerStartError(this.name, exitInfo ?? (err instanceof Error ? err.message : String(err)), this.output);
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  controls(dir: string | undefined): ProcessServer {
    return {
      pause: () => this.signal('SIGSTOP'),
      resume: () => this.signal('SIGCONT'),
      kill: () => this.kill(),
      restart: async () => {
        await this.kill();
        await this.start();
      },
      stop: async () => {
        await this.kill();
        if (dir) await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

async function findBinary(name: string, debianPackage: string): Promise<string> {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new ServerBinaryMissingError(name, debianPackage);
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

const READY_TIMEOUT_MS = 20_000;
const POLL_MS = 25;

async function pollUntil(what: string, isAlive: () => boolean, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new ServerStartError(what, 'process exited', '');
    if (await probe().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new ServerStartError(what, `not ready after ${READY_TIMEOUT_MS} ms`, '');
}

function waitForEtcdHealth(clientUrl: string): (isAlive: () => boolean) => Promise<void> {
  return (isAlive) =>
    pollUntil('etcd', isAlive, async () => {
      const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      if (!res.ok) return false;
      const body = (await res.json()) as { health?: string };
      return body.health === 'true';
    });
}

/** nats-server greets every new connection with an INFO line once it accepts clients. */
function waitForNatsInfo(port: number): (isAlive: () => boolean) => Promise<void> {
  return (isAlive) =>
    pollUntil(
      'nats-server',
      isAlive,
      () =>
        new Promise<boolean>((resolve) => {
          const sock = net.connect(port, '127.0.0.1');
          const done = (ok: boolean): void => {
            sock.destroy();
            resolve(ok);
          };
          sock.setTimeout(1000, () => done(false));
          sock.once('error', () => done(false));
          sock.once('data', (chunk) => done(chunk.toString().startsWith('INFO')));
        }),
    );
}
