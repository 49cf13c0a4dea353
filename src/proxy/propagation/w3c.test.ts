import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatTraceparent, parseTraceparent, parseTracestate } from './w3c.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

describe('parseTraceparent', () => {
  it('parses a valid version 00 header', () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, parentId: PARENT, flags: 1 });
  });

  it('keeps an unsampled flag', () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.flags).toBe(0);
  });

  it('keeps unknown flag bits without changing the sampled bit', () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-09`)?.flags).toBe(9);
  });

  it('rejects version ff', () => {
    expect(parseTraceparent(`ff-${TRACE}-${PARENT}-01`)).toBeUndefined();
  });

  it('rejects version 00 with trailing data', () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-01-extra`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-010`)).toBeUndefined();
  });

  it('parses a future version with exactly four fields', () => {
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, parentId: PARENT, flags: 1 });
  });

  it('parses a future version with extra fields after a dash', () => {
    expect(parseTraceparent(`01-${TRACE}-${PARENT}-01-what-the-future-holds`)).toEqual({ traceId: TRACE, parentId: PARENT, flags: 1 });
  });

  it('rejects a future version whose extra data is not dash-separated', () => {
    expect(parseTraceparent(`01-${TRACE}-${PARENT}-01x`)).toBeUndefined();
  });

  it('rejects an all-zero trace id', () => {
    expect(parseTraceparent(`00-${'0'.repeat(32)}-${PARENT}-01`)).toBeUndefined();
  });

  it('rejects an all-zero parent id', () => {
    expect(parseTraceparent(`00-${TRACE}-${'0'.repeat(16)}-01`)).toBeUndefined();
  });

  it('rejects uppercase hex in every field', () => {
    expect(parseTraceparent(`00-${TRACE.toUpperCase()}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT.toUpperCase()}-01`)).toBeUndefined();
    expect(parseTraceparent(`0A-${TRACE}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-0A`)).toBeUndefined();
  });

  it('rejects non-hex characters', () => {
    expect(parseTraceparent(`00-${TRACE.slice(0, 31)}g-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-0.`)).toBeUndefined();
  });

  it('rejects wrong field lengths', () => {
    expect(parseTraceparent(`00-${TRACE}0-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE.slice(1)}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT}0-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT.slice(1)}-01`)).toBeUndefined();
    expect(parseTraceparent(`0-${TRACE}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-1`)).toBeUndefined();
  });

  it('rejects wrong delimiters', () => {
    expect(parseTraceparent(`00_${TRACE}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}_${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT}_01`)).toBeUndefined();
  });

  it('rejects empty and garbage values', () => {
    expect(parseTraceparent('')).toBeUndefined();
    expect(parseTraceparent('garbage')).toBeUndefined();
  });

  it('tolerates optional whitespace around the value', () => {
    expect(parseTraceparent(` 00-${TRACE}-${PARENT}-01\t`)?.traceId).toBe(TRACE);
  });

  it('parses what it formats, for any non-zero ids', () => {
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`)).filter((h) => /[1-9a-f]/.test(h));
    fc.assert(
      fc.property(hex(32), hex(16), fc.boolean(), (traceId, spanId, sampled) => {
        expect(parseTraceparent(formatTraceparent(traceId, spanId, sampled))).toEqual({ traceId, parentId: spanId, flags: sampled ? 1 : 0 });
      }),
    );
  });

  it('rejects any single-character corruption of a version 00 header', () => {
    const valid = `00-${TRACE}-${PARENT}-01`;
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.constantFrom('G', 'z', 'A', ' ', '_', '.'), (pos, ch) => {
        const bad = valid.slice(0, pos) + ch + valid.slice(pos + 1);
        // A space at either end is optional whitespace, and '.'/'_'... are never hex or '-'.
        if (ch === ' ' && (pos === 0 || pos === valid.length - 1)) return;
        expect(parseTraceparent(bad)).toBeUndefined();
      }),
    );
  });

  it('formats version 00 with the sampled flag', () => {
    expect(formatTraceparent(TRACE, PARENT, true)).toBe(`00-${TRACE}-${PARENT}-01`);
    expect(formatTraceparent(TRACE, PARENT, false)).toBe(`00-${TRACE}-${PARENT}-00`);
  });
});

describe('parseTracestate', () => {
  it('keeps valid members in order', () => {
    expect(parseTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE')).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
  });

  it('trims optional whitespace around members and skips empty members', () => {
    expect(parseTracestate(' a=1 ,\t, b=2\t,')).toBe('a=1,b=2');
  });

  it('accepts multi-tenant keys', () => {
    expect(parseTracestate('fw529a3039@dt=x,0tenant@sys_1=y')).toBe('fw529a3039@dt=x,0tenant@sys_1=y');
  });

  it('drops members with invalid keys', () => {
    expect(parseTracestate('Upper=1,1digitfirst=2,ok=3,@sys=4,t@Sys=5,t@sysidwaytoolong=6')).toBe('ok=3');
  });

  it('drops members with invalid values', () => {
    expect(parseTracestate('a=,c=x=y,d=ok value,e=\x7f,f=\u00e9')).toBe('d=ok value');
  });

  it('drops members without a key-value separator', () => {
    expect(parseTracestate('novalue,a=1,=2')).toBe('a=1');
  });

  it('enforces key and value length limits', () => {
    const key256 = 'k' + 'a'.repeat(255);
    expect(parseTracestate(`${key256}=v`)).toBe(`${key256}=v`);
    expect(parseTracestate(`${key256}a=v,b=1`)).toBe('b=1');
    expect(parseTracestate(`k=${'v'.repeat(257)},b=1`)).toBe('b=1');
  });

  it('keeps the first of duplicate keys', () => {
    expect(parseTracestate('a=1,b=2,a=3')).toBe('a=1,b=2');
  });

  it('keeps at most 32 members', () => {
    const members = Array.from({ length: 40 }, (_, i) => `k${i}=${i}`);
    expect(parseTracestate(members.join(','))).toBe(members.slice(0, 32).join(','));
  });

  it('discards a header longer than 512 characters', () => {
    const long = Array.from({ length: 20 }, (_, i) => `key${i}=${'v'.repeat(30)}`).join(',');
    expect(long.length).toBeGreaterThan(512);
    expect(parseTracestate(long)).toBeUndefined();
  });

  it('returns undefined when no member is valid', () => {
    expect(parseTracestate('')).toBeUndefined();
    expect(parseTracestate('BAD=1')).toBeUndefined();
  });
});
