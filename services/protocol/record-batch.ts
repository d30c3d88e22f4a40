// Kafka record batches (magic 2) as bytes: header field offsets, validation (sizes, magic,
// CRC-32C) and the in-place rewrites a broker may do. Records inside a batch are never
// decoded here: the CRC covers them and the broker only forwards them.
import { crc32c } from './native.js';
import { decompressRecords } from './compression.js';

export const BATCH_HEADER_SIZE = 61;
/** Bytes before the batchLength field's coverage starts (baseOffset + batchLength). */
export const LOG_OVERHEAD = 12;

export const BatchField = {
  baseOffset: 0,
  batchLength: 8,
  partitionLeaderEpoch: 12,
  magic: 16,
  crc: 17,
  attributes: 21,
  lastOffsetDelta: 23,
  baseTimestamp: 27,
  maxTimestamp: 35,
  producerId: 43,
  producerEpoch: 51,
  baseSequence: 53,
  recordsCount: 57,
} as const;

export const Attr = {
  compressionMask: 0x07,
  timestampTypeLogAppend: 0x08,
  transactional: 0x10,
  control: 0x20,
} as const;

export interface BatchInfo {
  /** Position of the batch in the buffer it was parsed from. */
  position: number;
  /** Total size including the 12-byte log overhead. */
  size: number;
  baseOffset: number;
  lastOffsetDelta: number;
  recordsCount: number;
  maxTimestamp: number;
  baseTimestamp: number;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  attributes: number;
  /** The CRC-32C in the header: of the bytes from the attributes field to the end. */
  crc: number;
}

export type BatchProblem = 'corrupt' | 'magic' | 'truncated' | 'empty';

export class BatchError extends Error {
  constructor(
    readonly problem: BatchProblem,
    message: string,
  ) {
    super(message);
    this.name = 'BatchError';
  }
}

/** A signed 64-bit field as a number, rounded exactly like Number(readBigInt64BE) but without a BigInt. */
export function readInt64(buf: Buffer, at: number): number {
  return buf.readInt32BE(at) * 4294967296 + buf.readUInt32BE(at + 4);
}

function readInfo(buf: Buffer, at: number, size: number): BatchInfo {
  return {
    position: at,
    size,
    baseOffset: readInt64(buf, at + BatchField.baseOffset),
    lastOffsetDelta: buf.readInt32BE(at + BatchField.lastOffsetDelta),
    recordsCount: buf.readInt32BE(at + BatchField.recordsCount),
    maxTimestamp: readInt64(buf, at + BatchField.maxTimestamp),
    baseTimestamp: readInt64(buf, at + BatchField.baseTimestamp),
    producerId: buf.readBigInt64BE(at + BatchField.producerId),
    producerEpoch: buf.readInt16BE(at + BatchField.producerEpoch),
    baseSequence: buf.readInt32BE(at + BatchField.baseSequence),
    attributes: buf.readInt16BE(at + BatchField.attributes),
    crc: buf.readUInt32BE(at + BatchField.crc),
  };
}

/**
 * Splits a produce request's record set into batches and checks each: magic 2, a length
 * that fits, and a CRC-32C over everything from the attributes field on.
 */
export function validateBatches(buf: Buffer): BatchInfo[] {
  const out: BatchInfo[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < BATCH_HEADER_SIZE) throw new BatchError('truncated', `record set ends inside a batch header at ${at}`);
    const batchLength = buf.readInt32BE(at + BatchField.batchLength);
    const size = batchLength + LOG_OVERHEAD;
    if (batchLength < BATCH_HEADER_SIZE - LOG_OVERHEAD || at + size > buf.length) {
      throw new BatchError('truncated', `batch length ${batchLength} does not fit the record set`);
    }
    const magic = buf.readInt8(at + BatchField.magic);
    if (magic !== 2) throw new BatchError('magic', `record batch magic ${magic} is not supported (only 2)`);
    const expected = buf.readUInt32BE(at + BatchField.crc);
    const actual = crc32c(buf.subarray(at + BatchField.attributes, at + size));
    if (expected !== actual) throw new BatchError('corrupt', `record batch CRC mismatch: header ${expected}, computed ${actual}`);
    const info = readInfo(buf, at, size);
    if (info.lastOffsetDelta < 0 || info.recordsCount < 0) throw new BatchError('corrupt', 'negative record count');
    out.push(info);
    at += size;
  }
  if (out.length === 0) throw new BatchError('empty', 'record set holds no batch');
  return out;
}

/** Header of the batch at `at` without validation: for buffers the broker wrote itself. */
export function peekBatch(buf: Buffer, at: number): BatchInfo {
  const size = buf.readInt32BE(at + BatchField.batchLength) + LOG_OVERHEAD;
  return readInfo(buf, at, size);
}

