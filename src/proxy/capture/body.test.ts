import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyCapture } from './body.js';

describe('BodyCapture', () => {
  it('keeps every chunk under the limit and counts the size', () => {
    const c = new BodyCapture(100);
    c.add(Buffer.from('hello '));
    c.add(Buffer.from('world'));
    expect(c.size).toBe(11);
    expect(c.truncated).toBe(false);
    expect(c.bytes().toString()).toBe('hello world');
  });

  it('slices the chunk that crosses the limit and counts the full size', () => {
    const c = new BodyCapture(8);
    c.add(Buffer.from('abcde'));
    c.add(Buffer.from('fghij'));
    c.add(Buffer.from('klmno'));
    expect(c.size).toBe(15);
    expect(c.keptSize).toBe(8);
    expect(c.truncated).toBe(true);
    expect(c.bytes().toString()).toBe('abcdefgh');
  });

  it('is not truncated when the body is exactly the limit', () => {
    const c = new BodyCapture(5);
    c.add(Buffer.from('abcde'));
    c.add(Buffer.alloc(0));
    expect(c.truncated).toBe(false);
    expect(c.bytes().toString()).toBe('abcde');
  });

  it('references a single chunk without copying', () => {
    const chunk = Buffer.from('same');
    const c = new BodyCapture(10);
    c.add(chunk);
    expect(c.bytes()).toBe(chunk);
  });

  it('counts only with a zero limit', () => {
    const c = new BodyCapture(0);
    c.add(Buffer.from('abc'));
    expect(c.size).toBe(3);
    expect(c.bytes().length).toBe(0);
  });

  it('returns the same bytes when asked twice', () => {
    const c = new BodyCapture(10);
    c.add(Buffer.from('ab'));
    c.add(Buffer.from('cd'));
    expect(c.bytes().toString()).toBe('abcd');
    expect(c.bytes().toString()).toBe('abcd');
  });

  it('captures the same bytes however the body is split into chunks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(300)), fc.nat(320), (body, cuts, limit) => {
        const buf = Buffer.from(body);
        const points = [...new Set(cuts.map((c) => Math.min(c, buf.length)))].sort((a, b) => a - b);
        const c = new BodyCapture(limit);
        let from = 0;
        for (const p of [...points, buf.length]) {
          c.add(buf.subarray(from, p));
          from = p;
        }
        expect(c.size).toBe(buf.length);
        expect(c.truncated).toBe(buf.length > limit);
        expect(c.bytes().equals(buf.subarray(0, limit))).toBe(true);
      }),
    );
  });
});
