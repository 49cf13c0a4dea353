import { describe, expect, it } from 'vitest';
import { TraceStore } from './store.js';
import { parseDurationMs, parseTraceQuery, QueryParamError } from './query-params.js';
import type { StoredSpan } from './model.js';

function span(traceId: string, spanId: string, over: Partial<StoredSpan> = {}): StoredSpan {
  return {
    traceId: traceId.padStart(32, '0'),
    spanId: spanId.padStart(16, '0'),
    name: 'GET /',
    kind: 2,
    service: 'svc',
    startMs: 1000,
    endMs: 1010,
    durationMs: 10,
    attributes: {},
    resource: { 'service.name': 'svc' },
    events: [],
    status: { code: 0 },
    error: false,
    ...over,
  };
}

describe('TraceStore', () => {
  it('evicts whole traces, oldest first, once over maxSpans', () => {
    const store = new TraceStore({ maxSpans: 4 });
    store.add([span('1', 'a'), span('1', 'b')]);
    store.add([span('2', 'c'), span('2', 'd')]);
    expect(store.stats()).toMatchObject({ traces: 2, spans: 4, evictedTraces: 0 });
    // A late span of trace 1 does not make it younger: trace 1 goes first.
    store.add([span('1', 'e')]);
    expect(store.trace('1'.padStart(32, '0'))).toBeUndefined();
    expect(store.stats()).toMatchObject({ traces: 1, spans: 2, evictedTraces: 1 });
    store.add([span('3', 'f'), span('3', 'g'), span('3', 'h')]);
    expect(store.stats()).toMatchObject({ traces: 1, spans: 3, evictedTraces: 2 });
  });

  it('evicts the oldest traces when bodies pass the byte budget', () => {
    const store = new TraceStore({ maxSpans: 1000, maxBytes: 300_000 });
    const body = 'x'.repeat(50_000); // about 100 kB as a JS string
    store.add([span('1', 'a', { attributes: { 'http.request.body.content': body } })]);
    store.add([span('2', 'b', { attributes: { 'http.request.body.content': body } })]);
    expect(store.stats()).toMatchObject({ traces: 2, evictedTraces: 0 });
    store.add([span('3', 'c', { attributes: { 'http.response.body.content': body } }), span('3', 'd', { attributes: { b: body } })]);
    expect(store.stats()).toMatchObject({ traces: 1, spans: 2, evictedTraces: 2 });
    expect(store.stats().bytes).toBeGreaterThan(200_000);
    expect(store.stats().bytes).toBeLessThanOrEqual(300_000);
  });

  it('matches a trace when one span meets every criterion', () => {
    const store = new TraceStore({ maxSpans: 100 });
    store.add([span('1', 'a', { startMs: 1, durationMs: 900, name: 'order', error: true }), span('1', 'b', { name: 'validate', durationMs: 5 })]);
    store.add([span('2', 'c', { startMs: 2, durationMs: 300, name: 'order', attributes: { 'http.request.header.x-user': ['ann', 'bob'] } })]);
    const ids = (q: Parameters<TraceStore['find']>[0]) => store.find(q).map((t) => t[0].traceId.replace(/^0+/, ''));
    expect(ids({})).toEqual(['2', '1']);
    expect(ids({ operation: 'order', minDurationMs: 500 })).toEqual(['1']);
    // Criteria must hold on the same span: 'validate' is fast but not an error.
    expect(ids({ operation: 'validate', tags: { error: 'true' } })).toEqual([]);
    expect(ids({ tags: { error: 'false' }, maxDurationMs: 10 })).toEqual(['1']);
    expect(ids({ tags: { 'http.request.header.x-user': 'bob' } })).toEqual(['2']);
    expect(ids({ tags: { 'service.name': 'svc' }, limit: 1 })).toEqual(['2']);
    expect(ids({ startMs: 2 })).toEqual(['2']);
    expect(ids({ endMs: 1.5 })).toEqual(['1']);
    expect(store.operations('svc').map((o) => o.name)).toEqual(['order', 'validate']);
  });

  it('rejects a non-positive size', () => {
    expect(() => new TraceStore({ maxSpans: 0 })).toThrow(RangeError);
    expect(() => new TraceStore({ maxSpans: 5, maxBytes: 1.5 })).toThrow(/maxBytes/);
  });
});

describe('query parameters', () => {
  it.each([
    ['500ms', 500],
    ['1.5s', 1500],
    ['1m30s', 90_000],
    ['250us', 0.25],
    ['42', 42],
  ])('parses duration %s', (text, ms) => {
    expect(parseDurationMs('minDuration', text)).toBeCloseTo(ms, 9);
  });

  it.each(['fast', '5 ms', '1x', 'ms', ''])('rejects duration %j naming the parameter', (text) => {
    expect(() => parseDurationMs('maxDuration', text)).toThrow(/"maxDuration"/);
  });

  it('takes tags as JSON and as repeated tag=k:v', () => {
    const q = parseTraceQuery(new URLSearchParams('tags={"error":true}&tag=http.route:/books/:id&limit=5'));
    expect(q).toEqual({ tags: { error: 'true', 'http.route': '/books/:id' }, limit: 5 });
    expect(() => parseTraceQuery(new URLSearchParams('tags=[1]'))).toThrow(QueryParamError);
    expect(() => parseTraceQuery(new URLSearchParams('limit=0'))).toThrow(/"limit"/);
    expect(parseTraceQuery(new URLSearchParams('start=1700000000000000&end=1700000000500000'))).toEqual({ startMs: 1_700_000_000_000, endMs: 1_700_000_000_500 });
    expect(() => parseTraceQuery(new URLSearchParams('end=yesterday'))).toThrow(/"end"/);
  });
});
