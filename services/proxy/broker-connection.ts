// A proxy's connection to one broker: the Kafka protocol itself is the internal RPC.
// Requests are pipelined and matched by correlation id; a lost connection fails what is in
// flight (callers answer clients with a retriable error) and a reconnect starts at once, so
// a broker that died is noticed by its refused port (onRefused) without waiting for a request.
import net from 'node:net';
import { Reader, Writer } from '../protocol/primitives.js';
import { requestHeaderVersion, responseHeaderVersion } from '../protocol/messages/api-keys.js';
import { codecs } from './codecs.js';
import { encodeRequestHeader } from '../protocol/messages/request-header.js';

export class BrokerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerUnavailableError';
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
  private buf: Buffer = Buffer.alloc(0);
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
        this.socket = s;
        this.connecting = undefined;
        this.buf = Buffer.alloc(0);
        s.on('data', (d) => this.onData(d));
        s.on('error', () => undefined);
        s.on('close', () => {
          this.failAll(new BrokerUnavailableError(`connection to broker ${this.host}:${this.port} closed`));
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

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    while (this.buf.length >= 4) {
      const size = this.buf.readInt32BE(0);
      if (this.buf.length < size + 4) return;
      const frame = this.buf.subarray(4, size + 4);
      this.buf = this.buf.subarray(size + 4);
      const id = frame.readInt32BE(0);
      const p = this.pending.get(id);
      if (!p) continue;
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
  }

  /** Sends one request and resolves with the decoded response. */
  async request<T>(apiKey: number, version: number, body: object, clientId = this.clientId): Promise<T> {
    if (this.closed) throw new BrokerUnavailableError('connection closed');
    const socket = await this.connect();
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
    this.failAll(new BrokerUnavailableError(`connection to broker ${this.host}:${this.port} closed`));
  }
}
