// Kafka record batches (magic 2) as bytes: header field offsets, validation (sizes, magic,
// CRC-32C) and the in-place rewrites a broker may do. Records inside a batch are never
// decoded here: the CRC covers them and the broker only forwards them.
import { crc32c } from '@node-rs/crc32';
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

function readInfo(buf: Buffer, at: number, size: number): BatchInfo {
  return {
    position: at,
    size,
    baseOffset: Number(buf.readBigInt64BE(at + BatchField.baseOffset)),
    lastOffsetDelta: buf.readInt32BE(at + BatchField.lastOffsetDelta),
    recordsCount: buf.readInt32BE(at + BatchField.recordsCount),
    maxTimestamp: Number(buf.readBigInt64BE(at + BatchField.maxTimestamp)),
    baseTimestamp: Number(buf.readBigInt64BE(at + BatchField.baseTimestamp)),
    producerId: buf.readBigInt64BE(at + BatchField.producerId),
    producerEpoch: buf.readInt16BE(at + BatchField.producerEpoch),
    baseSequence: buf.readInt32BE(at + BatchField.baseSequence),
    attributes: buf.readInt16BE(at + BatchField.attributes),
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
