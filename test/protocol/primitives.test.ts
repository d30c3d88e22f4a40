// Unit tests for the wire primitives: each encoding is pinned to the bytes the Kafka protocol
// guide gives for it, and every malformed input must surface as a ProtocolError.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ProtocolError, Reader, recordBytes, Writer, ZERO_UUID } from '../../services/protocol/primitives.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const bytesOf = (write: (w: Writer) => unknown): string => {
  const w = new Writer();
  write(w);
  return w.toBuffer().toString('hex');
};
const reader = (s: string): Reader => new Reader(hex(s));

describe('fixed-width integers', () => {
  it('writes big-endian and reads back the edge values of every width', () => {
    const w = new Writer()
      .int8(-128)
      .int8(127)
      .int16(-32768)
      .int16(32767)
      .uint16(65535)
      .int32(-2147483648)
      .int32(2147483647)
      .uint32(4294967295)
      .int64(-(2n ** 63n))
      .int64(2n ** 63n - 1n)
      .float64(-0.5)
      .bool(true)
      .bool(false);
    const buf = w.toBuffer();
    expect(buf.subarray(0, 4).toString('hex')).toBe('807f8000');
    const r = new Reader(buf);
    expect([r.int8(), r.int8(), r.int16(), r.int16(), r.uint16(), r.int32(), r.int32(), r.uint32()]).toEqual([
      -128, 127, -32768, 32767, 65535, -2147483648, 2147483647, 4294967295,
    ]);
    expect([r.int64(), r.int64()]).toEqual([-(2n ** 63n), 2n ** 63n - 1n]);
    expect(r.float64()).toBe(-0.5);
    expect([r.bool(), r.bool()]).toEqual([true, false]);
    expect(r.remaining).toBe(0);
  });

  it('reads any non-zero byte as true, as Kafka does', () => {
    expect(reader('02').bool()).toBe(true);
  });

  it.each([
    ['bool', 0, (r: Reader) => r.bool()],
    ['int8', 0, (r: Reader) => r.int8()],
    ['int16', 1, (r: Reader) => r.int16()],
    ['uint16', 1, (r: Reader) => r.uint16()],
    ['int32', 3, (r: Reader) => r.int32()],
    ['uint32', 3, (r: Reader) => r.uint32()],
    ['int64', 7, (r: Reader) => r.int64()],
    ['float64', 7, (r: Reader) => r.float64()],
    ['uuid', 15, (r: Reader) => r.uuid()],
  ] as const)('rejects a truncated %s with a ProtocolError and leaves the offset alone', (_name, have, read) => {
    const r = new Reader(Buffer.alloc(have, 0xff));
    expect(() => read(r)).toThrow(ProtocolError);
    expect(r.offset).toBe(0);
  });

  it('never reads past the end it was given, even when the buffer goes on', () => {
    const r = new Reader(hex('00010203040506070809'), 2, 5);
    expect(r.int16()).toBe(0x0203);
    expect(r.remaining).toBe(1);
    expect(() => r.int16()).toThrow(ProtocolError);
  });
});

