#!/usr/bin/env node
// A recording TCP proxy for golden protocol tests: it forwards a Kafka client's bytes to a broker
// and back untouched, and writes every complete size-prefixed frame it sees to its own fixture
// file, the response named after the request it answers (paired by correlation id).
//
//   node tools/record-frames.mjs --listen 19092 --target 127.0.0.1:9092 \
//     --out test/protocol/fixtures --client kcat [--format raw|hex]
//
// Files are named <client>_<api>_<request|response>_v<N>_<NNN>.<bin|hex>: api in snake_case,
// N the request's API version, NNN a counter per client, api and version that a request and
// its response share and that continues after the files already in --out.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';

const USAGE = 'usage: record-frames.mjs --listen [host:]port --target host:port --out dir [--client name] [--format raw|hex]';
/** A size prefix beyond this is not a Kafka frame: recording stops on that connection. */
const MAX_FRAME = 256 * 1024 * 1024;

function parseArgs(argv) {
  const opts = { client: 'client', format: 'raw' };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key.startsWith('--') || value === undefined) fail(`bad argument ${key}`);
    opts[key.slice(2)] = value;
    i++;
  }
  if (opts.listen === undefined || !opts.target || !opts.out) fail('--listen, --target and --out are required');
  if (opts.format !== 'raw' && opts.format !== 'hex') fail('--format is raw or hex');
  return opts;
}

function fail(message) {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

/** host:port or port → [host, port]. */
function hostPort(s, defaultHost) {
  const i = s.lastIndexOf(':');
  return i < 0 ? [defaultHost, Number(s)] : [s.slice(0, i), Number(s.slice(i + 1))];
}

const snake = (s) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();

/** API key → snake_case name, read from the generated ApiKey table so the two never drift. */
function apiNames() {
  const source = readFileSync(new URL('../services/protocol/messages/api-keys.ts', import.meta.url), 'utf8');
  const table = source.slice(source.indexOf('export const ApiKey = {'), source.indexOf('} as const;'));
  const names = new Map();
  for (const [, name, key] of table.matchAll(/^\s+(\w+): (\d+),$/gm)) names.set(Number(key), snake(name));
  return names;
}

/** Next free NNN per "<client>_<api>_v<N>", so that a second session does not overwrite the first. */
function existingCounters(dir) {
  const next = new Map();
  for (const f of readdirSync(dir)) {
    const m = /^(.+)_(?:request|response)_(v\d+)_(\d+)\.(?:bin|hex)$/.exec(f);
    if (!m) continue;
    const key = `${m[1]}_${m[2]}`;
    next.set(key, Math.max(next.get(key) ?? 0, Number(m[3]) + 1));
  }
  return next;
}

/** Cuts a byte stream into size-prefixed frames; gives up for good on a nonsense size. */
class Framer {
  constructor(onFrame, onBroken) {
    this.onFrame = onFrame;
    this.onBroken = onBroken;
    // Chunks are only joined once a whole frame is in, so a large frame costs one copy.
    this.chunks = [];
    this.length = 0;
    this.frameLength = -1;
    this.broken = false;
  }

  push(chunk) {
    if (this.broken) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
    for (;;) {
      if (this.frameLength < 0) {
        if (this.length < 4) return;
        const size = this.join().readInt32BE(0);
        if (size < 0 || size > MAX_FRAME) return this.break(`frame size ${size}`);
        this.frameLength = 4 + size;
      }
      if (this.length < this.frameLength) return;
      const all = this.join();
      const frame = Buffer.from(all.subarray(0, this.frameLength));
      const rest = all.subarray(this.frameLength);
      this.chunks = rest.length ? [rest] : [];
      this.length = rest.length;
      this.frameLength = -1;
      try {
        this.onFrame(frame);
      } catch (e) {
        return this.break(e.message);
      }
    }
  }

  join() {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0];
  }

  break(why) {
    this.broken = true;
    this.chunks = [];
    this.length = 0;
    this.onBroken(why);
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const [listenHost, listenPort] = hostPort(String(opts.listen), '127.0.0.1');
  const [targetHost, targetPort] = hostPort(opts.target, '127.0.0.1');
  const client = opts.client.replace(/[^A-Za-z0-9-]/g, '-');
  const ext = opts.format === 'hex' ? 'hex' : 'bin';
  mkdirSync(opts.out, { recursive: true });
  const names = apiNames();
  const counters = existingCounters(opts.out);
  let connections = 0;

  const save = (api, kind, version, seq, frame) => {
    const file = `${client}_${api}_${kind}_v${version}_${String(seq).padStart(3, '0')}.${ext}`;
    writeFileSync(join(opts.out, file), opts.format === 'hex' ? `${frame.toString('hex')}\n` : frame);
    console.log(`recorded ${file} (${frame.length} bytes)`);
  };

  const server = createServer((downstream) => {
    const id = ++connections;
    const upstream = connect(targetPort, targetHost);
    /** Correlation id → the request it answers, for this connection only. */
    const pending = new Map();

    const broken = (side) => (why) => console.error(`[${id}] ${side}: ${why}; forwarding without recording`);
    const requests = new Framer((frame) => {
      if (frame.length < 12) return console.error(`[${id}] request frame of ${frame.length} bytes is too short to record`);
      const apiKey = frame.readInt16BE(4);
      const version = frame.readInt16BE(6);
      const correlationId = frame.readInt32BE(8);
      const api = names.get(apiKey) ?? `api${apiKey}`;
      const key = `${client}_${api}_v${version}`;
      const seq = counters.get(key) ?? 0;
      counters.set(key, seq + 1);
      pending.set(correlationId, { api, version, seq });
      save(api, 'request', version, seq, frame);
    }, broken('requests'));
    const responses = new Framer((frame) => {
      if (frame.length < 8) return console.error(`[${id}] response frame of ${frame.length} bytes is too short to record`);
      const correlationId = frame.readInt32BE(4);
      const req = pending.get(correlationId);
      if (!req) return console.error(`[${id}] response with correlation id ${correlationId} answers no recorded request; not saved`);
      pending.delete(correlationId);
      save(req.api, 'response', req.version, req.seq, frame);
    }, broken('responses'));

    // Forward first, record second: the proxy must never change what either side sees.
    const pipe = (from, to, framer) => {
      from.on('data', (chunk) => {
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
        framer.push(chunk);
      });
      from.on('end', () => to.end());
      from.on('error', (e) => {
        console.error(`[${id}] ${e.message}`);
        to.destroy();
      });
      from.on('close', () => to.destroy());
    };
    pipe(downstream, upstream, requests);
    pipe(upstream, downstream, responses);
  });

  server.on('error', (e) => {
    console.error(e.message);
    process.exit(1);
  });
  server.listen(listenPort, listenHost, () => {
    const { address, port } = server.address();
    console.log(`listening on ${address}:${port}, forwarding to ${targetHost}:${targetPort}, recording into ${opts.out}`);
  });
  // Every frame is written as soon as it is complete, so there is nothing to flush on the way out.
  process.on('SIGINT', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

main();
