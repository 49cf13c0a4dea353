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
});
