// Segment objects: one partition's batches for an offset range, rolled out of WAL objects.
// Layout: data (whole batches) · block index · trailer. The data is cut into blocks of
// about `blockBytes` (never splitting a batch); each index entry gives a block's first
// offset, position, length, max timestamp and CRC-32C, so the index is at once the sparse
// offset index, the time index, and the unit of verified range reads.
import { crc32c } from '@node-rs/crc32';
import { batchesOf } from '../protocol/record-batch.js';
import { StorageFormatError } from './wal-object.js';

export const SEGMENT_VERSION = 1;
const MAGIC = Buffer.from('SKIFFSEG');
const TRAILER_SIZE = 4 + 4 + 2 + 8 + 8 + 8 + 8;
const ENTRY_SIZE = 8 + 8 + 8 + 4 + 8 + 4;

export interface SegmentBlock {
  baseOffset: number;
  lastOffset: number;
  position: number;
  length: number;
  maxTimestamp: number;
  crc: number;
}

/** What a checkpoint keeps about a segment: enough to fetch its index with one range read. */
export interface SegmentRef {
  key: string;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  /** Bytes of batch data (the index starts here). */
  dataLength: number;
  indexLength: number;
}

export function segmentKey(topicId: string, partition: number, baseOffset: number, lastOffset: number): string {
  return `segments/${topicId}/${partition}/${String(baseOffset).padStart(20, '0')}-${String(lastOffset).padStart(20, '0')}.seg`;
}

/**
 * Builds a segment from chunks of whole batches (already offset-assigned, in offset order).
 * Blocks never span two chunks, so each block's CRC is taken over one buffer, and the body
 * is returned as the list of its parts: the batches are never copied.
 */
export function buildSegment(chunks: Buffer[], blockBytes: number): { body: Buffer[]; blocks: SegmentBlock[]; dataLength: number; indexLength: number } {
  const blocks: SegmentBlock[] = [];
  let base = 0;
  for (const chunk of chunks) {
    let cur: SegmentBlock | undefined;
    let start = 0;
    const close = () => {
      if (!cur) return;
      cur.crc = crc32c(chunk.subarray(start, start + cur.length));
      blocks.push(cur);
    };
    let seen = 0;
    for (const b of batchesOf(chunk)) {
      const last = b.baseOffset + b.lastOffsetDelta;
      if (!cur || cur.length >= blockBytes) {
        close();
        start = b.position;
        cur = { baseOffset: b.baseOffset, lastOffset: last, position: base + b.position, length: 0, maxTimestamp: -1, crc: 0 };
      }
      cur.length += b.size;
      cur.lastOffset = last;
      if (b.maxTimestamp > cur.maxTimestamp) cur.maxTimestamp = b.maxTimestamp;
      seen = b.position + b.size;
    }
    close();
    if (seen !== chunk.length) throw new StorageFormatError('segment data holds a partial batch');
    base += chunk.length;
  }
  const dataLength = base;
  const index = Buffer.allocUnsafe(blocks.length * ENTRY_SIZE);
  let at = 0;
  for (const blk of blocks) {
    at = index.writeBigInt64BE(BigInt(blk.baseOffset), at);
    at = index.writeBigInt64BE(BigInt(blk.lastOffset), at);
    at = index.writeBigInt64BE(BigInt(blk.position), at);
    at = index.writeUInt32BE(blk.length, at);
    at = index.writeBigInt64BE(BigInt(blk.maxTimestamp), at);
    at = index.writeUInt32BE(blk.crc >>> 0, at);
  }
  const trailer = Buffer.allocUnsafe(TRAILER_SIZE);
  let t = trailer.writeUInt32BE(index.length, 0);
  t = trailer.writeUInt32BE(crc32c(index), t);
  t = trailer.writeUInt16BE(SEGMENT_VERSION, t);
  t = trailer.writeBigInt64BE(BigInt(blocks[0]?.baseOffset ?? 0), t);
  t = trailer.writeBigInt64BE(BigInt(blocks[blocks.length - 1]?.lastOffset ?? -1), t);
  t = trailer.writeBigInt64BE(BigInt(dataLength), t);
  MAGIC.copy(trailer, t);
  return { body: [...chunks, index, trailer], blocks, dataLength, indexLength: index.length };
}

/** Decodes the index section (bytes [dataLength, dataLength + indexLength + trailer)). */
export function decodeSegmentIndex(buf: Buffer): SegmentBlock[] {
  if (buf.length < TRAILER_SIZE || !buf.subarray(buf.length - 8).equals(MAGIC)) throw new StorageFormatError('not a segment object');
  const trailerAt = buf.length - TRAILER_SIZE;
  const indexLength = buf.readUInt32BE(trailerAt);
  const crc = buf.readUInt32BE(trailerAt + 4);
  const version = buf.readUInt16BE(trailerAt + 8);
  if (version !== SEGMENT_VERSION) throw new StorageFormatError(`segment version ${version} is not supported`);
  if (indexLength > trailerAt) throw new StorageFormatError('truncated segment index');
  const index = buf.subarray(trailerAt - indexLength, trailerAt);
  if (crc32c(index) !== crc) throw new StorageFormatError('segment index checksum mismatch');
  const blocks: SegmentBlock[] = [];
  for (let at = 0; at + ENTRY_SIZE <= index.length; at += ENTRY_SIZE) {
    blocks.push({
      baseOffset: Number(index.readBigInt64BE(at)),
      lastOffset: Number(index.readBigInt64BE(at + 8)),
      position: Number(index.readBigInt64BE(at + 16)),
      length: index.readUInt32BE(at + 24),
      maxTimestamp: Number(index.readBigInt64BE(at + 28)),
      crc: index.readUInt32BE(at + 36),
    });
  }
  return blocks;
}

/** Byte range of the index and trailer, for one range read. */
export function segmentIndexRange(ref: Pick<SegmentRef, 'dataLength' | 'indexLength'>): { start: number; end: number } {
  return { start: ref.dataLength, end: ref.dataLength + ref.indexLength + TRAILER_SIZE };
}
