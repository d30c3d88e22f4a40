// Libraries loaded on first use instead of at startup. Each native one (CRC-32C, snappy, lz4)
// costs 3-6 MB of resident memory as soon as it is loaded, snappy two runtime threads besides,
// and fzstd builds its tables: a proxy that has no client yet, or never opens a record batch,
// needs none of them. Loading takes a few milliseconds, once, on the first call.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Returns a getter that loads the CommonJS module `id` the first time it is called. */
export function lazy<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= require(id) as T);
}

const crc = lazy<typeof import('@node-rs/crc32')>('@node-rs/crc32');
let crc32cNative: ((input: Uint8Array, initial?: number) => number) | undefined;

/** CRC-32C (Castagnoli), the checksum of Kafka record batches, continuing from `initial` if given. */
export function crc32c(input: Uint8Array, initial?: number): number {
  return (crc32cNative ??= crc().crc32c)(input, initial);
}
