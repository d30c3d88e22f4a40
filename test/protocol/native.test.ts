import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { crc32c, lazy } from '../../services/protocol/native.js';
import { Compression, decompressRecords } from '../../services/protocol/compression.js';

const require = createRequire(import.meta.url);
const loaded = (id: string) => require.resolve(id) in require.cache;

describe('libraries loaded on first use', () => {
  it('loads a module only when its getter is first called, then keeps it', () => {
    // Nothing else in this file has loaded fzstd yet (every test file runs in its own process).
    expect(loaded('fzstd')).toBe(false);
    const fzstd = lazy<typeof import('fzstd')>('fzstd');
    expect(loaded('fzstd')).toBe(false);
    const first = fzstd();
    expect(loaded('fzstd')).toBe(true);
    expect(fzstd()).toBe(first);
  });

  it('computes CRC-32C as the native library does, continuing from an initial value', () => {
    const a = Buffer.from('record batch bytes');
    const b = Buffer.from(' and more');
    expect(crc32c(a)).toBe(nativeCrc32c(a));
    expect(crc32c(b, crc32c(a))).toBe(nativeCrc32c(Buffer.concat([a, b])));
  });

  it('decompresses every codec a producer may use', async () => {
    const text = Buffer.from('hello hello hello skiff');
    const snappy = require('snappy') as typeof import('snappy');
    const lz4 = require('lz4-napi') as typeof import('lz4-napi');
    const block = snappy.compressSync(text);
    // Java clients frame snappy the xerial way: magic, version, compatible version, then
    // length-prefixed blocks.
    const xerial = Buffer.concat([
      Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]),
      Buffer.from([0, 0, 0, block.length]),
      block,
    ]);
    // A zstd frame holding one raw block (Node 20 has no zstd compressor to make one).
    const zstd = Buffer.concat([Buffer.from('28b52ffd20', 'hex'), Buffer.from([text.length, 1 | (text.length << 3), 0, 0]), text]);
    expect(decompressRecords(Compression.none, text)).toEqual(text);
    expect(decompressRecords(Compression.gzip, gzipSync(text))).toEqual(text);
    expect(decompressRecords(Compression.snappy, block)).toEqual(text);
    expect(decompressRecords(Compression.snappy, xerial)).toEqual(text);
    expect(decompressRecords(Compression.lz4, lz4.compressFrameSync(text))).toEqual(text);
    expect(decompressRecords(Compression.zstd, zstd)).toEqual(text);
    expect(decompressRecords(7, text)).toBeUndefined();
  });
});
