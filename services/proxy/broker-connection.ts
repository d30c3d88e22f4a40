// A proxy's connection to one broker: the Kafka protocol itself is the internal RPC.
// Requests are pipelined and matched by correlation id. The first request on each connection
// is an ApiVersions naming the proxy (PROXY_SOFTWARE_NAME), so that the broker answers each
// request when it is ready instead of in request order: one client's durable produce or
// JoinGroup does not hold up other clients' fetches. A lost connection fails what is in
// flight (callers answer clients with a retriable error) and a reconnect starts at once, so
// a broker that died is noticed by its refused port (onRefused) without waiting for a request.
import net from 'node:net';
import { Reader, Writer } from '../protocol/primitives.js';
import { ApiKey, requestHeaderVersion, responseHeaderVersion } from '../protocol/messages/api-keys.js';
import { codecs } from './codecs.js';
import { encodeRequestHeader } from '../protocol/messages/request-header.js';
import { PROXY_SOFTWARE_NAME } from './server.js';

const SOFTWARE_VERSION = '1';

export class BrokerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerUnavailableError';
  }
}

/**
 * A request was written to the broker and its answer will not come (the connection closed):
 * the broker may have carried it out.
 */
export class AnswerLostError extends BrokerUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = 'AnswerLostError';
  }
}

interface Pending {
  apiKey: number;
  version: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class BrokerConnection {
  private socket?: net.Socket;
  private connecting?: Promise<net.Socket>;
  /** Bytes read and not yet answered: whole reads, the first starting at a frame. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Size of the frame at the head of `chunks`, its 4-byte prefix included; -1 until known. */
  private need = -1;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly clientId: string,
    private readonly onRefused?: () => void,
  ) {}

  private connect(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    if (this.connecting) return this.connecting;
    this.connecting = new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port });
      s.setNoDelay(true);
      const fail = (err: NodeJS.ErrnoException) => {
        this.connecting = undefined;
        if (err.code === 'ECONNREFUSED' && !this.closed) this.onRefused?.();
        reject(new BrokerUnavailableError(`broker ${this.host}:${this.port}: ${err.message}`));
      };
      s.once('error', fail);
      s.once('connect', () => {
        s.off('error', fail);
        if (this.closed) {
          // Closed while connecting (a reconnect after the broker dropped the last one).
          s.destroy();
          this.connecting = undefined;
          reject(new BrokerUnavailableError(`connection to broker ${this.host}:${this.port} closed`));
          return;
        }
        this.socket = s;
        this.connecting = undefined;
        this.chunks = [];
        this.buffered = 0;
        this.need = -1;
        s.on('data', (d) => this.onData(d));
        this.send(s, ApiKey.ApiVersions, 3, { clientSoftwareName: PROXY_SOFTWARE_NAME, clientSoftwareVersion: SOFTWARE_VERSION }, this.clientId).catch(() => undefined);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.failAll(new AnswerLostError(`connection to broker ${this.host}:${this.port} closed`));
          if (!this.closed) this.connect().catch(() => undefined);
        });
        resolve(s);
      });
    });
    return this.connecting;
  }

  private failAll(err: Error): void {
    this.socket = undefined;
    const pending = this.pending;
    this.pending = new Map();
    for (const p of pending.values()) p.reject(err);
  }

  /**
   * Splits reads into response frames. Reads are kept as they come and joined once, when a
   * frame is complete (a 1 MiB fetch answer arrives in many reads), so each byte is copied
   * at most twice; a frame inside one read is not copied at all.
   */
  private onData(d: Buffer): void {
    this.chunks.push(d);
    this.buffered += d.length;
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 4) return;
        if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
        this.need = this.chunks[0].readInt32BE(0) + 4;
      }
      if (this.buffered < this.need) return;
      const whole = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      const frame = whole.subarray(4, this.need);
      const rest = whole.subarray(this.need);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      this.need = -1;
      this.answer(frame);
    }
  }

  private answer(frame: Buffer): void {
    const id = frame.readInt32BE(0);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    try {
      const api = codecs.get(p.apiKey)!;
      const r = new Reader(frame, 4);
      if (responseHeaderVersion(p.apiKey, p.version) >= 1) r.taggedFields();
      p.resolve(api.decodeResponse(r, p.version));
    } catch (err) {
      p.reject(err as Error);
    }
  }

  /** Sends one request and resolves with the decoded response. */
  async request<T>(apiKey: number, version: number, body: object, clientId = this.clientId): Promise<T> {
    if (this.closed) throw new BrokerUnavailableError('connection closed');
    return this.send<T>(await this.connect(), apiKey, version, body, clientId);
  }

  private send<T>(socket: net.Socket, apiKey: number, version: number, body: object, clientId: string): Promise<T> {
    const id = this.nextId++ & 0x7fffffff;
    const api = codecs.get(apiKey)!;
    const w = new Writer(256);
    w.int32(0); // size, patched below
    encodeRequestHeader(w, requestHeaderVersion(apiKey, version), { requestApiKey: apiKey, requestApiVersion: version, correlationId: id, clientId });
    api.encodeRequest(w, version, body);
    const chunks = w.toChunks();
    chunks[0].writeInt32BE(w.length - 4, 0);
    const done = new Promise<T>((resolve, reject) => this.pending.set(id, { apiKey, version, resolve: resolve as (v: unknown) => void, reject }));
    socket.cork();
    for (const c of chunks) socket.write(c);
    socket.uncork();
    return done;
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.failAll(new AnswerLostError(`connection to broker ${this.host}:${this.port} closed`));
  }
}
