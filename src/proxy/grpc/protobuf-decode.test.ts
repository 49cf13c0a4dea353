import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { decodeProtobuf, decodeProtobufToJson, DEFAULT_MAX_OUTPUT, MIN_OUTPUT, type DecodedMessage } from './protobuf-decode.js';

const root = protobuf.parse(`
syntax = "proto3";
package t;
message Inner { string name = 1; int32 id = 2; }
message Node { Node child = 1; int32 v = 2; }
enum Color { RED = 0; GREEN = 1; BLUE = 2; }
message All {
  int32 i32 = 1; int64 i64 = 2; uint32 u32 = 3; uint64 u64 = 4;
  sint32 s32 = 5; sint64 s64 = 6; bool b = 7; fixed32 f32 = 8; fixed64 f64 = 9;
  sfixed32 sf32 = 10; string s = 11; bytes by = 12; Inner inner = 13;
  repeated Inner inners = 14; repeated int32 packed = 15; repeated string tags = 16;
  double d = 17; float f = 18; Color color = 19; repeated int32 unpacked = 20 [packed = false];
  int32 high = 536870911;
}
`).root.resolveAll(); // resolveAll applies proto3's packed-by-default to repeated scalars
const All = root.lookupType('t.All');
const NodeType = root.lookupType('t.Node');

function encode(obj: Record<string, unknown>): Buffer {
  // protobufjs encodes every field present in the object, defaults included.
  // Not All.verify: it rejects the decimal strings used here for 64-bit values.
  for (const key of Object.keys(obj)) if (!All.fields[key]) throw new Error(`no field ${key}`);
  return Buffer.from(All.encode(All.fromObject(obj)).finish());
}
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const u64 = (n: bigint) => {
  const v = BigInt.asUintN(64, n);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
};

