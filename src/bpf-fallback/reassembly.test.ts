import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { DataEvent } from './events.js';
import { ByteStream, DEFAULT_STREAM_LIMITS, type Segment, type StreamCounters } from './reassembly.js';

// One stream's events cut from 200 bytes, then reordered, duplicated, dropped or truncated (bytes
// the kernel did not copy), with batch ends in between.
const eventsArb = fc
  .record({
    cuts: fc.uniqueArray(fc.integer({ min: 1, max: 199 }), { maxLength: 12 }),
    swaps: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
    dups: fc.array(fc.nat(), { maxLength: 2 }),
    drops: fc.array(fc.nat(), { maxLength: 2 }),
    truncs: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 2 }),
    ticks: fc.array(fc.nat(), { maxLength: 4 }),
    start: fc.constantFrom(0, -1),
  })
  .map((p) => {
    const bytes = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
    const at = [0, ...[...p.cuts].sort((a, b) => a - b), 200];
    let evs: DataEvent[] = [];
    for (let i = 0; i + 1 < at.length; i++) {
      const data = bytes.subarray(at[i], at[i + 1]);
      evs.push({ kind: 'data', connId: 1, pid: 1, tid: 1, fd: 3, tsNs: 1000 + i, direction: 'egress', source: 'syscall', pos: at[i], size: data.length, data });
    }
    for (const [a, b] of p.swaps) {
      const i = a % evs.length;
      const j = b % evs.length;
      [evs[i], evs[j]] = [evs[j], evs[i]];
    }
    for (const d of p.dups) evs.splice(d % evs.length, 0, evs[d % evs.length]);
    for (const [t, keep] of p.truncs) {
      const i = t % evs.length;
      evs[i] = { ...evs[i], data: evs[i].data.subarray(0, keep % (evs[i].data.length + 1)) };
    }
    for (const d of p.drops) if (evs.length > 1) evs.splice(d % evs.length, 1);
    const ticks = new Set(p.ticks.map((t) => t % (evs.length + 1)));
    evs = [...evs];
    return { evs, ticks, start: p.start };
  });

describe('ByteStream.takeNext', () => {
  test('taking an event whole gives the segments, counters and positions accept gives', () => {
    let taken = 0;
    let left = 0;
    fc.assert(
      fc.property(eventsArb, ({ evs, ticks, start }) => {
        const counters = (): StreamCounters => ({ gaps: 0, lostBytes: 0, duplicates: 0 });
        const ca = counters();
        const cb = counters();
        const a = new ByteStream(DEFAULT_STREAM_LIMITS, ca, start);
        const b = new ByteStream(DEFAULT_STREAM_LIMITS, cb, start);
        const outA: Segment[] = [];
        const outB: Segment[] = [];
        evs.forEach((ev, i) => {
          if (ticks.has(i)) {
            a.tick(outA);
            b.tick(outB);
          }
          if (a.takeNext(ev.pos, ev.size, ev.data.length, ev.tsNs)) {
            taken++;
            outA.push({ kind: 'data', data: ev.data, tsNs: ev.tsNs });
          } else {
            left++;
            a.accept(ev, outA);
          }
          b.accept(ev, outB);
          expect(outA).toEqual(outB);
        });
        a.flush(outA, 200);
        b.flush(outB, 200);
        expect(outA).toEqual(outB);
        expect(ca).toEqual(cb);
        expect(a.firstPos).toBe(b.firstPos);
      }),
      { numRuns: 2000 },
    );
    // Both ways are exercised.
    expect(taken).toBeGreaterThan(1000);
    expect(left).toBeGreaterThan(1000);
  });
});
