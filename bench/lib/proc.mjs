// Process helpers for the benchmarks: every command that is run goes through here so that it
// is written into the results (argv, duration, exit), plus free ports, readiness polling and
// /proc sampling (CPU time, RSS).
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { readFileSync, openSync, closeSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every command run, in order; the results file lists them. */
export const commandLog = [];

const quoteArg = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${String(a).replace(/'/g, `'\\''`)}'`);
export const shellLine = (cmd, args, env) =>
  [...Object.entries(env ?? {}).map(([k, v]) => `${k}=${quoteArg(String(v))}`), quoteArg(cmd), ...args.map((a) => quoteArg(String(a)))].join(' ');

let niceness = 0;
/** Run every later command under `nice -n N` (negative N needs root). */
export function setNice(n) {
  niceness = n;
}
const wrap = (cmd, args) => (niceness ? ['nice', ['-n', String(niceness), cmd, ...args]] : [cmd, args]);

let currentScenario = 'setup';
export function setScenario(name) {
  currentScenario = name;
}

function logEntry(cmd, args, env) {
  const entry = { scenario: currentScenario, command: shellLine(cmd, args, env), started: new Date().toISOString(), seconds: null, exit: null };
  commandLog.push(entry);
  const t0 = performance.now();
  return {
    entry,
    finish(code, signal) {
      entry.seconds = Number(((performance.now() - t0) / 1000).toFixed(3));
      entry.exit = signal ? `signal ${signal}` : code;
    },
  };
}

/**
 * Runs a command to completion (bounded by timeoutMs, then timeoutSignal), collecting stdout/stderr.
 * onLine(line, stream) is called for every complete line as it arrives. The returned promise
 * carries the child process as .child (to signal it).
 */
export function run(cmd0, args0, { env, cwd, timeoutMs = 120_000, timeoutSignal = 'SIGKILL', onLine, interruptAfterMs, stdin = 'ignore', logFile } = {}) {
  const [cmd, args] = wrap(cmd0, args0);
  const log = logEntry(cmd, args, env);
  const logFd = logFile ? openSync(logFile, 'a') : undefined;
  if (logFd !== undefined) writeSync(logFd, `\n$ ${log.entry.command}\n`);
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...(env ?? {}) }, stdio: [stdin, 'pipe', 'pipe'] });
  log.entry.pid = child.pid;
  const promise = new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const partial = { stdout: '', stderr: '' };
    const feed = (stream, chunk) => {
      const s = chunk.toString();
      if (stream === 'stdout') out += s;
      else err += s;
      if (out.length > 4e6) out = out.slice(-2e6);
      if (err.length > 4e6) err = err.slice(-2e6);
      if (logFd !== undefined) writeSync(logFd, s);
      if (!onLine) return;
      partial[stream] += s;
      let i;
      while ((i = partial[stream].indexOf('\n')) >= 0) {
        const line = partial[stream].slice(0, i);
        partial[stream] = partial[stream].slice(i + 1);
        try {
          onLine(line, stream);
        } catch {
          /* a parser error must not kill the run */
        }
      }
    };
    child.stdout.on('data', (c) => feed('stdout', c));
    child.stderr.on('data', (c) => feed('stderr', c));
    let interrupted = false;
    const timers = [];
    if (interruptAfterMs !== undefined) {
      timers.push(
        setTimeout(() => {
          interrupted = true;
          child.kill('SIGINT');
          timers.push(setTimeout(() => child.kill('SIGKILL'), 5000));
        }, interruptAfterMs),
      );
    }
    let timedOut = false;
    timers.push(
      setTimeout(() => {
        timedOut = true;
        child.kill(timeoutSignal);
        // A command that tears down its own children on timeoutSignal gets a moment for it.
        if (timeoutSignal !== 'SIGKILL') timers.push(setTimeout(() => child.kill('SIGKILL'), 15_000));
      }, timeoutMs),
    );
    child.on('error', (e) => {
      timers.forEach(clearTimeout);
      log.finish(-1);
      reject(e);
    });
    child.on('close', (code, signal) => {
      timers.forEach(clearTimeout);
      if (logFd !== undefined) closeSync(logFd);
      log.finish(code, signal);
      resolve({ code, signal, stdout: out, stderr: err, interrupted, timedOut, pid: child.pid });
    });
  });
  return Object.assign(promise, { child });
}

