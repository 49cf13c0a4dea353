import { describe, expect, it } from 'vitest';
import { analyze, explain, roundBetween, split } from './analysis.js';
import { renderReport } from './report.js';
import type { StoredSpan } from './model.js';
import { seeded } from '../demo/random.js';

let ids = 0;
function span(over: Partial<StoredSpan> & { traceId: string }): StoredSpan {
  const id = (++ids).toString(16).padStart(16, '0');
  const startMs = over.startMs ?? 0;
  const durationMs = over.durationMs ?? 10;
  return {
    spanId: id,
    name: 'POST /x',
    kind: 2,
    service: 'svc',
    startMs,
    endMs: startMs + durationMs,
    durationMs,
    attributes: {},
    resource: {},
    events: [],
    status: { code: 0 },
    error: false,
    ...over,
  };
}

/** A purchase trace: front (server) → client call → orders (server) failing above `failAbove`. */
function purchase(i: number, orderMs: number, failAbove: number): StoredSpan[] {
  const traceId = i.toString(16).padStart(32, '0');
  const fail = orderMs > failAbove;
  const status = { 'http.response.status_code': fail ? 503 : 201 };
  const front = span({ traceId, service: 'bookstore', name: 'POST /books/purchase', durationMs: orderMs + 3, error: fail, attributes: { 'http.response.status_code': fail ? 502 : 200 } });
  const client = span({ traceId, parentSpanId: front.spanId, service: 'bookstore', kind: 3, name: 'POST /books/order', durationMs: orderMs + 2, error: fail, attributes: status });
  const orders = span({
    traceId,
    parentSpanId: client.spanId,
    service: 'book-orders',
    name: 'POST /books/order',
    durationMs: orderMs + 1.2,
    error: fail,
    attributes: { ...status, 'http.request.body': '{"bookId":"b1"}', 'http.response.body': fail ? '{"error":"Book server is on high load!"}' : '{"ok":true}' },
  });
  return [front, client, orders];
}

describe('analyze', () => {
  it.each([700, 400, 1000])('finds the latency above which the order service fails (%i ms)', (failAbove) => {
    const rand = seeded(failAbove);
    const spans = Array.from({ length: 80 }, (_, i) => purchase(i + 1, 100 + rand() * 1400, failAbove)).flat();
    const a = analyze(spans);
    const orders = a.failing.find((f) => f.service === 'book-orders')!;
    expect(orders.origins).toBe(orders.failures);
    expect(orders.culprit?.feature).toBe('duration');
    expect(orders.culprit!.misfits).toBe(0);
    expect(Math.abs(orders.culprit!.threshold - failAbove)).toBeLessThanOrEqual(10);
    // The front end fails only because its call failed: no culprit of its own.
    const front = a.failing.find((f) => f.service === 'bookstore')!;
    expect(front.origins).toBe(0);
    expect(front.culprit).toBeUndefined();
    const text = renderReport(a, spans.filter((s) => s.traceId === orders.example.traceId));
    expect(text).toContain(`\`POST /books/order\` fails when it is slower than ${orders.culprit!.threshold} ms`);
    expect(text).toContain('Book server is on high load!');
    expect(text).toMatch(/Waterfall of failing trace [0-9a-f]{32}/);
  });

  it('explains failures by a request-body number when latency does not separate them', () => {
    const rand = seeded(7);
    const calls = Array.from({ length: 60 }, () => {
      const amount = Math.round(rand() * 1000);
      return span({
        traceId: 'a'.repeat(32),
        durationMs: 20 + rand() * 60,
        attributes: { 'http.request.body': JSON.stringify({ orderId: 'o', amount, card: { last4: 4242 } }), 'http.response.status_code': amount > 500 ? 402 : 200 },
      });
    });
    const sep = explain(calls)!;
    expect(sep.feature).toBe('amount');
    expect(sep.threshold).toBe(500);
    expect(sep.misfits).toBe(0);
  });

  it('names no culprit when nothing separates failures', () => {
    const rand = seeded(3);
    const calls = Array.from({ length: 60 }, () => span({ traceId: 'b'.repeat(32), durationMs: rand() * 50, error: rand() < 0.3 }));
    expect(explain(calls)).toBeUndefined();
  });

  it('names no culprit from a rule that leaves the failures out, or from too few failures', () => {
    // 60 quick calls, one failing: "fails above 100 ms" would be right 59 times and explain nothing.
    const calls = Array.from({ length: 60 }, (_, i) => span({ traceId: 'c'.repeat(32), durationMs: i === 59 ? 150 : 5 + i, error: i === 3 }));
    expect(explain(calls)).toBeUndefined();
    const two = Array.from({ length: 60 }, (_, i) => ({ x: i, fail: i >= 58 }));
    expect(split('duration', two)).toBeUndefined();
    expect(split('duration', Array.from({ length: 60 }, (_, i) => ({ x: i, fail: i >= 57 })))).toMatchObject({ threshold: 56, misfits: 0 });
  });

  it('tolerates a few misfits but not many', () => {
    const samples = Array.from({ length: 100 }, (_, i) => ({ x: i, fail: i >= 50 }));
    samples[10].fail = true;
    expect(split('duration', samples)).toMatchObject({ misfits: 1, threshold: 49, okMax: 49, failMin: 50 });
    for (let i = 0; i < 10; i++) samples[i].fail = true;
    expect(split('duration', samples)).toBeUndefined();
  });

  it('computes error rates per service from server spans', () => {
    const spans = [...purchase(1, 900, 700), ...purchase(2, 300, 700), ...purchase(3, 200, 700)];
    const a = analyze(spans);
    expect(a.services).toEqual([
      { service: 'book-orders', requests: 3, errors: 1 },
      { service: 'bookstore', requests: 3, errors: 1 },
    ]);
    expect(a.traces).toBe(3);
    expect(a.unforwarded).toEqual([]);
  });

  it('spots outgoing calls that started their own trace (context not forwarded)', () => {
    const orphan = span({ traceId: 'd'.repeat(32), service: 'orders', kind: 3 });
    const joined = span({ traceId: 'e'.repeat(32), service: 'gateway', kind: 3, parentSpanId: '1'.repeat(16) });
    expect(analyze([orphan, joined, span({ traceId: 'f'.repeat(32), service: 'orders', kind: 3 })]).unforwarded).toEqual([{ service: 'orders', calls: 2 }]);
    expect(renderReport(analyze([orphan]), undefined)).toContain('! orders made 1 call without the trace context it received');
  });
});

describe('roundBetween', () => {
  it.each([
    [693, 712, 700, 0],
    [701, 712, 710, 0],
    [703, 712, 700, 7.03],
    [698.4, 699.9, 699, 0],
    [499.5, 612, 500, 0],
    [0.2, 0.3, 0.2, 0],
  ])('picks the roundest number in [%d - slack, %d)', (lo, hi, want, slack) => {
    expect(roundBetween(lo, hi, slack)).toBe(want);
  });
});
