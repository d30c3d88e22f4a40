// WAL objects: what one flush of one broker writes, the batches of every partition it had
// pending, grouped by partition, followed by an index and a trailer. The same index, with
// the object's key, is the commit record in the MetaStore. docs/storage-format.md has the
// byte layout.
import { crc32c } from '../protocol/native.js';
import { crc32cCombine } from '../protocol/record-batch.js';

/** One partition's contiguous run of batches inside an object. */
export interface Extent {
  topicId: string;
  partition: number;
  baseOffset: number;
  lastOffset: number;
  /** Byte position of the first batch in the object. */
  position: number;
  length: number;
  maxTimestamp: number;
  /** CRC-32C of the extent's bytes, checked on every read from storage. */
  crc: number;
  /** Idempotent batches in this extent, to rebuild producer state on recovery. */
  producers: ProducerBatch[];
}

export interface ProducerBatch {
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  lastSequence: number;
  baseOffset: number;
  lastOffset: number;
}

const INDEX_MAGIC = 0x534b5731; // "SKW1"
const TRAILER_MAGIC = Buffer.from('SKIFFWAL');
const TRAILER_SIZE = 16;
const ENTRY_FIXED = 16 + 4 + 8 + 8 + 8 + 4 + 8 + 4 + 2;
const PRODUCER_SIZE = 8 + 2 + 4 + 4 + 8 + 8;

export class StorageFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StorageFormatError';
  }
}

function uuidBytes(id: string, out: Buffer, at: number): void {
  out.write(id.replace(/-/g, ''), at, 16, 'hex');
}

