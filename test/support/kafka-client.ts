// A minimal Kafka client for tests, built on the project's own codec: one connection,
// requests pipelined, responses matched by correlation id. It lets tests send exactly the
// bytes they mean, including bad ones.
import net from 'node:net';
import { Reader, Writer } from '../../services/protocol/primitives.js';
import { apis } from '../../services/protocol/messages/index.js';
import { encodeRequestHeader } from '../../services/protocol/messages/request-header.js';

type Pending = { resolve: (frame: Buffer) => void; reject: (e: Error) => void };

export class TestClient {
  private buf = Buffer.alloc(0);
  private pending = new Map<number, Pending>();
  private nextId = 1;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d) => this.onData(d));
    this.closed = new Promise((resolve) => socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('connection closed'));
      this.pending.clear();
      resolve();
    }));
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new TestClient(s)));
      s.once('error', reject);
    });
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 4) {
      const size = this.buf.readInt32BE(0);
      if (this.buf.length < size + 4) return;
      const frame = this.buf.subarray(4, size + 4);
      this.buf = this.buf.subarray(size + 4);
      const id = frame.readInt32BE(0);
      const p = this.pending.get(id);
      this.pending.delete(id);
      p?.resolve(frame);
    }
  }

  /** Sends raw bytes as they are (no size prefix added). */
  writeRaw(b: Buffer): void {
    this.socket.write(b);
  }

  /** Sends a request and resolves with the raw response frame (after the size prefix). */
  requestRaw(apiKey: number, version: number, body: (w: Writer) => void, expectResponse = true): Promise<Buffer> {
    const { frame, response } = this.frameRaw(apiKey, version, body, expectResponse);
    this.socket.write(frame);
    return response;
  }

  /**
   * Encodes a request frame (size prefix included) without sending it, for tests that write
   * the bytes themselves; `response` resolves once its answer arrives.
   */
  frameRaw(apiKey: number, version: number, body: (w: Writer) => void, expectResponse = true): { frame: Buffer; response: Promise<Buffer> } {
    const id = this.nextId++;
    const api = apis[apiKey as keyof typeof apis];
    const w = new Writer();
    encodeRequestHeader(w, api.request.isFlexible(version) ? 2 : 1, { requestApiKey: apiKey, requestApiVersion: version, correlationId: id, clientId: 'skiff-test' });
    body(w);
    const payload = w.toBuffer();
    const head = Buffer.alloc(4);
    head.writeInt32BE(payload.length, 0);
    const response = expectResponse
      ? new Promise<Buffer>((resolve, reject) => this.pending.set(id, { resolve, reject }))
      : Promise.resolve(Buffer.alloc(0));
    return { frame: Buffer.concat([head, payload]), response };
  }

  /** Writes bytes and resolves once the socket has handed them to the kernel. */
  writeAndWait(b: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(b, (err) => (err ? reject(err) : resolve())));
  }

  /** Encodes `request` with the generated codec and decodes the response. */
  async request<T = any>(apiKey: number, version: number, request: object): Promise<T> {
    const api = apis[apiKey as keyof typeof apis];
    const frame = await this.requestRaw(apiKey, version, (w) => (api.encodeRequest as (w: Writer, v: number, m: unknown) => Writer)(w, version, request));
    const r = new Reader(frame, 4);
    if (apiKey !== 18 && api.response.isFlexible(version)) r.taggedFields();
    return (api.decodeResponse as (r: Reader, v: number) => T)(r, version);
  }

  close(): void {
    this.socket.destroy();
  }
}
