// Property tests over every generated message module (requests, responses, headers, data) and
// every version it supports: values built from the emitted `<Name>Schema` survive
// encode → decode → encode unchanged, and bytes that are not a valid message only ever make a
// decoder throw ProtocolError.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ProtocolError, Reader, Writer, ZERO_UUID } from '../../services/protocol/primitives.js';
import type { FieldSchema, MessageSchema, VersionRange } from '../../services/protocol/messages/schema.js';

type Value = Record<string, unknown>;

interface Codec {
  name: string;
  schema: MessageSchema;
  minVersion: number;
  maxVersion: number;
  isFlexible(version: number): boolean;
  decode(r: Reader, version: number): Value;
  encode(w: Writer, version: number, m: Value): Writer;
  /** `default<Struct>()` of the module, for the message and each of its structs. */
  defaultOf(struct: string): Value;
}

const RUNS = 20;
const messagesDir = fileURLToPath(new URL('../../services/protocol/messages/', import.meta.url));

/** Every generated message module, found by its file so that a new spec cannot be left out. */
async function loadCodecs(): Promise<Codec[]> {
  const files = readdirSync(messagesDir)
    .filter((f) => f.endsWith('.ts') && !['index.ts', 'schema.ts', 'api-keys.ts'].includes(f))
    .sort();
  return Promise.all(
    files.map(async (file) => {
      const mod = (await import(`${messagesDir}${file}`)) as Record<string, unknown>;
      const schema = Object.entries(mod).find(([k]) => k.endsWith('Schema'))?.[1] as MessageSchema | undefined;
      if (!schema) throw new Error(`${file} exports no <Name>Schema`);
      const name = schema.name;
      const info = mod[`${name}Info`] as { minVersion: number; maxVersion: number; isFlexible(v: number): boolean };
      const fn = <T>(key: string): T => {
        if (typeof mod[key] !== 'function') throw new Error(`${file} exports no ${key}`);
        return mod[key] as T;
      };
      return {
        name,
        schema,
        minVersion: info.minVersion,
        maxVersion: info.maxVersion,
        isFlexible: info.isFlexible,
        decode: fn(`decode${name}`),
        encode: fn(`encode${name}`),
        defaultOf: (struct: string) => fn<() => Value>(`default${struct}`)(),
      };
    }),
  );
}

const codecs = await loadCodecs();
const versionsOf = (c: Codec): number[] => Array.from({ length: c.maxVersion - c.minVersion + 1 }, (_, i) => c.minVersion + i);
const inRange = (r: VersionRange | undefined, v: number): boolean => !!r && v >= r[0] && v <= r[1];

/** Whether a field is on the wire at this version: tagged fields only in flexible versions. */
function present(f: FieldSchema, version: number, flexible: boolean): boolean {
  if (!inRange(f.versions, version)) return false;
  if (f.tag !== undefined && inRange(f.taggedVersions, version)) return flexible;
  return true;
}

const toUuid = (b: Uint8Array): string => {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

const leaf: Record<string, fc.Arbitrary<unknown>> = {
  bool: fc.boolean(),
  int8: fc.integer({ min: -128, max: 127 }),
  int16: fc.integer({ min: -32768, max: 32767 }),
  uint16: fc.integer({ min: 0, max: 65535 }),
  int32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  uint32: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  int64: fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
  float64: fc.double(),
  uuid: fc.oneof({ arbitrary: fc.uint8Array({ minLength: 16, maxLength: 16 }).map(toUuid), weight: 4 }, { arbitrary: fc.constant(ZERO_UUID), weight: 1 }),
  string: fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 6 })),
  // Mostly small, sometimes past the Writer's zero-copy threshold (1 KiB).
  bytes: fc
    .oneof({ arbitrary: fc.uint8Array({ maxLength: 16 }), weight: 9 }, { arbitrary: fc.uint8Array({ minLength: 1024, maxLength: 1100 }), weight: 1 })
    .map((a) => Buffer.from(a)),
};
leaf.records = leaf.bytes;

/** A value of one struct that only uses what `version` can carry; the rest keeps its default. */
function structArb(codec: Codec, struct: string, fields: readonly FieldSchema[], version: number, flexible: boolean): fc.Arbitrary<Value> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of fields) if (present(f, version, flexible)) parts[f.name] = fieldArb(codec, f, version, flexible);
  return fc.record(parts).map((values) => ({ ...codec.defaultOf(struct), ...values }));
}

function fieldArb(codec: Codec, f: FieldSchema, version: number, flexible: boolean): fc.Arbitrary<unknown> {
  const isArray = f.type.startsWith('[]');
  const elem = isArray ? f.type.slice(2) : f.type;
  let arb: fc.Arbitrary<unknown>;
  if (leaf[elem]) arb = leaf[elem];
  else if (f.fields) arb = structArb(codec, elem, f.fields, version, flexible);
  else throw new Error(`${codec.name}.${f.name}: no arbitrary for type ${f.type}`);
  if (isArray) arb = fc.array(arb, { maxLength: 3 });
  return inRange(f.nullableVersions, version) ? fc.option(arb, { nil: null, freq: 4 }) : arb;
}