/** Starts a long-running process (a server); its output goes to logFile. */
export function startProcess(cmd0, args0, { env, cwd, logFile }) {
  const [cmd, args] = wrap(cmd0, args0);
  const log = logEntry(cmd, args, env);
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...(env ?? {}) }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  log.entry.pid = child.pid;
  log.entry.background = true;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      log.finish(code, signal);
      resolve({ code, signal });
    });
    child.on('error', () => {
      log.finish(-1);
      resolve({ code: -1 });
    });
  });
  return {
    child,
    pid: child.pid,
    exited,
    async stop(signal = 'SIGTERM', graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitHttp(url, timeoutMs = 30_000, isAlive = () => true) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!isAlive()) throw new Error(`process exited before ${url} answered`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

export async function waitTcp(port, timeoutMs = 15_000) {
  const { connect } = await import('node:net');
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`127.0.0.1:${port} did not accept within ${timeoutMs} ms`);
}

/** VmRSS / VmHWM of a live process in bytes. */
export function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) ?? [])[1] ?? NaN) * 1024;
    // anon: the process's own memory; file: pages of mapped files (for Node, mostly its own
    // binary's code and data, shared with every other Node process on the host).
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return { rss: NaN, hwm: NaN, anon: NaN, file: NaN };
  }
}

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  /* default */
}

/** utime+stime of a live process, seconds. */
export function cpuOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after the comm: state is f[0]; utime is field 14 => f[11], stime f[12], cutime f[13], cstime f[14]
    return { self: (Number(f[11]) + Number(f[12])) / clkTck, children: (Number(f[13]) + Number(f[14])) / clkTck };
  } catch {
    return { self: 0, children: 0 };
  }
}

/** Machine-wide CPU seconds (busy, total) since boot, from /proc/stat. */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / clkTck, total: (busy + idle + iowait) / clkTck, steal: steal / clkTck };
}

/** The block device under the benchmark's data directory (e.g. 'vda'): its writes are counted. */
let diskDevice;
export function setDiskDevice(name) {
  diskDevice = name;
}

/** Bytes written to diskDevice so far, from /proc/diskstats (sectors of 512 bytes). */
function diskWritten() {
  if (!diskDevice) return undefined;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] === diskDevice) return Number(f[9]) * 512;
  }
  return undefined;
}

/**
 * CPU accounting of a measured window: how much of the machine this benchmark used and how
 * much other processes (other work on the same machine) took meanwhile.
 */
export function cpuWindow(pidsFn) {
  const d0 = diskWritten();
  const m0 = machineCpu();
  const s0 = cpuOf(process.pid);
  const p0 = new Map(pidsFn().map((p) => [p, cpuOf(p).self]));
  const la0 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const t0 = performance.now();
  return () => {
    const m1 = machineCpu();
    const s1 = cpuOf(process.pid);
    let servers = 0;
    for (const p of pidsFn()) servers += cpuOf(p).self - (p0.get(p) ?? 0);
    const wall = (performance.now() - t0) / 1000;
    const ours = s1.self - s0.self + (s1.children - s0.children) + servers;
    const busy = m1.busy - m0.busy;
    const cores = Math.max(1, Math.round((m1.total - m0.total) / Math.max(wall, 1e-3)));
    const d1 = diskWritten();
    return {
      // Everything written to the data disk meanwhile (WAL objects, segments, metadata log).
      diskWriteMBps: d0 === undefined || d1 === undefined ? undefined : Number(((d1 - d0) / 1e6 / wall).toFixed(1)),
      wallSeconds: Number(wall.toFixed(2)),
      machineBusyPct: Number(((100 * busy) / Math.max(m1.total - m0.total, 1e-9)).toFixed(1)),
      serverCpuPct: Number(((100 * servers) / wall).toFixed(1)),
      benchCpuPct: Number(((100 * ours) / wall).toFixed(1)),
      otherCpuPct: Number(((100 * Math.max(0, busy - ours)) / wall).toFixed(1)),
      stealPct: Number(((100 * (m1.steal - m0.steal)) / wall).toFixed(1)),
      cores,
      loadavgStart: Number(la0),
      loadavgEnd: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    };
  };
}
