import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import zlib from 'node:zlib';
import { GrpcErrorCode, GrpcFrameReader, inflateGrpcPayload, readGrpcFrames, type GrpcFrame } from './frame-reader.js';

function frame(payload: Buffer | string, flag = 0): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(5);
  header[0] = flag;
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

const plain = (f: GrpcFrame) => ({ compressed: f.compressed, length: f.length, payload: f.payload.toString('hex'), offset: f.offset });

/** Feeds `body` to a fresh incremental reader cut at `cuts` (sorted positions). */
function readIncrementally(body: Buffer, cuts: number[]) {
  const reader = new GrpcFrameReader();
  const frames: GrpcFrame[] = [];
  let from = 0;
  for (const cut of [...cuts, body.length]) {
    frames.push(...reader.push(body.subarray(from, cut)));
    from = cut;
  }
  return { frames, error: reader.error, truncated: reader.truncated() };
}

function sameAsWhole(body: Buffer, cuts: number[]): void {
  const whole = readGrpcFrames(body);
  const inc = readIncrementally(body, cuts);
  expect(inc.frames.map(plain)).toEqual(whole.frames.map(plain));
  expect(inc.error).toEqual(whole.error);
  expect(inc.truncated && { ...inc.truncated, payload: inc.truncated.payload.toString('hex') }).toEqual(
    whole.truncated && { ...whole.truncated, payload: whole.truncated.payload.toString('hex') },
  );
}

describe('readGrpcFrames: well-formed', () => {
  const cases: Array<[string, Buffer, Array<{ compressed: boolean; payload: string; offset: number }>]> = [
    ['empty body', Buffer.alloc(0), []],
    ['one frame', frame('abc'), [{ compressed: false, payload: 'abc', offset: 0 }]],
    ['empty message', frame(''), [{ compressed: false, payload: '', offset: 0 }]],
    ['compressed flag', frame('zz', 1), [{ compressed: true, payload: 'zz', offset: 0 }]],
    [
      'three frames',
      Buffer.concat([frame('a'), frame(''), frame('hello', 1)]),
      [
        { compressed: false, payload: 'a', offset: 0 },
        { compressed: false, payload: '', offset: 6 },
        { compressed: true, payload: 'hello', offset: 11 },
      ],
    ],
  ];
  it.each(cases)('%s', (_name, body, expected) => {
    const result = readGrpcFrames(body);
    expect(result.error).toBeUndefined();
    expect(result.truncated).toBeUndefined();
    expect(result.rest).toBe(0);
    expect(result.frames.map((f) => ({ compressed: f.compressed, payload: f.payload.toString(), offset: f.offset }))).toEqual(
      expected,
    );
    for (const f of result.frames) expect(f.length).toBe(f.payload.length);
  });

  it('returns payloads as views of the body, not copies', () => {
    const body = frame('shared');
    const [f] = readGrpcFrames(body).frames;
    body[5] = 'S'.charCodeAt(0);
    expect(f.payload.toString()).toBe('Shared');
  });
});

describe('readGrpcFrames: incomplete (cut at every point)', () => {
  const body = Buffer.concat([frame('first'), frame('second-msg', 1)]);
  const secondAt = 10;
  for (let cut = 0; cut <= body.length; cut++) {
    it(`cut at ${cut}`, () => {
      const result = readGrpcFrames(body.subarray(0, cut));
      expect(result.error).toBeUndefined();
      const complete = cut >= body.length ? 2 : cut >= secondAt ? 1 : 0;
      expect(result.frames.length).toBe(complete);
      const partialAt = complete === 0 ? 0 : secondAt;
      if (cut === partialAt || cut === body.length) {
        expect(result.truncated).toBeUndefined();
        expect(result.rest).toBe(0);
        return;
      }
      expect(result.rest).toBe(cut - partialAt);
      const t = result.truncated!;
      expect(t.offset).toBe(partialAt);
      if (cut - partialAt < 5) {
        expect(t.declaredLength).toBeUndefined();
        expect(t.payload.length).toBe(0);
      } else {
        expect(t.declaredLength).toBe(complete === 0 ? 5 : 10);
        expect(t.compressed).toBe(complete === 1);
        expect(t.payload.toString()).toBe((complete === 0 ? 'first' : 'second-msg').slice(0, cut - partialAt - 5));
      }
    });
  }
});

describe('readGrpcFrames: invalid', () => {
  it('rejects a flag byte other than 0/1, naming its offset', () => {
    const result = readGrpcFrames(Buffer.concat([frame('ok'), Buffer.from([2, 0, 0, 0, 0])]));
    expect(result.frames.map((f) => f.payload.toString())).toEqual(['ok']);
    expect(result.rest).toBe(5);
    expect(result.error).toBe(`${GrpcErrorCode.BadFlag}: invalid compressed flag 0x02 at byte 7 (expected 0 or 1)`);
  });

  it('rejects a bad flag even when the header is incomplete', () => {
    expect(readGrpcFrames(Buffer.from([0x80])).error).toMatch(/0x80 at byte 0/);
  });

  it('reads an HTTP/1 response as invalid, not as frames', () => {
    const result = readGrpcFrames(Buffer.from('HTTP/1.1 200 OK\r\n'));
    expect(result.frames).toEqual([]);
    expect(result.error).toMatch(/0x48 at byte 0/);
  });
});

