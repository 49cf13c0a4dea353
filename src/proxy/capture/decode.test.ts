import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeBody } from './decode.js';

const text = Buffer.from('The quick brown fox jumps over the lazy dog. '.repeat(200));
// Varied words compress well yet keep each compressed byte's output small.
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo'];
const prose = Buffer.from(Array.from({ length: 3000 }, (_, i) => WORDS[(i * 7 + ((i * i) % 13)) % WORDS.length]).join(' '));

const encoders: Record<string, (b: Buffer) => Buffer> = {
  gzip: (b) => zlib.gzipSync(b),
  deflate: (b) => zlib.deflateSync(b),
  br: (b) => zlib.brotliCompressSync(b),
};

describe('decodeBody', () => {
  for (const [enc, encode] of Object.entries(encoders)) {
    it(`decodes a whole ${enc} body`, () => {
      const out = decodeBody(encode(text), enc, 1 << 20);
      expect(out?.truncated).toBe(false);
      expect(out?.bytes.equals(text)).toBe(true);
    });

    it(`decodes a truncated ${enc} body as far as it goes`, () => {
      // Incompressible input keeps the compressed stream about as long as the text.
      const random = Buffer.from(Array.from({ length: 20000 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26) ^ (i % 3))).join(''));
      const full = encode(random);
      const cut = full.subarray(0, Math.floor(full.length / 2));
      const out = decodeBody(cut, enc, 1 << 20);
      expect(out).toBeDefined();
      expect(out!.bytes.length).toBeGreaterThan(0);
      expect(out!.bytes.length).toBeLessThan(random.length);
      expect(out!.bytes.equals(random.subarray(0, out!.bytes.length))).toBe(true);
    });

    it(`cuts a ${enc} body that decodes beyond the limit`, () => {
      const out = decodeBody(encode(prose), enc, 1000);
      expect(out?.truncated).toBe(true);
      expect(out!.bytes.length).toBeLessThanOrEqual(1000);
      expect(out!.bytes.length).toBeGreaterThanOrEqual(750);
      expect(out!.bytes.equals(prose.subarray(0, out!.bytes.length))).toBe(true);
    });

    it(`never inflates a ${enc} bomb beyond the limit`, () => {
      const bomb = encode(Buffer.alloc(20 << 20, 0x61));
      const out = decodeBody(bomb, enc, 1000);
      // gzip/deflate yield a prefix; brotli's single meta-block may yield nothing (raw bytes kept).
      if (out !== undefined) {
        expect(out.truncated).toBe(true);
        expect(out.bytes.length).toBeLessThanOrEqual(1000);
        expect(out.bytes.length).toBeGreaterThan(0);
        expect(out.bytes.every((b) => b === 0x61)).toBe(true);
      } else {
        expect(enc).toBe('br');
      }
    });
  }

  it('decodes raw deflate sent as deflate', () => {
    expect(decodeBody(zlib.deflateRawSync(text), 'deflate', 1 << 20)?.bytes.equals(text)).toBe(true);
  });

  it('accepts x-gzip and mixed case', () => {
    expect(decodeBody(zlib.gzipSync(text), ' X-Gzip', 1 << 20)?.bytes.equals(text)).toBe(true);
  });

  it('returns undefined for unknown encodings and corrupt input', () => {
    expect(decodeBody(text, 'zstd', 100)).toBeUndefined();
    expect(decodeBody(Buffer.from('not gzip at all'), 'gzip', 100)).toBeUndefined();
  });
});