function uuidString(buf: Buffer, at: number): string {
  const h = buf.toString('hex', at, at + 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function encodeIndex(extents: Extent[]): Buffer {
  let size = 8;
  for (const e of extents) size += ENTRY_FIXED + e.producers.length * PRODUCER_SIZE;
  const b = Buffer.allocUnsafe(size);
  b.writeUInt32BE(INDEX_MAGIC, 0);
  b.writeUInt32BE(extents.length, 4);
  let at = 8;
  for (const e of extents) {
    uuidBytes(e.topicId, b, at);
    at = b.writeInt32BE(e.partition, at + 16);
    at = b.writeBigInt64BE(BigInt(e.baseOffset), at);
    at = b.writeBigInt64BE(BigInt(e.lastOffset), at);
    at = b.writeBigInt64BE(BigInt(e.position), at);
    at = b.writeUInt32BE(e.length, at);
    at = b.writeBigInt64BE(BigInt(e.maxTimestamp), at);
    at = b.writeUInt32BE(e.crc >>> 0, at);
    at = b.writeUInt16BE(e.producers.length, at);
    for (const p of e.producers) {
      at = b.writeBigInt64BE(p.producerId, at);
      at = b.writeInt16BE(p.producerEpoch, at);
      at = b.writeInt32BE(p.baseSequence, at);
      at = b.writeInt32BE(p.lastSequence, at);
      at = b.writeBigInt64BE(BigInt(p.baseOffset), at);
      at = b.writeBigInt64BE(BigInt(p.lastOffset), at);
    }
  }
  return b;
}

export function decodeIndex(b: Buffer): Extent[] {
  if (b.length < 8 || b.readUInt32BE(0) !== INDEX_MAGIC) throw new StorageFormatError('bad WAL index magic');
  const n = b.readUInt32BE(4);
  const out: Extent[] = [];
  let at = 8;
  for (let i = 0; i < n; i++) {
    if (at + ENTRY_FIXED > b.length) throw new StorageFormatError('truncated WAL index');
    const topicId = uuidString(b, at);
    at += 16;
    const partition = b.readInt32BE(at);
    const baseOffset = Number(b.readBigInt64BE(at + 4));
    const lastOffset = Number(b.readBigInt64BE(at + 12));
    const position = Number(b.readBigInt64BE(at + 20));
    const length = b.readUInt32BE(at + 28);
    const maxTimestamp = Number(b.readBigInt64BE(at + 32));
    const crc = b.readUInt32BE(at + 40);
    const np = b.readUInt16BE(at + 44);
    at += 46;
    if (at + np * PRODUCER_SIZE > b.length) throw new StorageFormatError('truncated WAL index');
    const producers: ProducerBatch[] = [];
    for (let j = 0; j < np; j++) {
      producers.push({
        producerId: b.readBigInt64BE(at),
        producerEpoch: b.readInt16BE(at + 8),
        baseSequence: b.readInt32BE(at + 10),
        lastSequence: b.readInt32BE(at + 14),
        baseOffset: Number(b.readBigInt64BE(at + 18)),
        lastOffset: Number(b.readBigInt64BE(at + 26)),
      });
      at += PRODUCER_SIZE;
    }
    out.push({ topicId, partition, baseOffset, lastOffset, position, length, maxTimestamp, crc, producers });
  }
  return out;
}

export interface WalPart {
  extent: Omit<Extent, 'position' | 'length' | 'crc'>;
  chunks: Buffer[];
  /** CRC-32C of each chunk when the caller knows it already; otherwise the chunks are read. */
  crcs?: number[];
}

/**
 * Lays out one WAL object: data, index, trailer (index length, index CRC, magic). The body
 * is returned as the list of its parts, in order: the batches are never copied.
 */
export function buildWalObject(parts: WalPart[]): { body: Buffer[]; size: number; extents: Extent[]; index: Buffer } {
  const extents: Extent[] = [];
  const body: Buffer[] = [];
  let position = 0;
  for (const part of parts) {
    let length = 0;
    let crc = 0;
    part.chunks.forEach((c, i) => {
      crc = part.crcs ? crc32cCombine(crc, part.crcs[i], c.length) : crc32c(c, crc);
      length += c.length;
      body.push(c);
    });
    extents.push({ ...part.extent, position, length, crc });
    position += length;
  }
  const index = encodeIndex(extents);
  const trailer = Buffer.allocUnsafe(TRAILER_SIZE);
  trailer.writeUInt32BE(index.length, 0);
  trailer.writeUInt32BE(crc32c(index), 4);
  TRAILER_MAGIC.copy(trailer, 8);
  body.push(index, trailer);
  return { body, size: position + index.length + TRAILER_SIZE, extents, index };
}

/** Reads the index back from a whole WAL object (used by GC and recovery tooling). */
export function readWalIndex(body: Buffer): Extent[] {
  if (body.length < TRAILER_SIZE || !body.subarray(body.length - 8).equals(TRAILER_MAGIC)) {
    throw new StorageFormatError('not a WAL object');
  }
  const len = body.readUInt32BE(body.length - TRAILER_SIZE);
  const crc = body.readUInt32BE(body.length - TRAILER_SIZE + 4);
  const index = body.subarray(body.length - TRAILER_SIZE - len, body.length - TRAILER_SIZE);
  if (crc32c(index) !== crc) throw new StorageFormatError('WAL index checksum mismatch');
  return decodeIndex(index);
}

/** Checks bytes read back for an extent against the CRC recorded at write time. */
export function verifyExtent(e: Pick<Extent, 'crc' | 'length'>, data: Buffer): boolean {
  return data.length === e.length && crc32c(data) === e.crc;
}

/** The MetaStore value that commits a WAL object: its key and its index. */
export function encodeCommitRecord(objectKey: string, index: Buffer): Buffer {
  const k = Buffer.from(objectKey, 'utf8');
  const head = Buffer.allocUnsafe(2);
  head.writeUInt16BE(k.length, 0);
  return Buffer.concat([head, k, index]);
}

export function decodeCommitRecord(value: Buffer): { objectKey: string; extents: Extent[] } {
  if (value.length < 2) throw new StorageFormatError('truncated WAL commit record');
  const n = value.readUInt16BE(0);
  if (2 + n > value.length) throw new StorageFormatError('truncated WAL commit record');
  return { objectKey: value.toString('utf8', 2, 2 + n), extents: decodeIndex(value.subarray(2 + n)) };
}