describe('varints', () => {
  it.each([
    [0, '00'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [16383, 'ff7f'],
    [16384, '808001'],
    [2 ** 31, '8080808008'],
    [2 ** 32 - 1, 'ffffffff0f'],
  ])('encodes unsigned %d as %s', (value, bytes) => {
    expect(bytesOf((w) => w.uvarint(value))).toBe(bytes);
    const r = reader(bytes);
    expect(r.uvarint()).toBe(value);
    expect(r.remaining).toBe(0);
  });

  it.each([
    [0, '00'],
    [-1, '01'],
    [1, '02'],
    [-2, '03'],
    [63, '7e'],
    [-64, '7f'],
    [64, '8001'],
    [2147483647, 'feffffff0f'],
    [-2147483648, 'ffffffff0f'],
  ])('zig-zag encodes signed %d as %s', (value, bytes) => {
    expect(bytesOf((w) => w.varint(value))).toBe(bytes);
    expect(reader(bytes).varint()).toBe(value);
  });

  it.each([
    [0n, '00'],
    [-1n, '01'],
    [1n, '02'],
    [2n ** 31n, '8080808010'],
    [2n ** 63n - 1n, 'feffffffffffffffff01'],
    [-(2n ** 63n), 'ffffffffffffffffff01'],
  ])('zig-zag encodes the varlong %s as %s', (value, bytes) => {
    expect(bytesOf((w) => w.varlong(value))).toBe(bytes);
    expect(reader(bytes).varlong()).toBe(value);
  });

  it('round-trips every int32 varint and every int64 varlong', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n), (i, l) => {
        const r = new Reader(new Writer().varint(i).varlong(l).toBuffer());
        expect(r.varint()).toBe(i);
        expect(r.varlong()).toBe(l);
        expect(r.remaining).toBe(0);
      }),
    );
  });

  it('rejects a varint of six bytes or one whose fifth byte overflows 32 bits', () => {
    expect(() => reader('808080808001').uvarint()).toThrow(ProtocolError);
    expect(() => reader('ffffffff10').uvarint()).toThrow(ProtocolError);
    expect(() => reader('ffffffff7f').varint()).toThrow(ProtocolError);
  });

  it('rejects a varlong of eleven bytes or one whose tenth byte overflows 64 bits', () => {
    expect(() => reader('8080808080808080808001').varlong()).toThrow(ProtocolError);
    expect(() => reader('ffffffffffffffffff02').varlong()).toThrow(ProtocolError);
  });

  it('rejects a varint cut short by the end of the frame', () => {
    expect(() => reader('8080').uvarint()).toThrow(ProtocolError);
    expect(() => reader('ff').varlong()).toThrow(ProtocolError);
  });

  it('refuses to write unsigned varints outside 0..2^32-1 and signed ones outside int32', () => {
    expect(() => new Writer().uvarint(-1)).toThrow(ProtocolError);
    expect(() => new Writer().uvarint(2 ** 32)).toThrow(ProtocolError);
    expect(() => new Writer().varint(2 ** 31)).toThrow(ProtocolError);
    expect(() => new Writer().varint(-(2 ** 31) - 1)).toThrow(ProtocolError);
  });
});

describe('strings', () => {
  it('writes a classic string with an int16 length and a compact one with length+1 as a varint', () => {
    expect(bytesOf((w) => w.string(false, 'kafka'))).toBe('00056b61666b61');
    expect(bytesOf((w) => w.string(true, 'kafka'))).toBe('066b61666b61');
    expect(bytesOf((w) => w.string(false, ''))).toBe('0000');
    expect(bytesOf((w) => w.string(true, ''))).toBe('01');
  });

  it('writes null as -1 classic and 0 compact, and reads it back as null', () => {
    expect(bytesOf((w) => w.nullableString(false, null))).toBe('ffff');
    expect(bytesOf((w) => w.nullableString(true, null))).toBe('00');
    expect(reader('ffff').nullableString(false)).toBeNull();
    expect(reader('00').nullableString(true)).toBeNull();
  });

  it('counts the length in UTF-8 bytes, not in characters', () => {
    expect(bytesOf((w) => w.string(true, 'é€'))).toBe('06c3a9e282ac');
    expect(reader('0005c3a9e282ac').string(false)).toBe('é€');
  });

  it('rejects null where the field is not nullable', () => {
    expect(() => reader('ffff').string(false)).toThrow(ProtocolError);
    expect(() => reader('00').string(true)).toThrow(ProtocolError);
  });

  it('rejects a string longer than what is left of the frame', () => {
    expect(() => reader('0005616263').string(false)).toThrow(ProtocolError);
    expect(() => reader('06616263').string(true)).toThrow(ProtocolError);
    expect(() => reader('ffffffff0f').string(true)).toThrow(ProtocolError);
  });

  it('refuses to write a classic string that does not fit an int16 length', () => {
    expect(() => new Writer().string(false, 'x'.repeat(0x8000))).toThrow(ProtocolError);
    expect(new Writer().string(true, 'x'.repeat(0x8000)).length).toBe(3 + 0x8000);
  });

  it('round-trips any Unicode text in both encodings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.boolean(), (s, flex) => {
        const r = new Reader(new Writer().string(flex, s).toBuffer());
        expect(r.string(flex)).toBe(s);
        expect(r.remaining).toBe(0);
      }),
    );
  });
});