describe('decodeProtobuf: well-formed', () => {
  const cases: Array<[string, Record<string, unknown>, DecodedMessage]> = [
    ['empty message', {}, {}],
    ['int32', { i32: 150 }, { 1: 150 }],
    ['negative int32 (10-byte varint, shown unsigned)', { i32: -1 }, { 1: '18446744073709551615' }],
    ['negative int64', { i64: '-2' }, { 2: '18446744073709551614' }],
    ['int64 min', { i64: '-9223372036854775808' }, { 2: '9223372036854775808' }],
    ['uint32 max', { u32: 4294967295 }, { 3: 4294967295 }],
    ['uint64 at 2^53 - 1 stays a number', { u64: '9007199254740991' }, { 4: 9007199254740991 }],
    ['uint64 at 2^53 becomes a string', { u64: '9007199254740992' }, { 4: '9007199254740992' }],
    ['uint64 max', { u64: '18446744073709551615' }, { 4: '18446744073709551615' }],
    ['uint64 just above 2^32', { u64: '4294967296' }, { 4: 4294967296 }],
    ['sint32 shows the zigzag value', { s32: -1 }, { 5: 1 }],
    ['sint64 shows the zigzag value', { s64: '-3' }, { 6: 5 }],
    ['bool', { b: true }, { 7: 1 }],
    ['enum', { color: 'BLUE' }, { 19: 2 }],
    ['fixed32', { f32: 4294967295 }, { 8: 4294967295 }],
    ['fixed64 small', { f64: '1' }, { 9: 1 }],
    ['fixed64 max', { f64: '18446744073709551615' }, { 9: '18446744073709551615' }],
    ['sfixed32 negative', { sf32: -1 }, { 10: 4294967295 }],
    ['double shows raw bits', { d: 1.5 }, { 17: '4609434218613702656' }],
    ['float shows raw bits', { f: 1.5 }, { 18: 0x3fc00000 }],
    ['string', { s: 'hello world' }, { 11: 'hello world' }],
    ['unicode string', { s: 'héllo wörld ✓ 😀 日本' }, { 11: 'héllo wörld ✓ 😀 日本' }],
    ['short word that also parses as a message stays text', { s: 'hi' }, { 11: 'hi' }],
    ['text with newlines and quotes', { s: 'a "b"\n\tc\\' }, { 11: 'a "b"\n\tc\\' }],
    ['binary bytes as base64', { by: Buffer.from([0, 1, 2, 255]) }, { 12: 'bytes:AAEC/w==' }],
    ['nested message', { inner: { name: 'x', id: 7 } }, { 13: { 1: 'x', 2: 7 } }],
    ['nested message with a printable-length string', { inner: { name: 'hello world!!' } }, { 13: { 1: 'hello world!!' } }],
    ['nested message with only an int', { inner: { id: 300 } }, { 13: { 2: 300 } }],
    ['empty nested message is ""', { inner: {} }, { 13: '' }],
    ['repeated messages', { inners: [{ id: 1 }, { id: 2 }, { name: 'z' }] }, { 14: [{ 2: 1 }, { 2: 2 }, { 1: 'z' }] }],
    ['packed repeated shows as bytes', { packed: [1, 2, 3] }, { 15: 'bytes:AQID' }],
    ['unpacked repeated becomes an array', { unpacked: [1, 2, 300] }, { 20: [1, 2, 300] }],
    ['repeated strings', { tags: ['a', '', 'b c'] }, { 16: ['a', '', 'b c'] }],
    ['highest field number', { high: 5 }, { 536870911: 5 }],
    [
      'several fields together',
      { i32: 1, s: 'x', inner: { id: 2 }, tags: ['p', 'q'] },
      { 1: 1, 11: 'x', 13: { 2: 2 }, 16: ['p', 'q'] },
    ],
  ];
  it.each(cases)('%s', (_name, obj, expected) => {
    expect(decodeProtobuf(encode(obj))).toEqual(expected);
  });

  it('decodes groups (wire types 3/4) as nested messages', () => {
    // field 1 start-group, { field 1 = 1, field 2 = "ab" }, field 1 end-group, field 2 = 5
    expect(decodeProtobuf(hex('0b 0801 12026162 0c 1005'))).toEqual({ 1: { 1: 1, 2: 'ab' }, 2: 5 });
    expect(decodeProtobuf(hex('0b 1b 0801 1c 0c'))).toEqual({ 1: { 3: { 1: 1 } } });
  });

  it('renders levels past maxDepth as bytes, without an error', () => {
    let msg: Record<string, unknown> = { v: 1 };
    for (let i = 0; i < 40; i++) msg = { child: msg, v: 2 };
    const decoded = decodeProtobuf(Buffer.from(NodeType.encode(NodeType.fromObject(msg)).finish()));
    expect(decoded.error).toBeUndefined();
    let level: DecodedMessage = decoded;
    let depth = 1;
    while (typeof level[1] === 'object') {
      level = level[1] as DecodedMessage;
      depth++;
    }
    expect(depth).toBe(32);
    expect(level[1]).toMatch(/^bytes:/);
    expect(decodeProtobuf(Buffer.from(NodeType.encode(NodeType.fromObject(msg)).finish()), { maxDepth: 3 })).toEqual({
      1: { 1: { 1: expect.stringMatching(/^bytes:/), 2: 2 }, 2: 2 },
      2: 2,
    });
  });

  it('decodeProtobufToJson gives JSON', () => {
    expect(decodeProtobufToJson(encode({ i32: 150, s: 'ok', inner: { id: 1 } }))).toBe('{"1":150,"11":"ok","13":{"2":1}}');
  });
});

describe('decodeProtobuf: incomplete (cut at every point)', () => {
  // Field by field, so the top-level field boundaries are known.
  const parts = [{ i32: 150 }, { s: 'hello' }, { inner: { name: 'n', id: 9 } }, { f64: '7' }, { f32: 8 }, { u64: '18446744073709551615' }].map(
    encode,
  );
  const full = Buffer.concat(parts);
  const starts = parts.map((_, i) => parts.slice(0, i).reduce((n, p) => n + p.length, 0));

  for (let cut = 0; cut < full.length; cut++) {
    it(`cut at ${cut}`, () => {
      const whole = parts.filter((p, i) => starts[i] + p.length <= cut).length;
      const expected = Object.assign({}, ...parts.slice(0, whole).map((p) => decodeProtobuf(p)));
      const { error, ...fields } = decodeProtobuf(full.subarray(0, cut));
      expect(fields).toEqual(expected);
      if (starts.includes(cut)) expect(error).toBeUndefined();
      else expect(error).toMatch(new RegExp(`^invalid protobuf at byte ${starts[whole]}: `));
    });
  }
});

