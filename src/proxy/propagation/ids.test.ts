import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { issuedSpanId, issuedTraceId, type IssuedId } from '../../telemetry/issued-ids.js';
import { newSpanId, newTraceId, POOL_SIZE } from './ids.js';

const bytesOf = (issued: IssuedId) => Buffer.from(issued.bytes.subarray(issued.at, issued.at + issued.hex.length / 2));

describe('ids', () => {
  it('are lowercase hex of 16 and 8 bytes, never all zero, and differ', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      expect(t).toMatch(/^[0-9a-f]{32}$/);
      expect(s).toMatch(/^[0-9a-f]{16}$/);
      expect(/^0+$/.test(t) || /^0+$/.test(s)).toBe(false);
      seen.add(t).add(s);
    }
    expect(seen.size).toBe(4000);
  });

  it('the last trace and span id issued are published with their bytes, which stay theirs until withdrawn', () => {
    // Any interleaving of trace and span ids, across many hex windows (one serves 256 trace ids or
    // 512 span ids) and pool refills (4,096 and 8,192): what is published, if anything, is the
    // id's own bytes (so its hex is of the right window's bytes), however many refills came after.
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: POOL_SIZE / 8 })), { minLength: 1, maxLength: 6 }), (runs) => {
        for (const [trace, count] of runs) {
          for (let i = 0; i < count; i++) {
            const id = trace ? newTraceId() : newSpanId();
            const issued = trace ? issuedTraceId : issuedSpanId;
            expect(issued.hex).toBe(id);
            expect(bytesOf(issued).toString('hex')).toBe(id);
          }
          for (const issued of [issuedTraceId, issuedSpanId]) if (issued.hex !== '') expect(bytesOf(issued).toString('hex')).toBe(issued.hex);
        }
      }),
      { numRuns: 10 },
    );
  });
});
