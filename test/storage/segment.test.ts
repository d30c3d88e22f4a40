import { describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { assignOffset, batchesCrc, validateBatches } from '../../services/protocol/record-batch.js';
import { SegmentBuilder, buildSegment, decodeSegmentIndex, segmentIndexRange } from '../../services/storage/segment.js';
import { bodyBuffers } from '../../services/storage/object-store.js';
import { buildWalObject, readWalIndex, verifyExtent } from '../../services/storage/wal-object.js';
import { buildBatch } from '../support/batches.js';

/** Record sets as a broker stores them: validated, offsets from `base` on. */
function recordSets(count: number, base = 0): { bufs: Buffer[]; next: number } {
  const bufs: Buffer[] = [];
  let next = base;
  for (let i = 0; i < count; i++) {
    const buf = Buffer.concat([...Array(1 + (i % 3)).keys()].map((j) => buildBatch([{ value: `v${i}-${j}-`.padEnd(50 + ((i * 37) % 400), 'x'), timestamp: 1000 + i }])));
    for (const b of validateBatches(buf)) {
      assignOffset(buf, b.position, next, 0);
      next += b.lastOffsetDelta + 1;
    }
    bufs.push(buf);
  }
  return { bufs, next };
}

describe('segment objects', () => {
  it('cuts blocks across chunk boundaries, each with the CRC of its bytes', () => {
    const { bufs, next } = recordSets(40);
    const { body, blocks, dataLength, indexLength } = buildSegment(bufs, 1000);
    const whole = Buffer.concat(bodyBuffers(body));
    expect(dataLength).toBe(Buffer.concat(bufs).length);
    expect(blocks.length).toBeGreaterThan(3);
    // Blocks tile the data in offset order, and at least one spans two chunks.
    let position = 0;
    let offset = 0;
    for (const blk of blocks) {
      expect(blk.position).toBe(position);
      expect(blk.baseOffset).toBe(offset);
      expect(blk.crc).toBe(crc32c(whole.subarray(blk.position, blk.position + blk.length)));
      position += blk.length;
      offset = blk.lastOffset + 1;
    }
    expect(position).toBe(dataLength);
    expect(offset).toBe(next);
    const starts = new Set<number>();
    for (let at = 0, i = 0; i < bufs.length; at += bufs[i++].length) starts.add(at);
    expect(blocks.some((blk) => !starts.has(blk.position + blk.length) && blk.position + blk.length < dataLength)).toBe(true);
    const range = segmentIndexRange({ dataLength, indexLength });
    expect(decodeSegmentIndex(whole.subarray(range.start, range.end))).toEqual(blocks);
  });

  it('builds the same object whether the batches come as record sets or as whole extents', () => {
    const { bufs } = recordSets(25, 500);
    const one = Buffer.concat(bodyBuffers(buildSegment(bufs, 2048).body));
    const builder = new SegmentBuilder(2048);
    builder.add(Buffer.concat(bufs.slice(0, 10)));
    builder.add(Buffer.concat(bufs.slice(10)));
    expect(Buffer.concat(bodyBuffers(builder.finish().body)).equals(one)).toBe(true);
  });

  it('refuses a chunk that ends inside a batch', () => {
    const { bufs } = recordSets(2);
    expect(() => buildSegment([bufs[0].subarray(0, bufs[0].length - 1)], 1000)).toThrow(/partial batch/);
  });
});

describe('WAL objects', () => {
  it('records the same extent CRCs from the record sets’ own CRCs as from reading them', () => {
    const a = recordSets(7);
    const b = recordSets(3, 100);
    const extent = (partition: number) => ({ topicId: '00000000-0000-0000-0000-00000000000a', partition, baseOffset: 0, lastOffset: 1, maxTimestamp: 1, producers: [] });
    const read = buildWalObject([
      { extent: extent(0), chunks: a.bufs },
      { extent: extent(1), chunks: b.bufs },
    ]);
    const derived = buildWalObject([
      { extent: extent(0), chunks: a.bufs, crcs: a.bufs.map((buf) => batchesCrc(buf, validateBatches(buf))) },
      { extent: extent(1), chunks: b.bufs, crcs: b.bufs.map((buf) => batchesCrc(buf, validateBatches(buf))) },
    ]);
    expect(derived.extents).toEqual(read.extents);
    const whole = Buffer.concat(bodyBuffers(derived.body));
    for (const e of readWalIndex(whole)) expect(verifyExtent(e, whole.subarray(e.position, e.position + e.length))).toBe(true);
  });
});
