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
    const store = new TraceStore(4);
    store.add([span('1', 'a'), span('1', 'b')]);
    store.add([span('2', 'c'), span('2', 'd')]);
    expect(store.stats()).toEqual({ traces: 2, spans: 4, evictedTraces: 0 });
    // A late span of trace 1 does not make it younger: trace 1 goes first.
    store.add([span('1', 'e')]);
    expect(store.trace('1'.padStart(32, '0'))).toBeUndefined();
    expect(store.stats()).toEqual({ traces: 1, spans: 2, evictedTraces: 1 });
    store.add([span('3', 'f'), span('3', 'g'), span('3', 'h')]);
    expect(store.stats()).toEqual({ traces: 1, spans: 3, evictedTraces: 2 });
  });

  it('matches a trace when one span meets every criterion', () => {
    const store = new TraceStore(100);
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
    expect(store.operations('svc').map((o) => o.name)).toEqual(['order', 'validate']);
  });

  it('rejects a non-positive size', () => {
    expect(() => new TraceStore(0)).toThrow(RangeError);
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
  });
});
