import { describe, expect, it } from 'vitest';
import { formatB3Multi, formatB3Single, parseB3Multi, parseB3Single } from './b3.js';

const T128 = '80f198ee56343ba864fe8b2a57d3eff7';
const T64 = 'a3ce929d0e0e4736';
const S = 'e457b5a2e4d86bd1';
const P = '05e3ac9a4f6e3b90';

describe('parseB3Single', () => {
  it('parses trace id, span id, sampled and parent', () => {
    expect(parseB3Single(`${T128}-${S}-1-${P}`)).toEqual({ traceId: T128, spanId: S, sampled: true, debug: false });
  });

  it('parses a deferred decision (no sampling field)', () => {
    expect(parseB3Single(`${T128}-${S}`)).toEqual({ traceId: T128, spanId: S, sampled: undefined, debug: false });
  });

  it('left-pads a 64-bit trace id to 128 bits', () => {
    expect(parseB3Single(`${T64}-${S}-0`)?.traceId).toBe('0000000000000000' + T64);
  });

  it('parses debug as sampled', () => {
    expect(parseB3Single(`${T128}-${S}-d`)).toEqual({ traceId: T128, spanId: S, sampled: true, debug: true });
  });

  it('parses sampling-only values', () => {
    expect(parseB3Single('0')).toEqual({ sampled: false, debug: false });
    expect(parseB3Single('1')).toEqual({ sampled: true, debug: false });
    expect(parseB3Single('d')).toEqual({ sampled: true, debug: true });
  });

  it('rejects malformed values', () => {
    expect(parseB3Single('x')).toBeUndefined();
    expect(parseB3Single(T128)).toBeUndefined();
    expect(parseB3Single(`${T128}-${S}-2`)).toBeUndefined();
    expect(parseB3Single(`${T128.toUpperCase()}-${S}-1`)).toBeUndefined();
    expect(parseB3Single(`${T128}1-${S}-1`)).toBeUndefined();
    expect(parseB3Single(`${T128}-${S}0-1`)).toBeUndefined();
    expect(parseB3Single(`${'0'.repeat(32)}-${S}-1`)).toBeUndefined();
    expect(parseB3Single(`${T128}-${'0'.repeat(16)}-1`)).toBeUndefined();
    expect(parseB3Single(`${T128}-${S}-1-bad`)).toBeUndefined();
    expect(parseB3Single(`${T128}-${S}-1-${P}-x`)).toBeUndefined();
  });
});

describe('parseB3Multi', () => {
  it('parses trace id, span id and sampled', () => {
    expect(parseB3Multi(T128, S, '1')).toEqual({ traceId: T128, spanId: S, sampled: true, debug: false });
    expect(parseB3Multi(T128, S, '0')).toEqual({ traceId: T128, spanId: S, sampled: false, debug: false });
  });

  it('accepts legacy true/false', () => {
    expect(parseB3Multi(T128, S, 'true')?.sampled).toBe(true);
    expect(parseB3Multi(T128, S, 'false')?.sampled).toBe(false);
  });

  it('treats X-B3-Flags: 1 as debug and sampled', () => {
    expect(parseB3Multi(T128, S, '0', '1')).toEqual({ traceId: T128, spanId: S, sampled: true, debug: true });
  });

  it('left-pads 64-bit trace ids', () => {
    expect(parseB3Multi(T64, S)?.traceId).toBe('0000000000000000' + T64);
  });

  it('returns a sampling decision alone', () => {
    expect(parseB3Multi(undefined, undefined, '0')).toEqual({ sampled: false, debug: false });
  });

  it('rejects a trace id without span id and invalid ids', () => {
    expect(parseB3Multi(T128, undefined, '1')).toBeUndefined();
    expect(parseB3Multi(undefined, S, '1')).toBeUndefined();
    expect(parseB3Multi('xyz', S)).toBeUndefined();
    expect(parseB3Multi(T128, 'short')).toBeUndefined();
    expect(parseB3Multi()).toBeUndefined();
  });
});

describe('format', () => {
  it('formats single with sampling state and parent', () => {
    expect(formatB3Single(T128, S, true, false)).toBe(`${T128}-${S}-1`);
    expect(formatB3Single(T128, S, false, false, P)).toBe(`${T128}-${S}-0-${P}`);
    expect(formatB3Single(T128, S, true, true)).toBe(`${T128}-${S}-d`);
  });

  it('formats multi headers', () => {
    expect(formatB3Multi(T128, S, true, false, P)).toEqual([
      ['x-b3-traceid', T128],
      ['x-b3-spanid', S],
      ['x-b3-parentspanid', P],
      ['x-b3-sampled', '1'],
    ]);
    expect(formatB3Multi(T128, S, true, true)).toEqual([
      ['x-b3-traceid', T128],
      ['x-b3-spanid', S],
      ['x-b3-flags', '1'],
    ]);
  });
});
