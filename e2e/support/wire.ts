// A bare Kafka connection built on the project's own codec (services/protocol): frames
// requests with the right header version, matches responses by correlation id and records
// the order and time they arrived. For tests that need exact control over one request,
// such as a Fetch's max_wait_ms, which no client library exposes precisely.

import net from 'node:net';
import { apis } from '../../services/protocol/messages/index.js';
import { encodeRequestHeader } from '../../services/protocol/messages/request-header.js';
import { decodeResponseHeader } from '../../services/protocol/messages/response-header.js';
import { Reader, recordBytes, Writer, type Records } from '../../services/protocol/primitives.js';

type ApiTable = typeof apis;
type ApiKeyNum = keyof ApiTable & number;
type RequestOf<K extends ApiKeyNum> = Parameters<ApiTable[K]['encodeRequest']>[2];
type ResponseOf<K extends ApiKeyNum> = ReturnType<ApiTable[K]['decodeResponse']>;

export interface Answer<T> {
  correlationId: number;
  body: T;
  /** performance.now() when the response frame was complete. */
  receivedAt: number;
  /** Position among the responses received on this connection (0-based). */
  arrival: number;
}

interface Pending {
  apiKey: ApiKeyNum;
  version: number;
  resolve: (a: Answer<unknown>) => void;
  reject: (e: Error) => void;
}

export class WireClient {
  private nextCorrelation = 1;
  private pending = new Map<number, Pending>();
  private buffered: Buffer = Buffer.alloc(0);
  private arrivals = 0;
  private closedError: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const fail = (e: Error) => {
      this.closedError = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    socket.on('error', (e) => fail(e));
    socket.on('close', () => fail(new Error('connection closed by the server')));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host });
      s.setNoDelay(true);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new WireClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Sends one request and resolves with its decoded response. Requests may be pipelined. */
  request<K extends ApiKeyNum>(apiKey: K, version: number, body: RequestOf<K>, clientId = 'skiff-e2e-wire'): Promise<Answer<ResponseOf<K>>> {
    if (this.closedError) return Promise.reject(this.closedError);
    const api = apis[apiKey];
    const correlationId = this.nextCorrelation++;
    const w = new Writer();
    w.int32(0); // size, patched below
    encodeRequestHeader(w, api.request.isFlexible(version) ? 2 : 1, { requestApiKey: apiKey, requestApiVersion: version, correlationId, clientId });
    (api.encodeRequest as (w: Writer, v: number, m: unknown) => Writer)(w, version, body);
    const frame = w.toBuffer();
    frame.writeInt32BE(frame.length - 4, 0);
    return new Promise((resolve, reject) => {
      this.pending.set(correlationId, { apiKey, version, resolve: resolve as (a: Answer<unknown>) => void, reject });
      this.socket.write(frame);
    });
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 4) {
      const size = this.buffered.readInt32BE(0);
      if (this.buffered.length < 4 + size) return;
      const frame = this.buffered.subarray(4, 4 + size);
      this.buffered = this.buffered.subarray(4 + size);
      this.onFrame(frame);
    }
  }

  private onFrame(frame: Buffer): void {
    const receivedAt = performance.now();
    const correlationId = frame.readInt32BE(0);
    const p = this.pending.get(correlationId);
    if (!p) {
      this.socket.destroy(new Error(`response with unknown correlation id ${correlationId}`));
      return;
    }
    this.pending.delete(correlationId);
    const api = apis[p.apiKey];
    const r = new Reader(frame);
    // ApiVersions answers with header v0 whatever its version (KIP-511).
    const flexHeader = p.apiKey !== 18 && api.response.isFlexible(p.version);
    decodeResponseHeader(r, flexHeader ? 1 : 0);
    try {
      const body = (api.decodeResponse as (r: Reader, v: number) => unknown)(r, p.version);
      p.resolve({ correlationId, body, receivedAt, arrival: this.arrivals++ });
    } catch (e) {
      p.reject(e as Error);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface DecodedRecord {
  offset: bigint;
  timestamp: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[string, Buffer | null]>;
}

export interface DecodedBatch {
  baseOffset: bigint;
  attributes: number;
  /** attributes & 7: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd. */
  compression: number;
  records: DecodedRecord[] | null;
}

/**
 * Splits a Fetch response's records field into batches (magic 2). Records are decoded for
 * uncompressed batches only; compressed ones report their codec and `records: null`.
 */
export function decodeBatches(records: Records | null): DecodedBatch[] {
  const out: DecodedBatch[] = [];
  if (!records) return out;
  const buf = recordBytes(records);
  let at = 0;
  while (at + 61 <= buf.length) {
    const baseOffset = buf.readBigInt64BE(at);
    const size = buf.readInt32BE(at + 8) + 12;
    if (at + size > buf.length) break; // a partial trailing batch is allowed by the protocol
    const attributes = buf.readInt16BE(at + 21);
    const baseTimestamp = buf.readBigInt64BE(at + 27);
    const count = buf.readInt32BE(at + 57);
    const compression = attributes & 7;
    let records: DecodedRecord[] | null = null;
    if (compression === 0) {
      records = [];
      const r = new Reader(buf, at + 61, at + size);
      for (let i = 0; i < count; i++) {
        r.varint(); // record length
        r.int8(); // attributes
        const tsDelta = r.varlong();
        const offDelta = r.varint();
        const keyLen = r.varint();
        const key = keyLen < 0 ? null : Buffer.from(buf.subarray(r.offset, (r.offset += keyLen)));
        const valLen = r.varint();
        const value = valLen < 0 ? null : Buffer.from(buf.subarray(r.offset, (r.offset += valLen)));
        const headers: Array<[string, Buffer | null]> = [];
        const nh = r.varint();
        for (let h = 0; h < nh; h++) {
          const kl = r.varint();
          const hk = buf.toString('utf8', r.offset, (r.offset += kl));
          const vl = r.varint();
          const hv = vl < 0 ? null : Buffer.from(buf.subarray(r.offset, (r.offset += vl)));
          headers.push([hk, hv]);
        }
        records.push({ offset: baseOffset + BigInt(offDelta), timestamp: baseTimestamp + tsDelta, key, value, headers });
      }
    }
    out.push({ baseOffset, attributes, compression, records });
    at += size;
  }
  return out;
}

export interface FetchOnceOptions {
  version?: number;
  maxWaitMs?: number;
  minBytes?: number;
  partitionMaxBytes?: number;
}

/** One sessionless Fetch of one partition (Fetch v11 by default, as kafkajs sends it). */
export function fetchRequest(topic: string, partition: number, offset: bigint, opts: FetchOnceOptions = {}) {
  return {
    replicaId: -1,
    maxWaitMs: opts.maxWaitMs ?? 0,
    minBytes: opts.minBytes ?? 0,
    maxBytes: 50 * 1024 * 1024,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [
      {
        topic,
        partitions: [{ partition, currentLeaderEpoch: -1, fetchOffset: offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: opts.partitionMaxBytes ?? 10 * 1024 * 1024 }],
      },
    ],
    forgottenTopicsData: [],
    rackId: '',
  };
}
