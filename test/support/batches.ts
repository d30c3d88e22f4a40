// Builds magic-2 record batches for tests (uncompressed), with a correct CRC-32C unless a
// test asks for a broken one.
import { crc32c } from '@node-rs/crc32';
import { Writer } from '../../services/protocol/primitives.js';

export interface TestRecord {
  key?: string | null;
  value: string | Buffer;
  timestamp?: number;
  headers?: [string, string][];
}

export interface BatchOptions {
  producerId?: bigint;
  producerEpoch?: number;
  baseSequence?: number;
  corruptCrc?: boolean;
}

function recordBytes(r: TestRecord, i: number, baseTs: number): Buffer {
  const body = new Writer();
  body.int8(0);
  body.varlong(BigInt((r.timestamp ?? baseTs) - baseTs));
  body.varint(i);
  if (r.key == null) body.varint(-1);
  else {
    const k = Buffer.from(r.key);
    body.varint(k.length).raw(k);
  }
  const v = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
  body.varint(v.length).raw(v);
  body.varint(r.headers?.length ?? 0);
  for (const [hk, hv] of r.headers ?? []) {
    const kb = Buffer.from(hk);
    const vb = Buffer.from(hv);
    body.varint(kb.length).raw(kb).varint(vb.length).raw(vb);
  }
  const b = body.toBuffer();
  return new Writer().varint(b.length).raw(b).toBuffer();
}

export function buildBatch(records: TestRecord[], o: BatchOptions = {}): Buffer {
  const baseTs = records[0]?.timestamp ?? Date.now();
  let maxTs = baseTs;
  for (const r of records) maxTs = Math.max(maxTs, r.timestamp ?? baseTs);
  const recs = Buffer.concat(records.map((r, i) => recordBytes(r, i, baseTs)));
  const afterCrc = new Writer()
    .int16(0)
    .int32(records.length - 1)
    .int64(BigInt(baseTs))
    .int64(BigInt(maxTs))
    .int64(o.producerId ?? -1n)
    .int16(o.producerEpoch ?? -1)
    .int32(o.baseSequence ?? -1)
    .int32(records.length)
    .raw(recs)
    .toBuffer();
  const crc = crc32c(afterCrc);
  const head = new Writer()
    .int64(0n)
    .int32(afterCrc.length + 9)
    .int32(-1)
    .int8(2)
    .uint32(o.corruptCrc ? (crc ^ 0xdeadbeef) >>> 0 : crc)
    .toBuffer();
  return Buffer.concat([head, afterCrc]);
}