describe('bytes', () => {
  it('writes classic bytes with an int32 length and compact bytes with length+1', () => {
    const b = hex('010203');
    expect(bytesOf((w) => w.bytes(false, b))).toBe('00000003010203');
    expect(bytesOf((w) => w.bytes(true, b))).toBe('04010203');
    expect(bytesOf((w) => w.nullableBytes(false, null))).toBe('ffffffff');
    expect(bytesOf((w) => w.nullableBytes(true, null))).toBe('00');
  });

  it('reads null bytes as null and rejects them where the field is not nullable', () => {
    expect(reader('ffffffff').nullableBytes(false)).toBeNull();
    expect(reader('00').nullableBytes(true)).toBeNull();
    expect(() => reader('ffffffff').bytes(false)).toThrow(ProtocolError);
    expect(() => reader('00').bytes(true)).toThrow(ProtocolError);
  });

  it('rejects a classic length below -1 and a length past the end of the frame', () => {
    expect(() => reader('fffffffe').nullableBytes(false)).toThrow(ProtocolError);
    expect(() => reader('7fffffff00').bytes(false)).toThrow(ProtocolError);
    expect(() => reader('ffffffff0f').bytes(true)).toThrow(ProtocolError);
  });

  it('hands out a slice of the frame rather than a copy', () => {
    const frame = hex('0401020304');
    const b = new Reader(frame).bytes(true);
    expect(b.toString('hex')).toBe('010203');
    expect(b.buffer).toBe(frame.buffer);
    expect(b.byteOffset).toBe(frame.byteOffset + 1);
  });

  it('keeps a large byte field as its own chunk instead of copying it', () => {
    const big = Buffer.alloc(4096, 7);
    const w = new Writer().int32(1).bytes(false, big).int8(2);
    const chunks = w.toChunks();
    expect(chunks).toContain(big);
    expect(w.length).toBe(4 + 4 + 4096 + 1);
    const r = new Reader(w.toBuffer());
    expect(r.int32()).toBe(1);
    expect(r.bytes(false).equals(big)).toBe(true);
    expect(r.int8()).toBe(2);
  });

  it('writes a record set given as chunks as one length-prefixed field, keeping large chunks uncopied', () => {
    const a = Buffer.alloc(3000, 1);
    const b = Buffer.from('tiny');
    const c = Buffer.alloc(5000, 3);
    for (const flex of [false, true]) {
      const w = new Writer().int8(9).nullableBytes(flex, [a, b, c]).int8(8);
      expect(w.toChunks()).toContain(a);
      expect(w.toChunks()).toContain(c);
      const r = new Reader(w.toBuffer());
      expect(r.int8()).toBe(9);
      expect(r.bytes(flex).equals(Buffer.concat([a, b, c]))).toBe(true);
      expect(r.int8()).toBe(8);
    }
    expect(bytesOf((w) => w.bytes(true, []))).toBe('01');
    expect(recordBytes([a, b])).toEqual(Buffer.concat([a, b]));
    expect(recordBytes(b)).toBe(b);
  });

  it('spans chunk boundaries when many small values are written', () => {
    const w = new Writer(8);
    for (let i = 0; i < 10_000; i++) w.int32(i).string(true, 'ab');
    const r = new Reader(w.toBuffer());
    const back: Array<[number, string]> = [];
    while (r.remaining > 0) back.push([r.int32(), r.string(true)]);
    expect(back).toEqual(Array.from({ length: 10_000 }, (_, i) => [i, 'ab']));
  });
});

describe('arrays', () => {
  const int32s = (r: Reader) => r.int32();
  const writeInt32 = (w: Writer, x: number) => void w.int32(x);

  it('writes a classic array with an int32 count and a compact one with count+1', () => {
    expect(bytesOf((w) => w.array(false, [1, 2], writeInt32))).toBe('000000020000000100000002');
    expect(bytesOf((w) => w.array(true, [1, 2], writeInt32))).toBe('030000000100000002');
    expect(bytesOf((w) => w.array(true, [], writeInt32))).toBe('01');
  });

  it('writes a null array as -1 classic and 0 compact', () => {
    expect(bytesOf((w) => w.nullableArray(false, null, writeInt32))).toBe('ffffffff');
    expect(bytesOf((w) => w.nullableArray(true, null, writeInt32))).toBe('00');
    expect(reader('ffffffff').nullableArray(false, int32s)).toBeNull();
    expect(reader('00').nullableArray(true, int32s)).toBeNull();
  });

  it('rejects null where the array is not nullable', () => {
    expect(() => reader('ffffffff').array(false, int32s)).toThrow(ProtocolError);
    expect(() => reader('00').array(true, int32s)).toThrow(ProtocolError);
  });

  it('rejects a count larger than the frame before reading or allocating anything', () => {
    let calls = 0;
    const counting = (r: Reader) => {
      calls++;
      return r.int8();
    };
    for (const frame of ['7fffffff0102', 'ffffffff0f0102', 'feffffff0f']) {
      const flex = !frame.startsWith('7f');
      const started = process.hrtime.bigint();
      expect(() => reader(frame).array(flex, counting)).toThrow(/exceeds the frame/);
      expect(process.hrtime.bigint() - started).toBeLessThan(50_000_000n);
    }
    expect(calls).toBe(0);
  });

  it('rejects an array whose elements run out before its count does', () => {
    expect(() => reader('000000030000000100000002').array(false, int32s)).toThrow(ProtocolError);
  });

  it('round-trips nested arrays in both encodings', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 4 }), { maxLength: 4 }), fc.boolean(), (v, flex) => {
        const w = new Writer().array(flex, v, (w, inner) => void w.array(flex, inner, writeInt32));
        const r = new Reader(w.toBuffer());
        expect(r.array(flex, (r) => r.array(flex, int32s))).toEqual(v);
        expect(r.remaining).toBe(0);
      }),
    );
  });
});

