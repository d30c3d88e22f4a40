// Reader and Writer for the Kafka wire primitives: fixed-width integers, varints, classic
// and compact strings/bytes/arrays, UUIDs and tagged fields. The generated message codecs
// in messages/ are written in terms of these and nothing else.
// Large byte fields (record batches) are never copied: the Reader hands out slices of the
// frame and the Writer keeps them as separate chunks for a vectored socket write.

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const ZERO_UUID = '00000000-0000-0000-0000-000000000000';
export { ZERO_UUID };

export class Reader {
  offset: number;
  readonly end: number;

  constructor(readonly buf: Buffer, offset = 0, end = buf.length) {
    this.offset = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  private need(n: number): number {
    const at = this.offset;
    if (n < 0 || at + n > this.end) {
      throw new ProtocolError(`truncated: need ${n} bytes at ${at}, have ${this.end - at}`);
    }
    this.offset = at + n;
    return at;
  }

  bool(): boolean {
    return this.buf[this.need(1)] !== 0;
  }
  int8(): number {
    return this.buf.readInt8(this.need(1));
  }
  int16(): number {
    return this.buf.readInt16BE(this.need(2));
  }
  uint16(): number {
    return this.buf.readUInt16BE(this.need(2));
  }
  int32(): number {
    return this.buf.readInt32BE(this.need(4));
  }
  uint32(): number {
    return this.buf.readUInt32BE(this.need(4));
  }
  int64(): bigint {
    return this.buf.readBigInt64BE(this.need(8));
  }
  float64(): number {
    return this.buf.readDoubleBE(this.need(8));
  }

  uuid(): string {
    const at = this.need(16);
    const hex = this.buf.toString('hex', at, at + 16);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** Unsigned LEB128 varint, at most 5 bytes (32 bits). */
  uvarint(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.buf[this.need(1)];
      // The fifth byte holds bits 28..31: anything above would not fit 32 bits.
      if (i === 4 && b > 0x0f) throw new ProtocolError('varint exceeds 32 bits');
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
    throw new ProtocolError('varint longer than 5 bytes');
  }

  /** Zig-zag signed varint (32 bits). */
  varint(): number {
    const u = this.uvarint();
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /** Zig-zag signed varlong (64 bits), as used inside records. */
  varlong(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.need(1)];
      // The tenth byte holds bit 63 alone.
      if (i === 9 && b > 0x01) throw new ProtocolError('varlong exceeds 64 bits');
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return (result >> 1n) ^ -(result & 1n);
      shift += 7n;
    }
    throw new ProtocolError('varlong longer than 10 bytes');
  }

  /** Length of a string/bytes/array field; -1 means null. */
  private length(flex: boolean): number {
    const n = flex ? this.uvarint() - 1 : this.int32();
    if (n < -1) throw new ProtocolError(`negative length ${n}`);
    return n;
  }

  nullableString(flex: boolean): string | null {
    const n = flex ? this.uvarint() - 1 : this.int16();
    if (n < 0) return null;
    const at = this.need(n);
    return this.buf.toString('utf8', at, at + n);
  }

  string(flex: boolean): string {
    const s = this.nullableString(flex);
    if (s === null) throw new ProtocolError('null in a non-nullable string');
    return s;
  }

  nullableBytes(flex: boolean): Buffer | null {
    const n = this.length(flex);
    if (n < 0) return null;
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }

  bytes(flex: boolean): Buffer {
    const b = this.nullableBytes(flex);
    if (b === null) throw new ProtocolError('null in non-nullable bytes');
    return b;
  }

  nullableArray<T>(flex: boolean, item: (r: Reader) => T): T[] | null {
    const n = this.length(flex);
    if (n < 0) return null;
    // Every element takes at least one byte: a count beyond the frame is a lie, not an allocation.
    if (n > this.remaining) throw new ProtocolError(`array of ${n} exceeds the frame`);
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = item(this);
    return out;
  }

  array<T>(flex: boolean, item: (r: Reader) => T): T[] {
    const a = this.nullableArray(flex, item);
    if (a === null) throw new ProtocolError('null in a non-nullable array');
    return a;
  }

  /**
   * Reads a tagged-field section. `onTag` decodes the tags it knows from a reader bounded to
   * that field; unknown tags are skipped, as the protocol requires.
   */
  taggedFields(onTag?: (tag: number, r: Reader) => void): void {
    const count = this.uvarint();
    let last = -1;
    for (let i = 0; i < count; i++) {
      const tag = this.uvarint();
      if (tag <= last) throw new ProtocolError(`tagged fields out of order: ${tag} after ${last}`);
      last = tag;
      const size = this.uvarint();
      const at = this.need(size);
      if (onTag) {
        const sub = new Reader(this.buf, at, at + size);
        onTag(tag, sub);
      }
    }
  }
}

const CHUNK = 16 * 1024;
/** Byte fields at least this long are kept as their own chunk instead of being copied. */
const ZERO_COPY_MIN = 1024;

export type TagWriter = [tag: number, write: (w: Writer) => void];

/**
 * A `records` field: one Buffer, or, when written, the batches as separate chunks that go to
 * the socket as they are (a fetch answers from cached batches without joining them). Decoding
 * always gives one Buffer; `recordBytes` reads a field either way.
 */
export type Records = Buffer | readonly Buffer[];

/** The bytes of a `records` field as one Buffer (chunks are joined, a Buffer is returned as is). */
export function recordBytes(r: Records): Buffer;
export function recordBytes(r: Records | null): Buffer | null;
export function recordBytes(r: Records | null): Buffer | null {
  return r === null || Buffer.isBuffer(r) ? r : Buffer.concat(r);
}

export class Writer {
  private chunks: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  private done = 0;

