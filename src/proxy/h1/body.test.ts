import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BodyReader } from './body.js';
import { BodyKind } from './head.js';

interface Run {
  consumed: number;
  payload: string;
  done: boolean;
  error?: string;
  trailers?: string[];
}

/** Feeds `input` split at the given positions, as successive socket reads would arrive. */
function run(kind: BodyKind, length: number, input: string, cuts: number[] = []): Run {
  const r = new BodyReader();
  r.reset(kind, length);
  const payload: Buffer[] = [];
  const sink = { bodyData: (b: Buffer) => payload.push(Buffer.from(b)) };
  const buf = Buffer.from(input, 'latin1');
  let consumed = 0;
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < buf.length).sort((a, b) => a - b), buf.length];
  for (let i = 0; i + 1 < bounds.length && !r.done && !r.error; i++) {
    consumed += r.feed(buf.subarray(bounds[i], bounds[i + 1]), 0, sink);
  }
  return { consumed, payload: Buffer.concat(payload).toString('latin1'), done: r.done, error: r.error?.code, trailers: r.trailers };
}

describe('BodyReader: well-formed', () => {
  it('Content-Length stops at the end and leaves the next message', () => {
    expect(run(BodyKind.Length, 3, 'abcGET')).toEqual({ consumed: 3, payload: 'abc', done: true, error: undefined, trailers: undefined });
  });
  it('chunked with extensions and trailers', () => {
    const body = '3;a=b;c="d e"\r\nabc\r\n10\r\n0123456789abcdef\r\n0;last\r\nX-T: 1\r\nY:  two \r\n\r\n';
    expect(run(BodyKind.Chunked, 0, body + 'NEXT')).toEqual({ consumed: body.length, payload: 'abc0123456789abcdef', done: true, error: undefined, trailers: ['X-T', '1', 'Y', 'two'] });
  });
  it('upper-case hex and leading zeros', () => {
    expect(run(BodyKind.Chunked, 0, '00A\r\n0123456789\r\n0\r\n\r\n').payload).toBe('0123456789');
  });
  it('until close takes everything', () => {
    expect(run(BodyKind.UntilClose, 0, 'all of it').consumed).toBe(9);
  });
});

describe('BodyReader: incomplete', () => {
  it('chunked body cut anywhere is not done', () => {
    const body = '3\r\nabc\r\n0\r\nT: 1\r\n\r\n';
    for (let i = 0; i < body.length; i++) expect(run(BodyKind.Chunked, 0, body.slice(0, i)).done, `prefix ${i}`).toBe(false);
  });
});

describe('BodyReader: invalid (llhttp rejects these)', () => {
  const table: Array<[string, string]> = [
    ['non-hex size', 'zz\r\nabc\r\n0\r\n\r\n'],
    ['space after size', '3 \r\nabc\r\n0\r\n\r\n'],
    ['space before extension', '3 ;a=b\r\nabc\r\n0\r\n\r\n'],
    ['empty size', '\r\nabc\r\n0\r\n\r\n'],
    ['LF-only size line', '3\nabc\r\n0\r\n\r\n'],
    ['data longer than size', '3\r\nabcd\r\n0\r\n\r\n'],
    ['CTL in extension', '3;\x01\r\nabc\r\n0\r\n\r\n'],
    ['size overflow', 'fffffffffffffffffff\r\n'],
    ['bad trailer name', '0\r\nBad T: 1\r\n\r\n'],
    ['trailer obs-fold', '0\r\nT: 1\r\n 2\r\n\r\n'],
  ];
  for (const [name, input] of table) {
    it(name, () => expect(run(BodyKind.Chunked, 0, input).error).toBe('ST_H1_INVALID_CHUNK'));
  }
  it('oversized extensions get 413 like Node', () => {
    expect(run(BodyKind.Chunked, 0, `1;${'x'.repeat(17000)}\r\n`).error).toBe('ST_H1_CHUNK_EXTENSIONS_OVERFLOW');
  });
});

describe('BodyReader: split points', () => {
  it('cutting a chunked body at every position (and every pair) gives the same result', () => {
    const body = '5;e=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nA: b\r\n\r\nrest';
    const whole = run(BodyKind.Chunked, 0, body);
    expect(whole.done).toBe(true);
    for (let i = 0; i <= body.length; i++) {
      expect(run(BodyKind.Chunked, 0, body, [i]), `cut ${i}`).toEqual(whole);
      for (let j = i + 1; j <= body.length; j += 3) expect(run(BodyKind.Chunked, 0, body, [i, j]), `cut ${i},${j}`).toEqual(whole);
    }
  });
  it('random splits of random chunked bodies agree with the unsplit run', () => {
    const chunk = fc.string({ minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 6 }), fc.array(fc.nat(200), { maxLength: 8 }), (chunks, cuts) => {
        const body = chunks.map((c) => `${Buffer.byteLength(c, 'latin1').toString(16)}\r\n${c}\r\n`).join('') + '0\r\n\r\n';
        const whole = run(BodyKind.Chunked, 0, body);
        expect(whole.payload).toBe(chunks.join(''));
        expect(run(BodyKind.Chunked, 0, body, cuts)).toEqual(whole);
      }),
      { numRuns: 500 },
    );
  });
  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(200), { maxLength: 5 }), (bytes, cuts) => {
        run(BodyKind.Chunked, 0, Buffer.from(bytes).toString('latin1'), cuts);
      }),
      { numRuns: 2000 },
    );
  });
});
