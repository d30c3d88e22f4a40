// Segment objects: one partition's batches for an offset range, rolled out of WAL objects.
// Layout: data (whole batches) · block index · trailer. The data is cut into blocks of
// about `blockBytes` (never splitting a batch); each index entry gives a block's first
// offset, position, length, max timestamp and CRC-32C, so the index is at once the sparse
// offset index, the time index, and the unit of verified range reads.
import { crc32c } from '../protocol/native.js';
import { batchCrc, batchesOf } from '../protocol/record-batch.js';
import type { StoredRange } from './object-store.js';
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
 * A built segment: its body as parts (batches uncopied, as buffers or as the stored ranges
 * they came from, then index and trailer) and its blocks.
 */
export interface BuiltSegment {
  body: Array<Buffer | StoredRange>;
  blocks: SegmentBlock[];
  dataLength: number;
  indexLength: number;
}

/**
 * Builds a segment from chunks of whole batches (already offset-assigned, in offset order),
 * one chunk at a time so that a caller with a lot of data can yield in between. The body is
 * the list of its parts: the batches are never copied. A block may span chunks.
 *
 * Block CRCs are derived from the batches' header CRCs, not by reading the data again, so
 * the chunks must hold batches whose CRCs were checked: appended through validateBatches,
 * or read back from storage under a verified CRC. If memory corrupted a batch since, the
 * block's CRC still describes the bytes as they were produced and a read refuses them.
 */
export class SegmentBuilder {
  private readonly chunks: Array<Buffer | StoredRange> = [];
  private readonly blocks: SegmentBlock[] = [];
  private cur: SegmentBlock | undefined;
  private dataLength = 0;

  constructor(private readonly blockBytes: number) {}

  add(chunk: Buffer): void {
    this.index(chunk);
    this.chunks.push(chunk);
  }

  /**
   * Adds chunks that are, together, the bytes at [start, end) of a stored object (a WAL
   * extent), so that the store may refer to them instead of writing them again.
   */
  addStored(chunks: Buffer[], from: Omit<StoredRange, 'bytes'>): void {
    let length = 0;
    for (const c of chunks) {
      this.index(c);
      length += c.length;
    }
    if (length !== from.end - from.start) throw new StorageFormatError(`${length} bytes given for ${from.end - from.start} stored in ${from.key}`);
    this.chunks.push({ ...from, bytes: chunks });
  }

  private index(chunk: Buffer): void {
    let end = 0;
    for (const b of batchesOf(chunk)) {
      const last = b.baseOffset + b.lastOffsetDelta;
      let cur = this.cur;
      if (!cur || cur.length >= this.blockBytes) {
        if (cur) this.blocks.push(cur);
        cur = this.cur = { baseOffset: b.baseOffset, lastOffset: last, position: this.dataLength + b.position, length: 0, maxTimestamp: -1, crc: 0 };
      }
      cur.crc = batchCrc(chunk, b.position, b.size, cur.crc);
      cur.length += b.size;
      cur.lastOffset = last;
      if (b.maxTimestamp > cur.maxTimestamp) cur.maxTimestamp = b.maxTimestamp;
      end = b.position + b.size;
    }
    if (end !== chunk.length) throw new StorageFormatError('segment data holds a partial batch');
    this.dataLength += chunk.length;
  }

  finish(): BuiltSegment {
    if (this.cur) this.blocks.push(this.cur);
    this.cur = undefined;
    return encodeSegment(this.chunks, this.blocks, this.dataLength);
  }
}

/** All at once: see SegmentBuilder. */
export function buildSegment(chunks: Buffer[], blockBytes: number): BuiltSegment {
  const b = new SegmentBuilder(blockBytes);
  for (const c of chunks) b.add(c);
  return b.finish();
}

function encodeSegment(chunks: Array<Buffer | StoredRange>, blocks: SegmentBlock[], dataLength: number): BuiltSegment {
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
