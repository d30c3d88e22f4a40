// Partition checkpoints (DESIGN.md §3.6): where every committed offset range lives, the log
// start, the leader epoch and the idempotent-producer window, so that recovery replays only
// the WAL records committed after it.
import type { ProducerBatch } from '../storage/wal-object.js';
import type { StoredExtent } from './partition.js';
import type { SegmentRef } from '../storage/segment.js';

export interface Checkpoint {
  logStartOffset: number;
  highWatermark: number;
  leaderEpoch: number;
  segments: SegmentRef[];
  extents: StoredExtent[];
  producers: ProducerBatch[];
}

interface Stored {
  v: 1;
  logStartOffset: number;
  highWatermark: number;
  leaderEpoch: number;
  /** Object keys, referenced by index from the extent tuples. */
  objects: string[];
  /** [key, baseOffset, lastOffset, maxTimestamp, dataLength, indexLength] */
  segments?: (string | number)[][];
  /** [object, position, length, baseOffset, lastOffset, maxTimestamp, crc] */
  extents: number[][];
  /** [producerId, epoch, baseSequence, lastSequence, baseOffset, lastOffset] */
  producers: (string | number)[][];
}

export function encodeCheckpoint(c: Checkpoint): Buffer {
  const objects: string[] = [];
  const objectIndex = new Map<string, number>();
  const extents = c.extents.map((e) => {
    let i = objectIndex.get(e.key);
    if (i === undefined) {
      i = objects.push(e.key) - 1;
      objectIndex.set(e.key, i);
    }
    return [i, e.position, e.length, e.baseOffset, e.lastOffset, e.maxTimestamp, e.crc];
  });
  const stored: Stored = {
    v: 1,
    logStartOffset: c.logStartOffset,
    highWatermark: c.highWatermark,
    leaderEpoch: c.leaderEpoch,
    objects,
    segments: c.segments.map((g) => [g.key, g.baseOffset, g.lastOffset, g.maxTimestamp, g.dataLength, g.indexLength]),
    extents,
    producers: c.producers.map((p) => [String(p.producerId), p.producerEpoch, p.baseSequence, p.lastSequence, p.baseOffset, p.lastOffset]),
  };
  return Buffer.from(JSON.stringify(stored));
}

export function decodeCheckpoint(b: Buffer): Checkpoint {
  const s = JSON.parse(b.toString()) as Stored;
  return {
    logStartOffset: s.logStartOffset,
    highWatermark: s.highWatermark,
    leaderEpoch: s.leaderEpoch,
    segments: (s.segments ?? []).map(([key, baseOffset, lastOffset, maxTimestamp, dataLength, indexLength]) => ({
      key: key as string,
      baseOffset: baseOffset as number,
      lastOffset: lastOffset as number,
      maxTimestamp: maxTimestamp as number,
      dataLength: dataLength as number,
      indexLength: indexLength as number,
    })),
    extents: s.extents.map(([o, position, length, baseOffset, lastOffset, maxTimestamp, crc]) => ({
      key: s.objects[o],
      position,
      length,
      baseOffset,
      lastOffset,
      maxTimestamp,
      crc,
    })),
    producers: s.producers.map(([pid, epoch, baseSequence, lastSequence, baseOffset, lastOffset]) => ({
      producerId: BigInt(pid as string),
      producerEpoch: epoch as number,
      baseSequence: baseSequence as number,
      lastSequence: lastSequence as number,
      baseOffset: baseOffset as number,
      lastOffset: lastOffset as number,
    })),
  };
}