/** Iterates batches of a buffer the broker stored itself (already validated). */
export function* batchesOf(buf: Buffer): Generator<BatchInfo> {
  let at = 0;
  while (at + BATCH_HEADER_SIZE <= buf.length) {
    const info = peekBatch(buf, at);
    if (at + info.size > buf.length) return;
    yield info;
    at += info.size;
  }
}

/** Both fields lie before the CRC's coverage, so rewriting them keeps the batch valid. */
export function assignOffset(buf: Buffer, at: number, baseOffset: number, leaderEpoch: number): void {
  buf.writeBigInt64BE(BigInt(baseOffset), at + BatchField.baseOffset);
  buf.writeInt32BE(leaderEpoch, at + BatchField.partitionLeaderEpoch);
}

/**
 * Offset and timestamp of each record of a batch, in order, decompressing if needed.
 * Batches in a codec that cannot be read here (zstd) yield nothing.
 */
export function* recordTimestamps(buf: Buffer, b: BatchInfo): Generator<{ offset: number; timestamp: number }> {
  const raw = buf.subarray(b.position + BATCH_HEADER_SIZE, b.position + b.size);
  const records = decompressRecords(b.attributes & Attr.compressionMask, raw);
  if (!records) return;
  let at = 0;
  for (let i = 0; i < b.recordsCount && at < records.length; i++) {
    const len = readVarint(records, at);
    const bodyAt = len.next;
    const tsDelta = readVarint(records, bodyAt + 1); // after the attributes byte
    const offDelta = readVarint(records, tsDelta.next);
    yield { offset: b.baseOffset + offDelta.value, timestamp: b.baseTimestamp + tsDelta.value };
    at = bodyAt + len.value;
  }
}

function readVarint(buf: Buffer, at: number): { value: number; next: number } {
  let u = 0;
  let mul = 1;
  for (let i = 0; i < 10 && at < buf.length; i++) {
    const byte = buf[at++];
    u += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) break;
    mul *= 128;
  }
  return { value: u % 2 === 0 ? u / 2 : -(u + 1) / 2, next: at };
}

// ---- CRC-32C of whole record sets without reading the records again ------------------------
// A batch's header CRC covers everything from the attributes field on. Once validateBatches has
// checked it, the CRC-32C of the whole batch (or of several in a row) follows from it and the
// 21 uncovered header bytes alone: crc(A ‖ B) = combine(crc(A), crc(B), |B|), as zlib's
// crc32_combine does. The broker stores one CRC per WAL extent and per segment block, so this
// turns three more passes over every byte into a few hundred operations per batch.

const CRC32C_POLY = 0x82f63b78; // reflected Castagnoli polynomial
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY : c >>> 1;
  CRC_TABLE[n] = c;
}

/** crc32c(buf[start, end), crc) for a few bytes, without a native call. */
function crc32cSmall(buf: Buffer, start: number, end: number, crc: number): number {
  let c = ~crc;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** a(x)·b(x) mod P(x), both reflected (the top bit is x^0); kept in int32 arithmetic. */
function multModP(a: number, b: number): number {
  a |= 0;
  b |= 0;
  let p = 0;
  while (a !== 0) {
    if (a < 0) p ^= b;
    a <<= 1;
    b = b & 1 ? (b >>> 1) ^ CRC32C_POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) mod P. */
const X2N = new Uint32Array(32);
{
  let p = 0x40000000; // x^1
  X2N[0] = p;
  for (let k = 1; k < 32; k++) X2N[k] = p = multModP(p, p);
}

/** x^(8·len) mod P: the operator that shifts a CRC over `len` zero bytes. Lengths repeat, so a few are kept. */
const shiftCache = new Map<number, number>();
function shiftOperator(len: number): number {
  let op = shiftCache.get(len);
  if (op !== undefined) return op;
  op = 0x80000000; // x^0
  let k = 3;
  for (let n = len; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) op = multModP(X2N[k & 31], op);
  if (shiftCache.size >= 4096) shiftCache.clear();
  shiftCache.set(len, op);
  return op;
}

/** CRC-32C of A ‖ B from crc(A), crc(B) and the length of B. */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB === 0) return crcA >>> 0;
  return (multModP(shiftOperator(lengthB), crcA >>> 0) ^ crcB) >>> 0;
}

/**
 * CRC-32C of the batch at `buf[position, position + size)`, continuing `crc`, from its header
 * CRC. Only for batches whose header CRC has been checked (validateBatches, or bytes read back
 * under a verified CRC): it trusts it rather than reading the records.
 */
export function batchCrc(buf: Buffer, position: number, size: number, crc = 0): number {
  crc = crc32cSmall(buf, position, position + BatchField.attributes, crc);
  return crc32cCombine(crc, buf.readUInt32BE(position + BatchField.crc), size - BatchField.attributes);
}

/** batchCrc over consecutive checked batches: the CRC-32C of all their bytes. */
export function batchesCrc(buf: Buffer, batches: readonly BatchInfo[], crc = 0): number {
  for (const b of batches) crc = batchCrc(buf, b.position, b.size, crc);
  return crc;
}