describe('decodeProtobuf: invalid', () => {
  const ff = (n: number) => 'ff'.repeat(n);
  const cases: Array<[string, string, DecodedMessage]> = [
    ['wire type 7', '0f', { error: 'invalid protobuf at byte 0: invalid wire type 7 (field 1)' }],
    ['wire type 6 after a good field', '089601 0e', { 1: 150, error: 'invalid protobuf at byte 3: invalid wire type 6 (field 1)' }],
    ['field number 0', '00 01', { error: 'invalid protobuf at byte 0: field number 0' }],
    ['field number above 2^29-1', '8080808010 01', { error: 'invalid protobuf at byte 0: field number above 2^29-1' }],
    ['truncated tag', '1001 80', { 2: 1, error: 'invalid protobuf at byte 2: tag: truncated varint' }],
    ['truncated varint value', '08 ff', { error: 'invalid protobuf at byte 0: field 1: truncated varint' }],
    ['varint longer than 10 bytes', `08 ${ff(10)} 01`, { error: 'invalid protobuf at byte 0: field 1: varint longer than 10 bytes' }],
    ['varint over 64 bits', `08 ${ff(9)} 02`, { error: 'invalid protobuf at byte 0: field 1: varint overflows 64 bits' }],
    ['length beyond the buffer', '1001 0a05 61', { 2: 1, error: 'invalid protobuf at byte 2: field 1 declares 5 bytes, 1 remain' }],
    [
      'length overflowing 32 bits',
      `0a ${ff(9)} 01`,
      { error: 'invalid protobuf at byte 0: field 1 declares 18446744073709551615 bytes, 0 remain' },
    ],
    ['fixed64 cut short', '09 0102', { error: 'invalid protobuf at byte 0: field 1 (fixed64) needs 8 bytes, 2 remain' }],
    ['fixed32 cut short', '0d 01', { error: 'invalid protobuf at byte 0: field 1 (fixed32) needs 4 bytes, 1 remain' }],
    ['end-group without start', '0c', { error: 'invalid protobuf at byte 0: end-group for field 1 without matching start-group' }],
    ['mismatched end-group', '0b 14', { 1: {}, error: 'invalid protobuf at byte 1: end-group for field 2 without matching start-group' }],
    ['unclosed group keeps its fields', '0b 0801', { 1: { 1: 1 }, error: 'invalid protobuf at byte 3: group for field 1 not closed' }],
    [
      'plain text',
      Buffer.from('Hello, world').toString('hex'),
      { 9: 101, error: 'invalid protobuf at byte 2: end-group for field 13 without matching start-group' },
    ],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(decodeProtobuf(hex(input))).toEqual(expected);
  });

  it('reports groups nested past maxDepth', () => {
    expect(decodeProtobuf(hex('0b'.repeat(40))).error).toBe('invalid protobuf at byte 31: groups nested deeper than 32');
  });
});