function messageArb(codec: Codec, version: number): fc.Arbitrary<Value> {
  return structArb(codec, codec.name, codec.schema.fields, version, codec.isFlexible(version));
}

const encode = (codec: Codec, version: number, m: Value): Buffer => codec.encode(new Writer(), version, m).toBuffer();

/** Decodes a whole buffer, failing if the decoder leaves bytes unread. */
function decodeAll(codec: Codec, version: number, bytes: Buffer): Value {
  const r = new Reader(bytes);
  const m = codec.decode(r, version);
  expect(r.remaining, `${codec.name} v${version} left bytes unread`).toBe(0);
  return m;
}

describe('every message module', () => {
  it('was found, with a schema for each request, response, header and data message', () => {
    const byType = (t: MessageSchema['type']) => codecs.filter((c) => c.schema.type === t).length;
    expect(byType('request')).toBeGreaterThan(80);
    expect(byType('response')).toBe(byType('request'));
    expect(byType('header')).toBe(2);
    expect(byType('data')).toBeGreaterThan(0);
    for (const c of codecs) expect(c.schema.validVersions).toEqual([c.minVersion, c.maxVersion]);
  });
});

describe('decode(encode(x)) equals x', () => {
  it.each(codecs.map((c) => [c.name, c] as const))('for %s at every version', (_name, codec) => {
    for (const version of versionsOf(codec)) {
      // The default value first: it must be encodable at every version, including nulls in defaults.
      const d = codec.defaultOf(codec.name);
      expect(decodeAll(codec, version, encode(codec, version, d)), `${codec.name} v${version} default`).toStrictEqual(d);
      fc.assert(
        fc.property(messageArb(codec, version), (m) => {
          const bytes = encode(codec, version, m);
          const back = decodeAll(codec, version, bytes);
          expect(back, `${codec.name} v${version}`).toStrictEqual(m);
          expect(encode(codec, version, back).equals(bytes), `${codec.name} v${version} re-encodes to other bytes`).toBe(true);
        }),
        { numRuns: RUNS },
      );
    }
  });
});

/** Counts array elements in a decoded value, to check that no count was taken on trust. */
function elements(v: unknown): number {
  if (Array.isArray(v)) return v.length + v.reduce((n: number, x) => n + elements(x), 0);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) return Object.values(v).reduce((n: number, x) => n + elements(x), 0);
  return 0;
}

/** Decodes bytes that may be garbage: anything but a value or a ProtocolError fails the test. */
function decodeOrProtocolError(codec: Codec, version: number, bytes: Buffer): void {
  let m: Value;
  try {
    m = codec.decode(new Reader(bytes), version);
  } catch (e) {
    if (e instanceof ProtocolError) return;
    throw new Error(`${codec.name} v${version} threw ${(e as Error)?.name}: ${(e as Error)?.message} on ${bytes.toString('hex')}`);
  }
  expect(elements(m), `${codec.name} v${version} decoded more elements than there are bytes`).toBeLessThanOrEqual(bytes.length);
}

/** A valid encoding, damaged: truncated, with bytes overwritten, or with bytes inserted. */
function damagedArb(codec: Codec, version: number): fc.Arbitrary<Buffer> {
  return fc
    .tuple(
      messageArb(codec, version).map((m) => encode(codec, version, m)),
      fc.constantFrom('truncate', 'overwrite', 'insert'),
      fc.nat(),
      fc.uint8Array({ minLength: 1, maxLength: 4 }),
    )
    .map(([bytes, how, at, junk]) => {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      if (how === 'truncate') return bytes.subarray(0, i);
      if (how === 'insert') return Buffer.concat([bytes.subarray(0, i), junk, bytes.subarray(i)]);
      const out = Buffer.from(bytes);
      for (let k = 0; k < junk.length && i + k < out.length; k++) out[i + k] = junk[k];
      return out;
    });
}

describe('decoding bytes that are not a valid message', () => {
  // Requests come from clients we do not control; responses and headers are checked as well.
  it.each(codecs.map((c) => [c.name, c] as const))('%s only ever throws ProtocolError', (_name, codec) => {
    for (const version of versionsOf(codec)) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 256 }), (raw) => decodeOrProtocolError(codec, version, Buffer.from(raw))),
        { numRuns: RUNS },
      );
      fc.assert(
        fc.property(damagedArb(codec, version), (bytes) => decodeOrProtocolError(codec, version, bytes)),
        { numRuns: RUNS },
      );
    }
  });
});
