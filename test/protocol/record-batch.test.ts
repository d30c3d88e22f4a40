import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32c } from '@node-rs/crc32';
import { assignOffset, batchCrc, batchesCrc, crc32cCombine, readInt64, validateBatches } from '../../services/protocol/record-batch.js';
import { buildBatch } from '../support/batches.js';

describe('CRC-32C without reading the records again', () => {
  it('combines the CRCs of two pieces into the CRC of both', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 5000 }), (a, b) => {
        const whole = crc32c(Buffer.concat([a, b]));
        expect(crc32cCombine(crc32c(Buffer.from(a)), crc32c(Buffer.from(b)), b.length)).toBe(whole);
      }),
    );
    // Long pieces too: the shift operator is built from the bits of the length.
    const big = Buffer.alloc(3 << 20, 7);
    expect(crc32cCombine(crc32c(Buffer.from('head')), crc32c(big), big.length)).toBe(crc32c(Buffer.concat([Buffer.from('head'), big])));
  });

  it('derives the CRC of a whole record set, offsets assigned, from its batches', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.string({ maxLength: 200 }), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 6 }),
        fc.nat({ max: 2 ** 40 }),
        fc.integer({ min: -1, max: 1000 }),
        (sets, base, epoch) => {
          const buf = Buffer.concat(sets.map((values) => buildBatch(values.map((value) => ({ value })))));
          const batches = validateBatches(buf);
          let next = base;
          for (const b of batches) {
            assignOffset(buf, b.position, next, epoch);
            next += b.lastOffsetDelta + 1;
          }
          expect(batchesCrc(buf, batches)).toBe(crc32c(buf));
          // ...and continuing a running CRC, one batch at a time.
          let running = crc32c(Buffer.from('prefix'));
          for (const b of batches) running = batchCrc(buf, b.position, b.size, running);
          expect(running).toBe(crc32c(Buffer.concat([Buffer.from('prefix'), buf])));
        },
      ),
    );
  });

  it('reads 64-bit fields as numbers exactly as through a BigInt', () => {
    const b = Buffer.alloc(8);
    for (const v of [0n, 1n, -1n, 2n ** 53n - 1n, -(2n ** 53n), 2n ** 62n + 12345n, -(2n ** 63n), 2n ** 63n - 1n, 1700000000000n]) {
      b.writeBigInt64BE(v, 0);
      expect(readInt64(b, 0)).toBe(Number(v));
    }
  });
});
