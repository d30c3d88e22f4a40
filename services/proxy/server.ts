// Client connections: Kafka framing (int32 size + frame), header decoding, dispatch to the
// API handlers, and responses written strictly in request order on each connection
// (KAFKA-COMPAT.md item 1). A proxy's own connections to a broker say so in their first
// request (ApiVersions with PROXY_SOFTWARE_NAME) and get each response as soon as it is
// ready: they carry many clients' requests and match answers by correlation id, so a fetch
// must not wait behind another client's durable produce or JoinGroup. Bad input closes the
// connection with a log line; it never throws out of here.
import net from 'node:net';
import type { Logger } from 'pino';
import { ProtocolError, Reader, Writer } from '../protocol/primitives.js';
import { ApiKey, requestHeaderVersion, responseHeaderVersion } from '../protocol/messages/api-keys.js';
import { decodeRequestHeader } from '../protocol/messages/request-header.js';
import { encodeApiVersionsResponse } from '../protocol/messages/api-versions-response.js';
import type { ApiVersionsRequest } from '../protocol/messages/api-versions-request.js';
import { ErrorCode } from '../protocol/errors.js';
import { SUPPORTED, isSupported } from './versions.js';
import { codecs } from './codecs.js';
import { proxyMetrics as m } from './metrics.js';

export interface RequestContext {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string;
  clientHost: string;
  /** Size of the request frame, for byte accounting. */
  size: number;
}

/** Returns the response body, or undefined for requests that get no response (acks=0). */
export type Dispatch = (ctx: RequestContext, request: unknown) => Promise<object | undefined>;

export interface ServerOptions {
  host: string;
  port: number;
  maxRequestBytes: number;
  log: Logger;
  dispatch: Dispatch;
  /** While true, the server stops reading from connections that produce (backpressure). */
  overloaded?: () => boolean;
}

interface Slot {
  chunks?: Buffer[];
  done: boolean;
}

/** ApiVersions clientSoftwareName of a proxy's connections to brokers (see the file comment). */
export const PROXY_SOFTWARE_NAME = 'skiff-proxy';

const API_NAMES = new Map<number, string>(Object.entries(ApiKey).map(([k, v]) => [v, k]));