  constructor(initial = 256) {
    this.cur = Buffer.allocUnsafe(initial);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.done + this.pos;
  }

  /**
   * Reserves n bytes and returns where they start in `this.cur`. It may replace `this.cur`, so
   * callers must call it before they read `this.cur`: `this.cur.writeInt32BE(v, this.room(4))`
   * would evaluate the old buffer first and write into a chunk that was already handed off.
   */
  private room(n: number): number {
    if (this.pos + n > this.cur.length) {
      if (this.pos > 0) {
        this.chunks.push(this.cur.subarray(0, this.pos));
        this.done += this.pos;
      }
      this.cur = Buffer.allocUnsafe(Math.max(n, CHUNK));
      this.pos = 0;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private byte(b: number): void {
    const at = this.room(1);
    this.cur[at] = b;
  }

  bool(v: boolean): this {
    const at = this.room(1);
    this.cur[at] = v ? 1 : 0;
    return this;
  }
  int8(v: number): this {
    const at = this.room(1);
    this.cur.writeInt8(v, at);
    return this;
  }
  int16(v: number): this {
    const at = this.room(2);
    this.cur.writeInt16BE(v, at);
    return this;
  }
  uint16(v: number): this {
    const at = this.room(2);
    this.cur.writeUInt16BE(v, at);
    return this;
  }
  int32(v: number): this {
    const at = this.room(4);
    this.cur.writeInt32BE(v, at);
    return this;
  }
  uint32(v: number): this {
    const at = this.room(4);
    this.cur.writeUInt32BE(v, at);
    return this;
  }
  int64(v: bigint): this {
    const at = this.room(8);
    this.cur.writeBigInt64BE(BigInt.asIntN(64, v), at);
    return this;
  }
  float64(v: number): this {
    const at = this.room(8);
    this.cur.writeDoubleBE(v, at);
    return this;
  }

  uuid(v: string): this {
    const hex = v.replace(/-/g, '');
    if (hex.length !== 32 || !/^[0-9a-fA-F]+$/.test(hex)) throw new ProtocolError(`bad uuid ${v}`);
    const at = this.room(16);
    this.cur.write(hex, at, 16, 'hex');
    return this;
  }

  uvarint(v: number): this {
    if (v < 0 || v > 0xffffffff) throw new ProtocolError(`uvarint out of range: ${v}`);
    while (v >= 0x80) {
      this.byte((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.byte(v);
    return this;
  }

  varint(v: number): this {
    return this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  varlong(v: bigint): this {
    let u = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
    while (u >= 0x80n) {
      this.byte(Number(u & 0x7fn) | 0x80);
      u >>= 7n;
    }
    this.byte(Number(u));
    return this;
  }

  private len(flex: boolean, n: number): this {
    return flex ? this.uvarint(n + 1) : this.int32(n);
  }

  nullableString(flex: boolean, v: string | null | undefined): this {
    if (v == null) return flex ? this.uvarint(0) : this.int16(-1);
    const n = Buffer.byteLength(v, 'utf8');
    if (flex) this.uvarint(n + 1);
    else {
      if (n > 0x7fff) throw new ProtocolError(`string of ${n} bytes is too long`);
      this.int16(n);
    }
    const at = this.room(n);
    this.cur.write(v, at, n, 'utf8');
    return this;
  }

  string(flex: boolean, v: string): this {
    return this.nullableString(flex, v ?? '');
  }

  /** Appends raw bytes with no length prefix. */
  raw(b: Buffer): this {
    if (b.length >= ZERO_COPY_MIN) {
      if (this.pos > 0) {
        this.chunks.push(this.cur.subarray(0, this.pos));
        this.done += this.pos;
        this.cur = this.cur.subarray(this.pos);
        this.pos = 0;
      }
      this.chunks.push(b);
      this.done += b.length;
      return this;
    }
    const at = this.room(b.length);
    b.copy(this.cur, at);
    return this;
  }

  nullableBytes(flex: boolean, v: Records | null | undefined): this {
    if (v == null) return this.len(flex, -1);
    if (Buffer.isBuffer(v)) {
      this.len(flex, v.length);
      return this.raw(v);
    }
    let n = 0;
    for (const c of v) n += c.length;
    this.len(flex, n);
    for (const c of v) this.raw(c);
    return this;
  }

  bytes(flex: boolean, v: Records): this {
    return this.nullableBytes(flex, v ?? Buffer.alloc(0));
  }

  nullableArray<T>(flex: boolean, v: T[] | null | undefined, item: (w: Writer, x: T) => void): this {
    if (v == null) return this.len(flex, -1);
    this.len(flex, v.length);
    for (const x of v) item(this, x);
    return this;
  }

  array<T>(flex: boolean, v: T[], item: (w: Writer, x: T) => void): this {
    return this.nullableArray(flex, v ?? [], item);
  }

  /** Writes a tagged-field section; `tags` must be in ascending tag order. */
  taggedFields(tags?: TagWriter[]): this {
    if (!tags || tags.length === 0) return this.uvarint(0);
    this.uvarint(tags.length);
    for (const [tag, write] of tags) {
      const sub = new Writer(64);
      write(sub);
      this.uvarint(tag).uvarint(sub.length);
      for (const c of sub.toChunks()) this.raw(c);
    }
    return this;
  }

  /** The written bytes as a list of buffers, without copying large fields. */
  toChunks(): Buffer[] {
    const out = this.chunks.slice();
    if (this.pos > 0) out.push(this.cur.subarray(0, this.pos));
    return out;
  }

  toBuffer(): Buffer {
    const chunks = this.toChunks();
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.length);
  }
}

/** Structural equality for tagged-field defaults (numbers, bigints, strings, buffers, arrays, objects). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a == null || b == null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
