// Child processes for the end-to-end tests: one-shot runs of kcat and python scripts with a
// timeout and captured output, and long-running children whose output lines a test can wait
// for. Arguments go to spawn as an array, never through a shell. Every child started here is
// tracked so that a test file can kill whatever is left in afterAll, even after a failure.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PYTHON = '/usr/bin/python3';
export const KCAT = 'kcat';
/** Directory holding the e2e python scripts. */
export const PYTHON_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'python');

export interface RunResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. Without it stdin is closed at once. */
  input?: string | Buffer;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class ProcessFailedError extends Error {
  constructor(readonly result: RunResult) {
    super(
      `${result.command} ${result.timedOut ? 'timed out' : `exited with ${result.code ?? result.signal}`} after ${result.durationMs} ms` +
        `\n--- stdout ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`,
    );
    this.name = 'ProcessFailedError';
  }
}

function tail(s: string, max = 4000): string {
  return s.length > max ? `…${s.slice(-max)}` : s;
}

const live = new Set<ChildProcess>();

/** SIGKILLs every child this module started that is still running. */
export function killAllProcs(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

// Last resort when a test run is torn down without its afterAll: no orphans left behind.
process.once('exit', killAllProcs);

function describe(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Runs a command to completion (or to its timeout, then SIGKILL) and returns its output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(new Error(`could not start ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({
        command: describe(cmd, args),
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        durationMs: Date.now() - started,
      });
    });
    // A child that exits before reading its input makes the write fail with EPIPE; its exit
    // status tells the real story.
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Like run(), but throws ProcessFailedError unless the command exits with status 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0 || r.timedOut) throw new ProcessFailedError(r);
  return r;
}

/** kcat against a bootstrap address; throws unless it exits with 0. */
export function kcat(bootstrap: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return runOk(KCAT, ['-b', bootstrap, ...args], opts);
}

/** Runs e2e/python/<script> with the system python (confluent-kafka) and parses the JSON it prints last. */
export async function pythonJson<T = unknown>(script: string, args: readonly string[], opts: RunOptions = {}): Promise<T> {
  const r = await runOk(PYTHON, ['-u', path.join(PYTHON_DIR, script), ...args], opts);
  const lines = r.stdout.trim().split('\n').filter((l) => l.trim() !== '');
  const last = lines.at(-1);
  if (last === undefined) throw new ProcessFailedError(r);
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`${r.command} printed no JSON on its last line\n--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`);
  }
}

/** Parses every line of a JSON-lines text, ignoring blank lines. */
export function jsonLines<T = unknown>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

type LineWaiter = { match: (line: string) => boolean; resolve: (line: string) => void };

/**
 * A long-running child. Its stdout lines are kept in order; waitForLine resolves on the first
 * line (already seen or still to come) that matches, or rejects on timeout or exit.
 */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private stderrText = '';
  private partial = '';
  private waiters = new Set<LineWaiter>();
  private exitWaiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(
    readonly name: string,
    cmd: string,
    args: readonly string[],
    opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ) {
    this.child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => this.onStdout(s));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => {
      this.stderrText += s;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.stderrText += `\nspawn error: ${e.message}`;
      });
      this.child.on('close', (code, signal) => {
        live.delete(this.child);
        if (this.partial) this.pushLine(this.partial);
        this.partial = '';
        this.exitInfo = { code, signal };
        for (const w of this.exitWaiters) w();
        this.exitWaiters = [];
        resolve(this.exitInfo);
      });
    });
  }

  static python(name: string, script: string, args: readonly string[]): Proc {
    return new Proc(name, PYTHON, ['-u', path.join(PYTHON_DIR, script), ...args]);
  }

  get stderr(): string {
    return this.stderrText;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** Stdout lines parsed as JSON; lines that are not JSON are skipped. */
  json<T = Record<string, unknown>>(): T[] {
    const out: T[] = [];
    for (const l of this.lines) {
      try {
        out.push(JSON.parse(l) as T);
      } catch {
        // not a JSON line
      }
    }
    return out;
  }

  private onStdout(s: string): void {
    const parts = (this.partial + s).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.pushLine(line);
  }

  private pushLine(line: string): void {
    this.lines.push(line);
    for (const w of [...this.waiters]) {
      if (w.match(line)) {
        this.waiters.delete(w);
        w.resolve(line);
      }
    }
  }

  /** Resolves with the first stdout line that matches, or rejects after timeoutMs or on exit. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what = 'a matching line'): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        this.waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`${this.name}: ${why} while waiting for ${what}\n--- stdout ---\n${tail(this.lines.join('\n'))}\n--- stderr ---\n${tail(this.stderrText)}`));
      };
      const waiter: LineWaiter = {
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => fail(`no line after ${timeoutMs} ms`), timeoutMs);
      this.waiters.add(waiter);
      if (!this.running) fail(`exited (${this.exitInfo?.code ?? this.exitInfo?.signal})`);
      else this.exitWaiters.push(() => fail(`exited (${this.exitInfo?.code ?? this.exitInfo?.signal})`));
    });
  }

  /** Waits for a JSON line for which `match` holds. */
  async waitForJson<T = Record<string, unknown>>(match: (obj: T) => boolean, timeoutMs: number, what?: string): Promise<T> {
    const line = await this.waitForLine(
      (l) => {
        try {
          return match(JSON.parse(l) as T);
        } catch {
          return false;
        }
      },
      timeoutMs,
      what,
    );
    return JSON.parse(line) as T;
  }

  /** Sends a signal and waits for the exit; SIGKILL if it has not exited after timeoutMs. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exitInfo!;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Resolves when `check` returns a truthy value, polling every intervalMs; rejects after timeoutMs. */
export async function until<T>(what: string, check: () => T | Promise<T>, timeoutMs: number, intervalMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