class Connection {
  /** Size-prefix bytes of the next frame, when a read ended inside them. */
  private head = Buffer.alloc(4);
  private headBytes = 0;
  /** A frame that spans reads, filled as they arrive; `filled` bytes of it so far. */
  private frame?: Buffer;
  private filled = 0;
  private queue: Slot[] = [];
  private closed = false;
  /** Sent a Produce request: held back while the broker is overloaded; others (fetches) are not. */
  private producing = false;
  /** A proxy's connection: responses go out as they are ready, not in request order. */
  private unordered = false;
  private readonly host: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly o: ServerOptions,
    private readonly log: Logger,
  ) {
    this.host = socket.remoteAddress ?? 'unknown';
    socket.setNoDelay(true);
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (err) => this.log.debug({ err }, 'socket error'));
    socket.on('close', () => {
      this.closed = true;
      m.connections.dec();
    });
    socket.on('drain', () => this.socket.resume());
    m.connections.inc();
  }

  /**
   * Splits reads into frames. A frame inside one read is a subarray of it (no copy); one that
   * spans reads is copied into a buffer of its size as each read arrives, while the bytes are
   * still in the CPU cache, and the read buffers become garbage at once.
   */
  private onData(d: Buffer): void {
    m.bytesIn.inc(d.length);
    let at = 0;
    while (!this.closed && at < d.length) {
      if (this.frame) {
        const n = Math.min(d.length - at, this.frame.length - this.filled);
        d.copy(this.frame, this.filled, at, at + n);
        this.filled += n;
        at += n;
        if (this.filled < this.frame.length) break;
        const frame = this.frame;
        this.frame = undefined;
        this.handle(frame);
        continue;
      }
      let size: number;
      if (this.headBytes === 0 && d.length - at >= 4) {
        size = d.readInt32BE(at);
        at += 4;
      } else {
        const n = Math.min(4 - this.headBytes, d.length - at);
        d.copy(this.head, this.headBytes, at, at + n);
        this.headBytes += n;
        at += n;
        if (this.headBytes < 4) break;
        this.headBytes = 0;
        size = this.head.readInt32BE(0);
      }
      if (size < 8 || size > this.o.maxRequestBytes) {
        return this.abort('frame_size', `request frame of ${size} bytes is outside [8, ${this.o.maxRequestBytes}] (socket.request.max.bytes)`);
      }
      if (d.length - at >= size) {
        this.handle(d.subarray(at, at + size));
        at += size;
      } else {
        // Allocated whole, as Kafka's brokers do: unfilled pages of an uninitialised buffer
        // take no memory until the bytes arrive.
        this.frame = Buffer.allocUnsafe(size);
        this.filled = 0;
      }
    }
    if (this.producing && this.o.overloaded?.()) this.throttleReads();
  }

  /** Producer backpressure: stop reading this socket until the broker has flushed and rolled. */
  private throttleReads(): void {
    this.socket.pause();
    const check = () => {
      if (this.closed) return;
      if (this.o.overloaded?.()) setTimeout(check, 5);
      else this.socket.resume();
    };
    setTimeout(check, 5);
  }

  private abort(reason: string, message: string, extra: object = {}): void {
    m.errors.inc({ reason });
    this.log.warn({ client: this.host, reason, ...extra }, message);
    this.closed = true;
    this.socket.destroy();
  }

  private handle(frame: Buffer): void {
    const apiKey = frame.readInt16BE(0);
    const apiVersion = frame.readInt16BE(2);
    const correlationId = frame.readInt32BE(4);
    const api = codecs.get(apiKey);
    if (apiKey === ApiKey.Produce) this.producing = true;
    if (apiKey === ApiKey.ApiVersions && !isSupported(apiKey, apiVersion)) {
      // KIP-511: answer a version we do not know in the v0 format, with our ranges, so the
      // client can retry with one we do. Never close here (KAFKA-COMPAT.md item 4).
      this.log.info({ client: this.host, apiVersion }, 'ApiVersions version not supported: answered with v0');
      const w = new Writer().int32(correlationId);
      encodeApiVersionsResponse(w, 0, { errorCode: ErrorCode.UNSUPPORTED_VERSION, apiKeys: supportedApiKeys() });
      return this.enqueue(Promise.resolve(w.toChunks()));
    }
    if (!api || !SUPPORTED.has(apiKey)) {
      return this.abort('unknown_api', 'unknown or unsupported API key: closing connection', { apiKey, apiVersion });
    }
    if (!isSupported(apiKey, apiVersion)) {
      return this.abort('unsupported_version', `${api.name} v${apiVersion} is not supported: closing connection`, { apiKey, apiVersion });
    }
    let request: unknown;
    let header;
    const r = new Reader(frame);
    try {
      header = decodeRequestHeader(r, requestHeaderVersion(apiKey, apiVersion));
      request = api.decodeRequest(r, apiVersion);
    } catch (err) {
      const reason = err instanceof ProtocolError ? 'malformed' : 'decode_failed';
      return this.abort(reason, `malformed ${api.name} v${apiVersion} request: closing connection`, { err: (err as Error).message });
    }
    if (apiKey === ApiKey.ApiVersions && (request as ApiVersionsRequest).clientSoftwareName === PROXY_SOFTWARE_NAME) this.unordered = true;
    const ctx: RequestContext = {
      apiKey,
      apiVersion,
      correlationId,
      clientId: header.clientId ?? '',
      clientHost: this.host,
      size: frame.length + 4,
    };
    const name = API_NAMES.get(apiKey) ?? String(apiKey);
    m.requests.inc({ api: name });
    const end = m.latency.startTimer({ api: name });
    const response = this.o.dispatch(ctx, request).then((body) => {
      end();
      if (body === undefined) return undefined;
      // ApiVersions always uses response header v0 (KIP-511); other flexible responses v1.
      const w = new Writer(512).int32(correlationId);
      if (responseHeaderVersion(apiKey, apiVersion) >= 1) w.taggedFields();
      api.encodeResponse(w, apiVersion, body);
      return w.toChunks();
    });
    this.enqueue(response, name);
  }

  private enqueue(response: Promise<Buffer[] | undefined>, api = 'ApiVersions'): void {
    const failed = (err: unknown) => this.abort('handler_failed', `${api} handler failed: closing connection`, { err });
    if (this.unordered) {
      response.then((chunks) => this.write(chunks), failed);
      return;
    }
    const slot: Slot = { done: false };
    this.queue.push(slot);
    response.then((chunks) => {
      slot.chunks = chunks;
      slot.done = true;
      this.flushQueue();
    }, failed);
  }

  private flushQueue(): void {
    while (this.queue.length > 0 && this.queue[0].done) this.write(this.queue.shift()!.chunks);
  }

  private write(chunks: Buffer[] | undefined): void {
    if (!chunks || this.closed) return;
    let size = 0;
    for (const c of chunks) size += c.length;
    const head = Buffer.allocUnsafe(4);
    head.writeInt32BE(size, 0);
    this.socket.cork();
    this.socket.write(head);
    let ok = true;
    for (const c of chunks) ok = this.socket.write(c);
    this.socket.uncork();
    m.bytesOut.inc(size + 4);
    // A client that does not read its responses stops being read from.
    if (!ok) this.socket.pause();
  }
}

export function supportedApiKeys(): { apiKey: number; minVersion: number; maxVersion: number }[] {
  return [...SUPPORTED].map(([apiKey, [minVersion, maxVersion]]) => ({ apiKey, minVersion, maxVersion }));
}

export class KafkaServer {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();

  constructor(private readonly o: ServerOptions) {}

  async listen(): Promise<number> {
    const log = this.o.log.child({ component: 'kafka-server' });
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      new Connection(socket, this.o, log);
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.port, this.o.host, () => resolve());
    });
    const addr = this.server.address() as net.AddressInfo;
    log.info({ host: this.o.host, port: addr.port }, 'listening for Kafka clients');
    return addr.port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
