// Idempotent-producer bookkeeping for one partition: the last five batches of every
// producer id, enough to tell a retry (duplicate) from a gap (out of order), as Kafka does.
import type { ProducerBatch } from '../storage/wal-object.js';

/** Kafka keeps this many batches per producer for duplicate detection. */
export const PRODUCER_WINDOW = 5;

export type SequenceVerdict =
  | { kind: 'ok' }
  | { kind: 'duplicate'; baseOffset: number; lastOffset: number }
  /** `live`: this producer's batches were appended here since the partition opened, not only recovered. */
  | { kind: 'outOfOrder'; live: boolean }
  | { kind: 'unknownProducer' }
  | { kind: 'fencedEpoch' };

interface ProducerEntry {
  epoch: number;
  batches: ProducerBatch[];
  /** A batch of this producer was appended since the partition opened (not only recovered). */
  live: boolean;
}

const nextSeq = (seq: number) => (seq === 0x7fffffff ? 0 : seq + 1);

export class ProducerStates {
  private readonly producers = new Map<bigint, ProducerEntry>();

  check(producerId: bigint, epoch: number, baseSequence: number, lastSequence: number): SequenceVerdict {
    const p = this.producers.get(producerId);
    if (!p) return baseSequence === 0 ? { kind: 'ok' } : { kind: 'unknownProducer' };
    if (epoch < p.epoch) return { kind: 'fencedEpoch' };
    if (epoch > p.epoch) return baseSequence === 0 ? { kind: 'ok' } : { kind: 'outOfOrder', live: p.live };
    for (const b of p.batches) {
      if (b.baseSequence === baseSequence && b.lastSequence === lastSequence) {
        return { kind: 'duplicate', baseOffset: b.baseOffset, lastOffset: b.lastOffset };
      }
    }
    const last = p.batches[p.batches.length - 1];
    if (last && baseSequence !== nextSeq(last.lastSequence)) return { kind: 'outOfOrder', live: p.live };
    return { kind: 'ok' };
  }

  /** `live`: appended now, rather than read back from a checkpoint or the WAL on recovery. */
  record(b: ProducerBatch, live = true): void {
    let p = this.producers.get(b.producerId);
    if (!p || b.producerEpoch > p.epoch) {
      p = { epoch: b.producerEpoch, batches: [], live: false };
      this.producers.set(b.producerId, p);
    }
    p.live ||= live;
    p.batches.push(b);
    if (p.batches.length > PRODUCER_WINDOW) p.batches.shift();
  }

  /** Serialisable form for checkpoints. */
  snapshot(): ProducerBatch[] {
    const out: ProducerBatch[] = [];
    for (const p of this.producers.values()) out.push(...p.batches);
    return out;
  }

  get size(): number {
    return this.producers.size;
  }
}