describe('uuids', () => {
  it('writes the 16 bytes of the canonical form and reads them back in lower case', () => {
    const canonical = '01234567-89ab-cdef-0123-456789abcdef';
    expect(bytesOf((w) => w.uuid(canonical))).toBe('0123456789abcdef0123456789abcdef');
    expect(new Reader(new Writer().uuid(canonical.toUpperCase()).toBuffer()).uuid()).toBe(canonical);
    expect(new Reader(Buffer.alloc(16)).uuid()).toBe(ZERO_UUID);
  });

  it('round-trips any 16 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (raw) => {
        const id = new Reader(Buffer.from(raw)).uuid();
        expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(new Writer().uuid(id).toBuffer().equals(Buffer.from(raw))).toBe(true);
      }),
    );
  });

  it('refuses to write something that is not a uuid', () => {
    expect(() => new Writer().uuid('not-a-uuid')).toThrow(ProtocolError);
    expect(() => new Writer().uuid('0123456789abcdef0123456789abcdeg')).toThrow(ProtocolError);
  });
});

describe('tagged fields', () => {
  it('writes an empty section as a single zero', () => {
    expect(bytesOf((w) => w.taggedFields())).toBe('00');
    expect(bytesOf((w) => w.taggedFields([]))).toBe('00');
  });

  it('writes count, then tag, size and value for each field', () => {
    const bytes = bytesOf((w) =>
      w.taggedFields([
        [0, (w) => void w.string(true, 'ab')],
        [3, (w) => void w.int32(7)],
      ]),
    );
    expect(bytes).toBe('02' + '00' + '03' + '036162' + '03' + '04' + '00000007');
  });

  it('hands each known tag a reader bounded to its value and skips unknown tags', () => {
    // Three tags (0, 5 unknown, 9) followed by an int16 that must still be reachable.
    const r = reader('03' + '00' + '03' + '036162' + '05' + '02' + 'ffff' + '09' + '04' + '00000007' + '1234');
    const seen: Array<[number, unknown]> = [];
    r.taggedFields((tag, sub) => {
      if (tag === 0) seen.push([tag, sub.string(true)]);
      if (tag === 9) {
        seen.push([tag, sub.int32()]);
        expect(() => sub.int8()).toThrow(ProtocolError);
      }
    });
    expect(seen).toEqual([
      [0, 'ab'],
      [9, 7],
    ]);
    expect(r.int16()).toBe(0x1234);
  });

  it('skips every tag when no handler is given', () => {
    const r = reader('02' + '01' + '02' + 'aaaa' + '7f' + '00' + '42');
    r.taggedFields();
    expect(r.int8()).toBe(0x42);
  });

  it('rejects tags out of order, a tag value past the frame and a handler reading past its tag', () => {
    expect(() => reader('02' + '05' + '00' + '03' + '00').taggedFields()).toThrow(/out of order/);
    expect(() => reader('02' + '05' + '00' + '05' + '00').taggedFields()).toThrow(/out of order/);
    expect(() => reader('01' + '00' + '10' + 'aa').taggedFields()).toThrow(ProtocolError);
    expect(() => reader('01' + '00' + '01' + 'aa' + 'bbbbbbbb').taggedFields((_t, sub) => sub.int32())).toThrow(ProtocolError);
  });

  it('does not loop on a huge tag count in a short frame', () => {
    expect(() => reader('ffffffff0f' + '0000').taggedFields()).toThrow(ProtocolError);
  });
});

describe('ProtocolError', () => {
  it('is an Error whose name says what it is', () => {
    const e = new ProtocolError('bad frame');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ProtocolError');
    expect(e.message).toBe('bad frame');
  });
});
