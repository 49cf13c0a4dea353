import { describe, expect, it } from 'vitest';
import zlib from 'node:zlib';
import { GrpcErrorCode, inflateGrpcPayload, readGrpcFrames } from './frame-reader.js';

function frame(payload: Buffer | string, flag = 0): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(5);
  header[0] = flag;
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
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
