// Decompression of a record batch's records section, for the rare paths that must look at
// individual records (ListOffsets by timestamp). The produce and fetch paths never call
// this: batches stay as the producer compressed them. Native libraries do the work, each
// loaded by the first batch that needs it (native.ts).
import { gunzipSync } from 'node:zlib';
import * as zlib from 'node:zlib';
import { ProtocolError } from './primitives.js';
import { lazy } from './native.js';

const snappy = lazy<typeof import('snappy')>('snappy');
const lz4 = lazy<typeof import('lz4-napi')>('lz4-napi');
const fzstd = lazy<typeof import('fzstd')>('fzstd');

export const Compression = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;

const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);

/** Java clients frame snappy the xerial way (magic, version, then length-prefixed blocks). */
function unsnappy(data: Buffer): Buffer {
  const { uncompressSync } = snappy();
  if (data.length < 16 || !data.subarray(0, 8).equals(XERIAL_MAGIC)) return uncompressSync(data, { asBuffer: true }) as Buffer;
  const out: Buffer[] = [];
  for (let at = 16; at + 4 <= data.length; ) {
    const n = data.readInt32BE(at);
    out.push(uncompressSync(data.subarray(at + 4, at + 4 + n), { asBuffer: true }) as Buffer);
    at += 4 + n;
  }
  return Buffer.concat(out);
}

/** Node's own zstd where it has one (22.15+), else fzstd: this path is rare, not hot. */
function unzstd(data: Buffer): Buffer {
  const native = (zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer }).zstdDecompressSync;
  return native ? native(data) : Buffer.from(fzstd().decompress(data));
}

/** Returns the records bytes decompressed, or undefined for an unknown codec. */
export function decompressRecords(codec: number, data: Buffer): Buffer | undefined {
  try {
    switch (codec) {
      case Compression.none:
        return data;
      case Compression.gzip:
        return gunzipSync(data);
      case Compression.snappy:
        return unsnappy(data);
      case Compression.lz4:
        return lz4().decompressFrameSync(data);
      case Compression.zstd:
        return unzstd(data);
      default:
        return undefined;
    }
  } catch (err) {
    throw new ProtocolError(`cannot decompress records (codec ${codec}): ${(err as Error).message}`);
  }
}