describe('decodeProtobuf: output limit', () => {
  it('cuts a long string to fit and says so', () => {
    const json = decodeProtobufToJson(encode({ i32: 1, s: 'é"'.repeat(50_000) }), 1000);
    expect(json.length).toBeLessThanOrEqual(1000);
    const parsed = JSON.parse(json);
    expect(parsed[1]).toBe(1);
    expect(parsed[11]).toMatch(/^(é")+é?…$/);
    expect(parsed[11].length).toBeGreaterThan(500);
    expect(parsed.truncated).toBe('output limit of 1000 chars reached at byte 2');
  });

  it('cuts long bytes to fit', () => {
    const json = decodeProtobufToJson(encode({ by: Buffer.alloc(100_000, 0xfe) }), 600);
    expect(json.length).toBeLessThanOrEqual(600);
    expect(JSON.parse(json)[12]).toMatch(/^bytes:(\/v7\+)+…$/);
  });

  it('stops adding fields once full', () => {
    const json = decodeProtobufToJson(encode({ unpacked: Array.from({ length: 10_000 }, (_, i) => i) }), 2000);
    expect(json.length).toBeLessThanOrEqual(2000);
    const parsed = JSON.parse(json);
    expect(parsed[20].length).toBeGreaterThan(100);
    expect(parsed[20]).toEqual(parsed[20].map((_: unknown, i: number) => i));
    expect(parsed.truncated).toMatch(/^output limit of 2000 chars reached at byte \d+$/);
  });

  it('uses the default limit', () => {
    const json = decodeProtobufToJson(encode({ s: 'x'.repeat(200_000) }));
    expect(json.length).toBeLessThanOrEqual(DEFAULT_MAX_OUTPUT);
    expect(json.length).toBeGreaterThan(DEFAULT_MAX_OUTPUT - 400);
  });
});

/** Valid wire bytes built field by field, to reach deep paths more often than random bytes do. */
const wireMessage: fc.Arbitrary<Buffer> = fc.letrec<{ msg: Buffer }>((tie) => ({
  msg: fc
    .array(
      fc.oneof(
        fc.tuple(fc.integer({ min: 1, max: 40 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map(([f, v]) => {
          const w = protobuf.Writer.create().uint32((f << 3) | 0);
          return Buffer.concat([Buffer.from(w.finish()), varint(v)]);
        }),
        fc.tuple(fc.integer({ min: 1, max: 40 }), fc.oneof({ maxDepth: 4 }, fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)), tie('msg'))).map(([f, b]) =>
          Buffer.from(protobuf.Writer.create().uint32((f << 3) | 2).bytes(b).finish()),
        ),
        fc.tuple(fc.integer({ min: 1, max: 40 }), fc.constantFrom(1, 5), fc.uint8Array({ minLength: 8, maxLength: 8 })).map(([f, w, b]) =>
          Buffer.concat([Buffer.from(protobuf.Writer.create().uint32((f << 3) | w).finish()), Buffer.from(b).subarray(0, w === 1 ? 8 : 4)]),
        ),
      ),
      { maxLength: 5 },
    )
    .map((parts) => Buffer.concat(parts)),
})).msg;

function varint(v: bigint): Buffer {
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

describe('decodeProtobuf: properties', () => {
  const checkJson = (buf: Buffer, maxLen: number) => {
    const json = decodeProtobufToJson(buf, maxLen);
    expect(json.length).toBeLessThanOrEqual(Math.max(maxLen, MIN_OUTPUT));
    const parsed = JSON.parse(json);
    if (parsed.error !== undefined) expect(parsed.error).toMatch(/^invalid protobuf at byte \d+: /);
  };

  it('never throws on arbitrary bytes, terminates, and stays within the output limit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 0, max: 3000 }), (bytes, maxLen) =>
        checkJson(Buffer.from(bytes), maxLen),
      ),
      { numRuns: 1000 },
    );
  });

  it('never throws on mutated and truncated valid messages', () => {
    fc.assert(
      fc.property(wireMessage, fc.nat(), fc.nat(255), fc.integer({ min: 256, max: 3000 }), (msg, at, byte, maxLen) => {
        checkJson(msg, maxLen);
        if (msg.length === 0) return;
        checkJson(msg.subarray(0, at % msg.length), maxLen);
        const mutated = Buffer.from(msg);
        mutated[at % msg.length] = byte;
        checkJson(mutated, maxLen);
      }),
      { numRuns: 500 },
    );
  });

  it('matches the field numbers and values of random messages built with protobufjs', () => {
    const printable = fc.string({ unit: fc.constantFrom(...Array.from('abc xyz ABC 019 !"#\\/~é✓😀')) });
    const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    const inner = fc.record({ name: printable, id: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }, { requiredKeys: [] });
    const all = fc.record(
      {
        i32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        i64: int64,
        u64: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        s32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        f32: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        f64: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        s: printable,
        inner,
        inners: fc.array(inner, { maxLength: 4 }),
        tags: fc.array(printable, { maxLength: 4 }),
        unpacked: fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { maxLength: 4 }),
      },
      { requiredKeys: [] },
    );
    const innerExpect = (m: { name?: string; id?: number }) => {
      const out: DecodedMessage = {};
      if (m.name !== undefined) out[1] = m.name;
      if (m.id !== undefined) out[2] = u64(BigInt(m.id));
      return Object.keys(out).length ? out : '';
    };
    const list = <T,>(xs: T[]) => (xs.length === 1 ? xs[0] : xs);
    fc.assert(
      fc.property(all, (m) => {
        const obj: Record<string, unknown> = { ...m };
        for (const k of ['i64', 'u64', 'f64'] as const) if (m[k] !== undefined) obj[k] = m[k]!.toString();
        const expected: DecodedMessage = {};
        if (m.i32 !== undefined) expected[1] = u64(BigInt(m.i32));
        if (m.i64 !== undefined) expected[2] = u64(m.i64);
        if (m.u64 !== undefined) expected[4] = u64(m.u64);
        if (m.s32 !== undefined) expected[5] = m.s32 >= 0 ? m.s32 * 2 : -m.s32 * 2 - 1;
        if (m.f32 !== undefined) expected[8] = m.f32;
        if (m.f64 !== undefined) expected[9] = u64(m.f64);
        if (m.s !== undefined) expected[11] = m.s;
        if (m.inner !== undefined) expected[13] = innerExpect(m.inner);
        if (m.inners?.length) expected[14] = list(m.inners.map(innerExpect));
        if (m.tags?.length) expected[16] = list(m.tags);
        if (m.unpacked?.length) expected[20] = list(m.unpacked);
        expect(decodeProtobuf(encode(obj))).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});