describe('GrpcFrameReader', () => {
  const body = Buffer.concat([frame('a'), frame(''), frame('a longer payload', 1), frame(Buffer.alloc(40, 7))]);

  it('gives the same frames for every single split point', () => {
    for (let cut = 0; cut <= body.length; cut++) sameAsWhole(body, [cut]);
  });

  it('gives the same frames for every pair of split points', () => {
    for (let a = 0; a <= body.length; a++) for (let b = a; b <= body.length; b++) sameAsWhole(body, [a, b]);
  });

  it('gives the same frames one byte at a time', () => {
    sameAsWhole(body, Array.from({ length: body.length }, (_, i) => i));
  });

  it('property: any chunking of any frame stream (valid, truncated or invalid) reads the same', () => {
    const frames = fc.array(
      fc.record({ flag: fc.constantFrom(0, 1), payload: fc.uint8Array({ maxLength: 300 }) }),
      { maxLength: 8 },
    );
    fc.assert(
      fc.property(
        frames,
        fc.constantFrom('whole', 'cut', 'corrupt'),
        fc.nat(),
        fc.array(fc.nat(), { maxLength: 20 }),
        (fs, mode, at, rawCuts) => {
          let stream = Buffer.concat(fs.map((f) => frame(Buffer.from(f.payload), f.flag)));
          if (mode === 'cut' && stream.length > 0) stream = stream.subarray(0, at % stream.length);
          if (mode === 'corrupt' && stream.length > 0) {
            stream = Buffer.from(stream);
            stream[at % stream.length] = 2 + (at % 250);
          }
          const cuts = rawCuts.map((c) => c % (stream.length + 1)).sort((x, y) => x - y);
          sameAsWhole(stream, cuts);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('hands out a payload within one chunk as a view, and joins split payloads once', () => {
    const reader = new GrpcFrameReader();
    const chunk = frame('inside');
    const [f] = reader.push(chunk);
    expect(f.payload.buffer).toBe(chunk.buffer);

    const big = frame(Buffer.alloc(1 << 20, 1));
    let out: GrpcFrame[] = [];
    for (let i = 0; i < big.length; i += 1000) out = out.concat(reader.push(big.subarray(i, i + 1000)));
    expect(out).toHaveLength(1);
    expect(out[0].offset).toBe(chunk.length);
    expect(out[0].payload.equals(big.subarray(5))).toBe(true);
    expect(reader.bufferedBytes).toBe(0);
  });

  it('stays linear in time with many tiny chunks of one large frame', () => {
    const big = frame(Buffer.alloc(200_000, 3));
    const reader = new GrpcFrameReader();
    const started = performance.now();
    let count = 0;
    for (let i = 0; i < big.length; i += 4) count += reader.push(big.subarray(i, i + 4)).length;
    expect(count).toBe(1);
    // 50k chunks: a quadratic join would take seconds here.
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('stops at an invalid flag and ignores later input', () => {
    const reader = new GrpcFrameReader();
    expect(reader.push(Buffer.concat([frame('x'), Buffer.from([7])]))).toHaveLength(1);
    expect(reader.error).toMatch(/0x07 at byte 6/);
    expect(reader.push(frame('y'))).toEqual([]);
    expect(reader.truncated()).toBeUndefined();
  });
});

describe('inflateGrpcPayload', () => {
  const text = Buffer.from('hello gRPC '.repeat(200));

  it.each([
    ['gzip', zlib.gzipSync(text)],
    ['GZIP', zlib.gzipSync(text)],
    ['deflate', zlib.deflateSync(text)],
    ['deflate', zlib.deflateRawSync(text)],
    ['identity', text],
  ])('inflates %s', (encoding, payload) => {
    const result = inflateGrpcPayload(payload, encoding);
    expect(result.ok && result.data.equals(text)).toBe(true);
  });

  it('inflates what a truncated capture holds', () => {
    const big = Buffer.from(Array.from({ length: 5000 }, (_, i) => `line ${i}\n`).join(''));
    const gz = zlib.gzipSync(big);
    const result = inflateGrpcPayload(gz.subarray(0, gz.length >> 1), 'gzip');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.data.length).toBeGreaterThan(0);
    expect(result.data.length).toBeLessThan(big.length);
    expect(big.subarray(0, result.data.length).equals(result.data)).toBe(true);
  });

  it('bounds the output of a decompression bomb', () => {
    const bomb = zlib.gzipSync(Buffer.alloc(8 << 20));
    const result = inflateGrpcPayload(bomb, 'gzip', 1 << 20);
    expect(result).toMatchObject({ ok: false, code: GrpcErrorCode.InflateTooLarge });
  });

  it('reports corrupt input and unknown encodings without throwing', () => {
    expect(inflateGrpcPayload(Buffer.from('not gzip at all'), 'gzip')).toMatchObject({ ok: false, code: GrpcErrorCode.InflateFailed });
    expect(inflateGrpcPayload(Buffer.from([0xff, 0xff, 0xff]), 'deflate')).toMatchObject({ ok: false, code: GrpcErrorCode.InflateFailed });
    const snappy = inflateGrpcPayload(text, 'snappy');
    expect(snappy).toMatchObject({ ok: false, code: GrpcErrorCode.EncodingUnsupported });
    expect(!snappy.ok && snappy.error).toMatch(/"snappy"/);
  });
});
