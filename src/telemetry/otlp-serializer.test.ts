// The hand-written serializer against the official one: for random SpanRecords, both requests
// decode (with the official generated OTLP code) to the same thing, and the bytes agree too.
// The reference path is what export.ts shipped before: SpanRecord → SDK ReadableSpan →
// otlp-transformer's ProtobufTraceSerializer.

import { createRequire } from 'node:module';
import type { Attributes as OtelAttributes, HrTime, SpanStatus } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { newSpanId, newTraceId } from '../proxy/propagation/ids.js';
import { OtlpTraceSerializer } from './otlp-serializer.js';
import { SpanKind, StatusCode, type AttrValue, type SpanRecord, type SpanResource } from './span.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const root = require('otlp-proto/build/src/generated/root.js') as any;
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ExportTraceServiceResponse = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

const SCOPE = { name: 'sidetrace', version: '9.8.7' };

/**
 * Span `i` of a test batch: one trace, span id `i` in hex, 1 ms long, starting `i` ms after a
 * fixed time, no events, status OK; `fields` replace any of these.
 */
function nthSpan(i: number, fields: Partial<SpanRecord>): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: i.toString(16).padStart(16, '0'),
    sampled: true,
    name: `span ${i}`,
    kind: SpanKind.SERVER,
    startMs: 1_700_000_000_000 + i,
    endMs: 1_700_000_000_001 + i,
    attributes: {},
    events: [],
    status: { code: StatusCode.OK },
    ...fields,
  };
}

/** The former production conversion, kept here as the oracle's input. */
function toReadableSpan(rec: SpanRecord, resource: Resource): ReadableSpan {
  const traceFlags = rec.sampled ? 1 : 0;
  const ms = (m: number): HrTime => {
    const us = Math.round(m * 1000);
    const s = Math.floor(us / 1e6);
    return [s, (us - s * 1e6) * 1000];
  };
  const events: TimedEvent[] = rec.events.map((e) => ({ name: e.name, time: ms(e.timeMs), attributes: e.attributes as unknown as OtelAttributes, droppedAttributesCount: 0 }));
  return {
    name: rec.name,
    kind: rec.kind - 1,
    spanContext: () => ({ traceId: rec.traceId, spanId: rec.spanId, traceFlags, traceState: rec.traceState ? new TraceState(rec.traceState) : undefined }),
    parentSpanContext: rec.parentSpanId ? { traceId: rec.traceId, spanId: rec.parentSpanId, traceFlags, isRemote: true } : undefined,
    startTime: ms(rec.startMs),
    endTime: ms(rec.endMs),
    status: rec.status as unknown as SpanStatus,
    attributes: rec.attributes as unknown as OtelAttributes,
    links: [],
    events,
    duration: ms(Math.max(0, rec.endMs - rec.startMs)),
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

function official(spans: SpanRecord[], resourceAttrs: Record<string, string>): Uint8Array {
  const resource = resourceFromAttributes(resourceAttrs);
  return ProtobufTraceSerializer.serializeRequest(spans.map((s) => toReadableSpan(s, resource)))!;
}

function decode(bytes: Uint8Array): unknown {
  return ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(bytes), { longs: String, bytes: String, defaults: true, arrays: true });
}

/** Span.flags (field 16) of every span, read by hand: otlp-proto's generated code predates it. */
function spanFlags(bytes: Uint8Array): number[] {
  const out: number[] = [];
  const fields = (b: Uint8Array, visit: (field: number, r: protobuf.Reader, wire: number) => void): void => {
    const r = protobuf.Reader.create(b);
    while (r.pos < r.len) {
      const tag = r.uint32();
      visit(tag >>> 3, r, tag & 7);
    }
  };
  const sub = (field: number, want: number, r: protobuf.Reader, wire: number, then: (b: Uint8Array) => void): void => {
    if (field === want && wire === 2) then(r.bytes());
    else r.skipType(wire);
  };
  fields(bytes, (f, r, w) =>
    sub(f, 1, r, w, (rs) =>
      fields(rs, (f, r, w) =>
        sub(f, 2, r, w, (ss) =>
          fields(ss, (f, r, w) =>
            sub(f, 2, r, w, (span) =>
              fields(span, (f, r, w) => {
                if (f === 16 && w === 5) out.push(r.fixed32());
                else r.skipType(w);
              }),
            ),
          ),
        ),
      ),
    ),
  );
  return out;
}

const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'));
// Lone surrogates included: both writers must replace them with U+FFFD the same way.
const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  // Around the serializer's short-string cut-over (JS loop below, Buffer calls above).
  fc.string({ minLength: 40, maxLength: 60, unit: fc.oneof(fc.constant('a'), fc.constant('é'), fc.constant('\u{1f600}'), fc.constant('\ud800')) }),
  fc.string({ minLength: 100, maxLength: 3000 }),
);
const edgeNumbers = fc.constantFrom(0, -0, -1, 127, 128, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, 2 ** 53, 2 ** 62, -(2 ** 63), 2 ** 63, -(2 ** 31), 1.5, NaN, Infinity, -Infinity, 1e300);
const attrValue: fc.Arbitrary<AttrValue> = fc.oneof(
  anyString,
  fc.integer(),
  fc.double(),
  edgeNumbers,
  fc.boolean(),
  fc.uint8Array({ maxLength: 300 }),
  fc.uint8Array({ minLength: 1000, maxLength: 20_000 }),
  fc.array(anyString, { maxLength: 4 }),
);
const attributes = fc.dictionary(anyString, attrValue, { maxKeys: 6 });
const timeMs = fc.double({ min: 0, max: 4e12, noNaN: true });
const traceState = fc
  .uniqueArray(fc.tuple(fc.stringMatching(/^[a-z][a-z0-9_*/-]{0,8}$/), fc.stringMatching(/^[a-zA-Z0-9!-+.-<>-~]{1,12}$/)), { selector: (t) => t[0], minLength: 1, maxLength: 4 })
  .map((members) => members.map(([k, v]) => `${k}=${v}`).join(','));

const spanRecord: fc.Arbitrary<SpanRecord> = fc.record(
  {
    traceId: hex(16),
    spanId: hex(8),
    parentSpanId: hex(8),
    traceState,
    sampled: fc.boolean(),
    name: anyString,
    kind: fc.constantFrom(SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT),
    startMs: timeMs,
    endMs: timeMs,
    attributes,
    events: fc.array(fc.record({ name: anyString, timeMs, attributes }), { maxLength: 3 }),
    status: fc.record({ code: fc.constantFrom(StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR), message: anyString }, { requiredKeys: ['code'] }),
  },
  { requiredKeys: ['traceId', 'spanId', 'sampled', 'name', 'kind', 'startMs', 'endMs', 'attributes', 'events', 'status'] },
);

// resourceFromAttributes fills its attributes with `??=` on a plain object, so it drops keys that
// name an Object.prototype member ("toString", "__proto__"); ours keeps them. Not a real resource key.
const resourceAttributes = fc.dictionary(
  anyString.filter((k) => !(k in Object.prototype)),
  anyString,
  { maxKeys: 5 },
);

describe('OtlpTraceSerializer', () => {
  it('encodes random span batches exactly as the official serializer does', () => {
    fc.assert(
      fc.property(fc.array(spanRecord, { minLength: 1, maxLength: 4 }), resourceAttributes, (spans, resource) => {
        const ours = new OtlpTraceSerializer(resource, SCOPE).serializeRequest(spans);
        const theirs = official(spans, resource);
        expect(decode(ours)).toEqual(decode(theirs));
        expect(spanFlags(ours)).toEqual(spanFlags(theirs));
        expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('spans encoded one by one as they are queued make the same request as the batch', () => {
    fc.assert(
      fc.property(fc.array(spanRecord, { minLength: 1, maxLength: 4 }), resourceAttributes, (spans, resource) => {
        const ser = new OtlpTraceSerializer(resource, SCOPE);
        const encoded = spans.map((s) => ser.encodeSpan(s));
        expect(Buffer.from(ser.encodedSpans.serializeRequest(encoded)!).equals(Buffer.from(official(spans, resource)))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('spans with resources of their own: one ResourceSpans per resource, in order of first appearance, as the official serializer groups them', () => {
    // Resource attribute values as the agent's (strings and integers).
    const ownAttributes = fc.dictionary(anyString.filter((k) => !(k in Object.prototype)), fc.oneof(anyString, fc.integer({ min: 0, max: 2 ** 22 })), { maxKeys: 5 });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(spanRecord, fc.integer({ min: -1, max: 2 })), { minLength: 1, maxLength: 6 }),
        fc.array(ownAttributes, { minLength: 3, maxLength: 3 }),
        resourceAttributes,
        (tagged, owns, resource) => {
          const spanResources = owns.map((attributes) => ({ attributes }));
          const otelResources = owns.map((attributes) => resourceFromAttributes(attributes as OtelAttributes));
          const own = resourceFromAttributes(resource);
          const spans = tagged.map(([span, r]) => (r < 0 ? span : { ...span, resource: spanResources[r] }));
          const theirs = ProtobufTraceSerializer.serializeRequest(tagged.map(([span, r]) => toReadableSpan(span, r < 0 ? own : otelResources[r])))!;
          const ser = new OtlpTraceSerializer(resource, SCOPE);
          // Twice: the second time each resource's encoding comes from the serializer's cache.
          for (let round = 0; round < 2; round++) {
            const encoded = spans.map((s) => ser.encodeSpan(s));
            const ours = ser.encodedSpans.serializeRequest(encoded)!;
            expect(decode(ours)).toEqual(decode(theirs));
            expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
            ser.releaseEncoded(encoded);
          }
          expect(Buffer.from(ser.serializeRequest(spans)).equals(Buffer.from(theirs))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('serializeRequest of spans with their own resources leaves the slabs of spans still queued alone', () => {
    const ser = new OtlpTraceSerializer({ a: 'b' }, SCOPE);
    const mk = (i: number, extra: Partial<SpanRecord> = {}): SpanRecord => ({ traceId: '1'.repeat(32), spanId: (i + 1).toString(16).padStart(16, '0'), sampled: true, name: 'n', kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes: { i, pad: 'p'.repeat(3000 + (i % 7)) }, events: [], status: { code: StatusCode.UNSET }, ...extra });
    // ~300 KiB queued from encodeSpan: spans in at least two slabs.
    const encoded = Array.from({ length: 100 }, (_, i) => ser.encodeSpan(mk(i)));
    const before = Buffer.from(ser.serializeEncoded(encoded));
    ser.serializeRequest([mk(1000, { resource: { attributes: { 'service.name': 'x' } } })]);
    // More spans: a released slab would be taken from the spares and written over.
    for (let i = 0; i < 200; i++) ser.encodeSpan(mk(2000 + i));
    expect(Buffer.from(ser.serializeEncoded(encoded)).equals(before)).toBe(true);
  });

  it('encoded spans stay intact across slabs, spans bigger than a slab, and later batches', () => {
    const ser = new OtlpTraceSerializer({ 'service.name': 's' }, SCOPE);
    const mk = (i: number, bytes: number): SpanRecord =>
      nthSpan(i, { attributes: { i, body: 'é'.repeat(bytes >> 1), raw: new Uint8Array(bytes).fill(i) } });
    // ~1 MiB in spans of 1 KiB to 300 KiB: several slabs, some spans grow one.
    const spans = Array.from({ length: 200 }, (_, i) => mk(i, i % 50 === 7 ? 300_000 : 1000 + 37 * i));
    const encoded = spans.map((s) => ser.encodeSpan(s));
    for (let i = 0; i < 3; i++) ser.encodeSpan(mk(1000 + i, 20_000));
    expect(Buffer.from(ser.encodedSpans.serializeRequest(encoded)!).equals(Buffer.from(official(spans, { 'service.name': 's' })))).toBe(true);
  });

  it('reuses slabs and requests once released, without touching spans still queued or requests still in flight', () => {
    const ser = new OtlpTraceSerializer({ 'service.name': 's' }, SCOPE);
    const mk = (i: number): SpanRecord =>
      nthSpan(i, {
        kind: SpanKind.CLIENT,
        attributes: { i, 'url.path': `/items/${i}`, body: 'x'.repeat(500 + ((i * 7919) % 3000)), raw: new Uint8Array(i % 5 === 0 ? 5000 : 100).fill(i) },
        status: { code: StatusCode.UNSET },
      });
    // A queue of encoded spans that grows by 60 spans a round (a slow backend), drained in batches
    // of 60 with two requests in flight: every request must match the official bytes when it is
    // finally read, after later encodes, and so must the backlog.
    const queue: { span: SpanRecord; encoded: ReturnType<typeof ser.encodeSpan> }[] = [];
    const inFlight: { request: Uint8Array; buffer: Buffer | undefined; expected: Buffer }[] = [];
    let next = 0;
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 120; i++, next++) queue.push({ span: mk(next), encoded: ser.encodeSpan(mk(next)) });
      const batch = queue.splice(0, 60);
      const request = ser.encodedSpans.serializeRequest(batch.map((b) => b.encoded))!;
      inFlight.push({ request, buffer: ser.takeLastRequest(), expected: Buffer.from(official(batch.map((b) => b.span), { 'service.name': 's' })) });
      ser.releaseEncoded(batch.map((b) => b.encoded));
      if (inFlight.length > 2) {
        const done = inFlight.shift()!;
        expect(Buffer.from(done.request).equals(done.expected)).toBe(true);
        ser.releaseRequest(done.buffer!);
      }
    }
    for (const f of inFlight) expect(Buffer.from(f.request).equals(f.expected)).toBe(true);
    const rest = ser.encodedSpans.serializeRequest(queue.map((q) => q.encoded))!;
    expect(Buffer.from(rest).equals(Buffer.from(official(queue.map((q) => q.span), { 'service.name': 's' })))).toBe(true);
  });

  it('a slab is reused only once every span in it is released, in any order, and nothing is left held', () => {
    // Spans of 0.2-70 KiB (several per slab, some outgrowing one; some with referenced bodies),
    // under 3 resources of their own or none, encoded and released in random order as a queue
    // with drops, batches and retries would: every span still held must serialize to what it
    // did when encoded, after later spans have reused whatever was released.
    const resources: (SpanResource | undefined)[] = [undefined, { attributes: { 'service.name': 'a' } }, { attributes: { 'service.name': 'b', 'process.pid': 7 } }];
    const otelResources = [resourceFromAttributes({ 'service.name': 's' }), ...resources.slice(1).map((r) => resourceFromAttributes(r!.attributes as OtelAttributes))];
    const op = fc.oneof(
      fc.record({ encode: fc.integer({ min: 200, max: 70_000 }), resource: fc.integer({ min: 0, max: 2 }), raw: fc.boolean() }),
      fc.record({ release: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 120, size: 'medium' }), (ops) => {
        const ser = new OtlpTraceSerializer({ 'service.name': 's' }, SCOPE);
        const held: { h: number; bytes: Buffer; span: SpanRecord; resource: number }[] = [];
        let n = 0;
        for (const o of ops) {
          if ('encode' in o) {
            const i = n++;
            const span = nthSpan(i, {
              spanId: (i + 1).toString(16).padStart(16, '0'),
              attributes: o.raw ? { i, body: new Uint8Array(o.encode).fill(i) } : { i, text: String.fromCharCode(97 + (i % 26)).repeat(o.encode) },
              resource: resources[o.resource],
            });
            const h = ser.encodeSpan(span);
            held.push({ h, bytes: Buffer.from(ser.serializeEncoded([h])), span, resource: o.resource });
          } else if (held.length > 0) {
            ser.releaseEncoded([held.splice(o.release % held.length, 1)[0].h]);
          }
          for (const { h, bytes } of held) expect(Buffer.from(ser.serializeEncoded([h])).equals(bytes)).toBe(true);
        }
        // All in one request, runs of neighbours in a slab copied at once: the official bytes.
        const theirs = ProtobufTraceSerializer.serializeRequest(held.map((x) => toReadableSpan(x.span, otelResources[x.resource])))!;
        expect(Buffer.from(ser.serializeEncoded(held.map((x) => x.h))).equals(Buffer.from(held.length > 0 ? theirs : []))).toBe(true);
        expect(ser.held.spans).toBe(held.length);
        ser.releaseEncoded(held.map((x) => x.h));
        // Only the slab being written stays.
        expect(ser.held).toEqual({ spans: 0, slabs: n > 0 ? 1 : 0 });
      }),
      { numRuns: 60 },
    );
  });

  it('handles and slabs are reused: a steady queue holds a bounded number of them', () => {
    const ser = new OtlpTraceSerializer({ 'service.name': 's' }, SCOPE);
    const mk = (i: number): SpanRecord => ({ traceId: '1'.repeat(32), spanId: (i + 1).toString(16).padStart(16, '0'), sampled: true, name: 'n', kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes: { i, pad: 'p'.repeat(1000) }, events: [], status: { code: StatusCode.UNSET } });
    const queue: number[] = [];
    let maxSlabs = 0;
    for (let i = 0; i < 20_000; i++) {
      queue.push(ser.encodeSpan(mk(i)));
      if (queue.length === 600) ser.releaseEncoded(queue.splice(0, 512));
      maxSlabs = Math.max(maxSlabs, ser.held.slabs);
    }
    expect(Math.max(...queue)).toBeLessThan(1024);
    // 600 spans of ~1 KiB: 3 slabs of 256 KiB, and one more at a slab boundary.
    expect(maxSlabs).toBeLessThanOrEqual(4);
  });

  it('a span that fails to encode leaves the serializer as it was', () => {
    const ser = new OtlpTraceSerializer({}, SCOPE);
    const ok: SpanRecord = { traceId: '1'.repeat(32), spanId: '2'.repeat(16), sampled: true, name: 'ok', kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes: { body: new Uint8Array(5000) }, events: [], status: { code: StatusCode.OK } };
    const first = ser.encodeSpan(ok);
    expect(() => ser.encodeSpan({ ...ok, attributes: { body: new Uint8Array(5000) }, events: undefined } as unknown as SpanRecord)).toThrow();
    const second = ser.encodeSpan(ok);
    expect(Buffer.from(ser.encodedSpans.serializeRequest([first, second])!).equals(Buffer.from(official([ok, ok], {})))).toBe(true);
    expect(Buffer.from(ser.serializeRequest([ok])).equals(Buffer.from(official([ok], {})))).toBe(true);
  });

  it('encodes keys right past the key cache bound (clients choose header names)', () => {
    const ser = new OtlpTraceSerializer({}, SCOPE);
    const spans: SpanRecord[] = [];
    for (let i = 0; i < 12; i++) {
      const attributes: Record<string, string> = {};
      for (let k = 0; k < 500; k++) attributes[`http.request.header.x-${(i * 300 + k).toString(36)}`] = `v${k}`;
      attributes['http.request.method'] = 'GET';
      spans.push({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), sampled: true, name: 'GET', kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes, events: [], status: { code: StatusCode.UNSET } });
    }
    expect(Buffer.from(ser.serializeRequest(spans)).equals(Buffer.from(official(spans, {})))).toBe(true);
  });

  // Each key's last value and KeyValue are memoised across spans (and across serializers: the
  // memos are the module's): whatever a span repeats, changes, reorders or retypes, its bytes
  // must stay the official ones.
  const memoKey = fc.constantFrom('http.request.method', 'server.port', 'url.path', 'h', 'é', '\u{1f600}', 'k'.repeat(300));
  const memoValue: fc.Arbitrary<AttrValue> = fc.oneof(
    fc.constantFrom<AttrValue>('GET', 'POST', '1', 1, 1.5, -1, 2 ** 40, true, false, 'é', '\ud800', 'x'.repeat(300), 'y'.repeat(250)),
    fc.constantFrom<AttrValue>(['1'], ['1', '2'], [], ['é'], ['a', 'b', 'c', 'd', 'e'], ['z'.repeat(300)]),
    fc.constantFrom(new Uint8Array([49]), new Uint8Array(300).fill(7)),
    attrValue,
  );
  const memoSpans = fc
    .tuple(
      fc.dictionary(memoKey, memoValue, { minKeys: 1 }),
      // Per span: values changed (or keys added), and the order the keys are listed in.
      fc.array(fc.tuple(fc.dictionary(memoKey, memoValue, { maxKeys: 3 }), fc.nat(), fc.boolean()), { minLength: 2, maxLength: 12 }),
    )
    .map(([base, steps]) => {
      let current: Record<string, AttrValue> = { ...base };
      return steps.map(([changes, rotate, reverse], i): SpanRecord => {
        current = { ...current, ...changes };
        const entries = Object.entries(current);
        const r = rotate % entries.length;
        const ordered = [...entries.slice(r), ...entries.slice(0, r)];
        if (reverse) ordered.reverse();
        return nthSpan(i, {
          spanId: (i + 1).toString(16).padStart(16, '0'),
          name: 'GET',
          kind: SpanKind.CLIENT,
          attributes: Object.fromEntries(ordered),
          events: i % 3 === 2 ? [{ name: 'e', timeMs: 1_700_000_000_000 + i, attributes: Object.fromEntries(entries.slice(0, 2)) }] : [],
          status: { code: StatusCode.UNSET },
        });
      });
    });

  it('repeated, changed, reordered and retyped attribute values encode as the official serializer does', () => {
    fc.assert(
      fc.property(memoSpans, (spans) => {
        const ser = new OtlpTraceSerializer({ 'service.name': 's' }, SCOPE);
        const expected = Buffer.from(official(spans, { 'service.name': 's' }));
        const encoded = spans.map((s) => ser.encodeSpan(s));
        expect(Buffer.from(ser.encodedSpans.serializeRequest(encoded)!).equals(expected)).toBe(true);
        expect(Buffer.from(ser.serializeRequest(spans)).equals(expected)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a value that changes many spans in a row, then settles, then switches type, encodes right throughout', () => {
    // Runs of changing values past the miss streak that pauses a key's memo, then repeats (memo
    // taken again), and values of every type in turn under the same key.
    const values: AttrValue[] = [];
    for (let i = 0; i < 150; i++) values.push(`v${i}`);
    for (let i = 0; i < 100; i++) values.push('same');
    const kinds: AttrValue[] = ['1', 1, ['1'], true, '1', new Uint8Array([49]), 1.5, 'é', ['é', 'x'], 'x'.repeat(257), 2 ** 53, ['1']];
    for (let r = 0; r < 4; r++) for (const k of kinds) values.push(k, k, k);
    const items = ['a'];
    const spans = values.map((v, i): SpanRecord => {
      // The same array object, changed in place between spans: a memo must not keep the caller's array.
      if (i % 7 === 0) items[0] = `a${i % 3}`;
      return nthSpan(i, {
        spanId: (i + 1).toString(16).padStart(16, '0'),
        name: 'n',
        startMs: 1,
        endMs: 2,
        attributes: { fixed: 'GET', v, items, port: i % 2 === 0 ? 8080 : 40000 + i },
        status: { code: StatusCode.UNSET },
      });
    });
    const ser = new OtlpTraceSerializer({}, SCOPE);
    for (let i = 0; i < spans.length; i++) {
      const expected = Buffer.from(official([spans[i]], {}));
      expect(Buffer.from(ser.encodedSpans.serializeRequest([ser.encodeSpan(spans[i])])!).equals(expected)).toBe(true);
    }
  });

  it('keys with many values, lists of different shapes interleaved, type switches and slabs rolling over encode right', () => {
    // As a busy agent's spans come: each from one of 4 producers (key orders and subsets differ:
    // client, server, ...), with values drawn from 1 to 1000 per key (ports of that many
    // connections, alternating values, values that never repeat), a key whose value switches
    // type, and bodies big enough that slabs fill, are released and reused every few dozen spans.
    const body = new Uint8Array(1500).fill(7);
    const port = (x: number) => 40000 + 2 * x;
    const typed = (x: number): AttrValue => [`s${x}`, x, [`a${x}`], x % 2 === 0, x + 0.5, [`a${x}`, 'b']][x % 6];
    const shapes: ((x: number, y: number) => Record<string, AttrValue>)[] = [
      (x, y) => ({ method: 'GET', path: '/', 'peer.port': 8080, 'local.port': port(x), date: `d${y >> 4}`, t: typed(y), body }),
      (x, y) => ({ method: 'GET', 'client.port': port(x), path: '/', 'peer.port': port(x), 'local.port': 8080, date: `d${y >> 4}`, body }),
      (x, y) => ({ t: typed(x), method: y % 3 === 0 ? 'POST' : 'GET', 'peer.port': x % 2 === 0 ? 8080 : port(x), items: [`i${x % 3}`] }),
      (x, y) => ({ path: '/', method: 'GET', 'local.port': port(x), 'peer.port': 8080, date: `d${y >> 4}`, 'client.port': port(y), body }),
    ];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(3), fc.nat(999), fc.nat(999)), { minLength: 200, maxLength: 500 }), fc.constantFrom(1, 2, 16, 40, 1000), fc.integer({ min: 1, max: 60 }), (picks, distinct, batch) => {
        const ser = new OtlpTraceSerializer({}, SCOPE);
        let spans: SpanRecord[] = [];
        const check = () => {
          const encoded = spans.map((s) => ser.encodeSpan(s));
          expect(Buffer.from(ser.encodedSpans.serializeRequest(encoded)!).equals(Buffer.from(official(spans, {})))).toBe(true);
          ser.releaseEncoded(encoded);
          spans = [];
        };
        for (let i = 0; i < picks.length; i++) {
          const [shape, x, y] = picks[i];
          spans.push({ traceId: '1'.repeat(32), spanId: (i + 1).toString(16).padStart(16, '0'), sampled: true, name: 'GET', kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes: shapes[shape](x % distinct, y), events: [], status: { code: StatusCode.UNSET } });
          if (spans.length === batch) check();
        }
        check();
      }),
      { numRuns: 25 },
    );
  });

  it('lists of a few key sequences sharing value objects, some changed (in place too), encode right', () => {
    // The list memos (a sequence's last list copied a run at a time): up to 12 sequences (more
    // than are memoised) of the same length, alike up to a point and then not, whose values are
    // mostly the very objects the sequence's last list had: shared arrays and a shared bytes value
    // changed in place between spans, values that change, switch type or become equal copies,
    // and slabs that fill and roll over (bodies), checked batch by batch.
    const shared = ['a', 'b'];
    const bytes = new Uint8Array(3).fill(1);
    const body = new Uint8Array(3000).fill(2);
    const pool: AttrValue[] = ['GET', 'GET'.toLowerCase().toUpperCase(), 8080, 40001, true, shared, ['a', 'b'], ['a'], bytes, body, 1.5, 'é', `${'x'.repeat(20)}`];
    const keysOf = (seq: number) => ['k0', 'k1', seq % 3 === 0 ? 'k2' : `k2-${seq}`, 'k3', `k4-${seq % 5}`, 'k5'];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(11), fc.array(fc.nat(pool.length - 1), { minLength: 6, maxLength: 6 }), fc.nat(5)), { minLength: 50, maxLength: 300 }),
        fc.integer({ min: 1, max: 40 }),
        (picks, batch) => {
          const ser = new OtlpTraceSerializer({}, SCOPE);
          const last: AttrValue[][] = [];
          let spans: SpanRecord[] = [];
          const check = (): void => {
            const encoded = spans.map((s) => ser.encodeSpan(s));
            expect(Buffer.from(ser.encodedSpans.serializeRequest(encoded)!).equals(Buffer.from(official(spans, {})))).toBe(true);
            ser.releaseEncoded(encoded);
            spans = [];
          };
          for (let i = 0; i < picks.length; i++) {
            const [seq, choices, change] = picks[i];
            // Mostly the values this sequence had last time; one position drawn anew.
            const values = (last[seq] ??= choices.map((c) => pool[c])).slice();
            values[change] = pool[choices[change]];
            last[seq] = values;
            if (i % 5 === 0) shared[i % 2] = `s${i % 3}`;
            if (i % 7 === 0) bytes[1] = i & 0xff;
            const attributes: Record<string, AttrValue> = {};
            keysOf(seq).forEach((k, j) => (attributes[k] = values[j]));
            spans.push(nthSpan(i, { attributes }));
            if (spans.length === batch) check();
          }
          check();
        },
      ),
      { numRuns: 60 },
    );
  });

  it('values that are fresh slices of a head, equal to a memoised string or one char off, encode right', () => {
    // Header values as a parser gives them: each span's own string objects, sliced from its own
    // head (V8 views of it), mostly equal to the memoised value; some one char off in the same
    // length (the memo compares them, then points the equal ones at its own string); some the
    // very objects an earlier span had (a repeated head's cached parse).
    const variants = ['fortio.org/fortio-1.68.2', 'fortio.org/fortio-1.68.3', 'Fortio.org/fortio-1.68.2', '127.0.0.1:8080', '127.0.0.1:8081', 'application/json', 'é-not-ascii-at-all'];
    const head = (i: number, v: string) => `GET / HTTP/1.1\r\nx-${i}: ${v}\r\n`;
    const slice = (i: number, v: string) => head(i, v).slice(20 + String(i).length, 20 + String(i).length + v.length);
    const earlier: string[] = [];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(variants.length - 1), fc.nat(variants.length - 1), fc.nat(3), fc.boolean()), { minLength: 2, maxLength: 40 }), (picks) => {
        const ser = new OtlpTraceSerializer({}, SCOPE);
        const spans = picks.map(([a, b, reuse, inArray], i): SpanRecord => {
          const ua = reuse === 0 && earlier.length > 0 ? earlier[i % earlier.length] : slice(i, variants[a]);
          const host = slice(i + 1, variants[b]);
          if (earlier.length < 16) earlier.push(ua);
          return nthSpan(i, { attributes: { 'user_agent.original': ua, 'http.request.header.host': inArray ? [host] : [host, ua], 'http.response.header.server': [ua] } });
        });
        const encoded = spans.map((s) => ser.encodeSpan(s));
        expect(Buffer.from(ser.encodedSpans.serializeRequest(encoded)!).equals(Buffer.from(official(spans, {})))).toBe(true);
        ser.releaseEncoded(encoded);
      }),
      { numRuns: 200 },
    );
  });

  it('ids just issued (their bytes copied), issued earlier, and equal or near ones from elsewhere encode right', () => {
    // The serializer copies the bytes of the ids issued last (issued-ids.ts) instead of decoding
    // them: spans encoded right after their ids are issued, after more were issued (pools refilled
    // in between), and with ids that equal an issued one as another string or differ from it in
    // one char (the one compared first, or another).
    const near = (id: string, at: number) => id.slice(0, at) + (id[at] === '0' ? '1' : '0') + id.slice(at + 1);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(5), fc.integer({ min: 0, max: 600 }), fc.nat(31)), { minLength: 1, maxLength: 20 }), (steps) => {
        const ser = new OtlpTraceSerializer({}, SCOPE);
        const spans: SpanRecord[] = [];
        let older = nthSpan(0, {});
        for (const [how, more, at] of steps) {
          let traceId = newTraceId();
          let spanId = newSpanId();
          if (how === 1) for (let i = 0; i < more; i++) newSpanId();
          if (how === 2) for (let i = 0; i < more; i++) newTraceId();
          if (how === 3) [traceId, spanId] = [[...traceId].join(''), [...spanId].join('')];
          if (how === 4) [traceId, spanId] = [near(traceId, at), near(spanId, at % 16)];
          const span = how === 5 ? older : nthSpan(spans.length, { traceId, spanId, parentSpanId: how === 4 ? newSpanId() : undefined });
          older = span;
          spans.push(span);
          const expected = Buffer.from(official([span], {}));
          expect(Buffer.from(ser.encodedSpans.serializeRequest([ser.encodeSpan(span)])!).equals(expected)).toBe(true);
        }
        expect(Buffer.from(ser.serializeRequest(spans)).equals(Buffer.from(official(spans, {})))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('bytes values fill a batch bigger than the scratch buffer has been, each room reserved exactly enough', () => {
    // serializeRequest copies bytes values (encodeSpan references those of 2 KiB and more): the
    // scratch buffer grows (this batch is ~4 MiB, more than any other test's) with bodies across the
    // points where it must, which holds only if each KeyValue reserves room for its bytes.
    const spans: SpanRecord[] = [];
    for (let i = 0; i < 2100; i++) spans.push(nthSpan(i, { attributes: { 'http.response.body.content': new Uint8Array(1900 + (i % 148)).fill(i & 0xff), n: i } }));
    expect(Buffer.from(new OtlpTraceSerializer({}, SCOPE).serializeRequest(spans)).equals(Buffer.from(official(spans, {})))).toBe(true);
  });

  it('writes only the own keys of an attribute object, as the official serializer does', () => {
    const attributes = Object.assign(Object.create({ inherited: 'x', 'server.port': 1 }) as Record<string, AttrValue>, { 'http.request.method': 'GET', 'server.port': 8080, '0': 1 });
    const span: SpanRecord = { traceId: '1'.repeat(32), spanId: '2'.repeat(16), sampled: true, name: 'GET', kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes, events: [], status: { code: StatusCode.UNSET } };
    const ser = new OtlpTraceSerializer({}, SCOPE);
    const expected = Buffer.from(official([span], {}));
    expect(Buffer.from(ser.serializeRequest([span])).equals(expected)).toBe(true);
    expect(Buffer.from(ser.encodedSpans.serializeRequest([ser.encodeSpan(span)])!).equals(expected)).toBe(true);
  });

  it('copies nothing from an attribute list whose bytes were overwritten (failed span, earlier batch)', () => {
    // The same attributes after a span whose bytes are written over: a longer name than that
    // span's puts the next span's own bytes where its attributes were.
    const attributes = { 'http.request.method': 'GET', 'server.port': 8080, 'url.path': '/a/b', h: ['x'] };
    const mk = (name: string, events?: SpanRecord['events']): SpanRecord => ({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), sampled: true, name, kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes: { ...attributes }, events: events!, status: { code: StatusCode.OK } });
    const ser = new OtlpTraceSerializer({}, SCOPE);
    const ok = mk('n'.repeat(200), []);
    ser.encodeSpan(mk('a', []));
    expect(() => ser.encodeSpan(mk('a'))).toThrow();
    expect(Buffer.from(ser.encodedSpans.serializeRequest([ser.encodeSpan(ok)])!).equals(Buffer.from(official([ok], {})))).toBe(true);
    ser.serializeRequest([mk('a', [])]);
    expect(Buffer.from(ser.serializeRequest([ok])).equals(Buffer.from(official([ok], {})))).toBe(true);
  });

  it('encodes spans right with more keys than memos are kept for', () => {
    // Windows over 5000 keys, 100 per span (past both bounds), each key always with the same value:
    // memo hits right before and after the memos start over.
    const ser = new OtlpTraceSerializer({}, SCOPE);
    const spans: SpanRecord[] = [];
    for (let i = 0; i < 120; i++) {
      const attributes: Record<string, AttrValue> = { 'http.request.method': 'GET' };
      for (let k = 0; k < 100; k++) {
        const n = (i * 41 + k) % 5000;
        attributes[`http.request.header.x-${n.toString(36)}`] = n % 3 === 0 ? [`v${n}`] : n % 3 === 1 ? `v${n}` : n;
      }
      spans.push({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), sampled: true, name: 'GET', kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes, events: [], status: { code: StatusCode.UNSET } });
    }
    const encoded = spans.map((s) => ser.encodeSpan(s));
    expect(Buffer.from(ser.encodedSpans.serializeRequest(encoded)!).equals(Buffer.from(official(spans, {})))).toBe(true);
  });

  it('writes the fields a backend reads, with their OTLP values', () => {
    const span: SpanRecord = {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      parentSpanId: '00f067aa0ba902b7',
      traceState: 'congo=t61rcWkgMzE',
      sampled: true,
      name: 'GET /pets',
      kind: SpanKind.SERVER,
      startMs: 1_700_000_000_123.456,
      endMs: 1_700_000_000_125.5,
      attributes: { 'http.response.status_code': 200, 'http.request.body': new Uint8Array([1, 2, 3]), ratio: 0.5, ok: true, tags: ['a', 'é'] },
      events: [{ name: 'retry', timeMs: 1_700_000_000_124, attributes: { n: -1 } }],
      status: { code: StatusCode.ERROR, message: 'boom' },
    };
    const bytes = new OtlpTraceSerializer({ 'service.name': 'pets' }, SCOPE).serializeRequest([span, { ...span, parentSpanId: undefined, sampled: false }]);
    const req = ExportTraceServiceRequest.decode(bytes);
    expect(req.resourceSpans).toHaveLength(1);
    const rs = req.resourceSpans[0];
    expect(rs.resource.attributes).toEqual([expect.objectContaining({ key: 'service.name', value: expect.objectContaining({ stringValue: 'pets' }) })]);
    expect(rs.scopeSpans[0].scope).toEqual(expect.objectContaining({ name: 'sidetrace', version: '9.8.7' }));
    const s = rs.scopeSpans[0].spans[0];
    expect(Buffer.from(s.traceId).toString('hex')).toBe(span.traceId);
    expect(Buffer.from(s.spanId).toString('hex')).toBe(span.spanId);
    expect(Buffer.from(s.parentSpanId).toString('hex')).toBe(span.parentSpanId);
    expect(s.traceState).toBe('congo=t61rcWkgMzE');
    expect(s.kind).toBe(2);
    expect(String(s.startTimeUnixNano)).toBe('1700000000123456000');
    expect(String(s.endTimeUnixNano)).toBe('1700000000125500000');
    const attr = (k: string) => s.attributes.find((a: { key: string }) => a.key === k).value;
    expect(Number(attr('http.response.status_code').intValue)).toBe(200);
    expect([...attr('http.request.body').bytesValue]).toEqual([1, 2, 3]);
    expect(attr('ratio').doubleValue).toBe(0.5);
    expect(attr('ok').boolValue).toBe(true);
    expect(attr('tags').arrayValue.values.map((v: { stringValue: string }) => v.stringValue)).toEqual(['a', 'é']);
    expect(s.events[0].name).toBe('retry');
    expect(Number(s.events[0].attributes[0].value.intValue)).toBe(-1);
    expect(s.status).toEqual(expect.objectContaining({ code: 2, message: 'boom' }));
    // sampled | has-is-remote | is-remote; a root span's context is local.
    expect(spanFlags(bytes)).toEqual([0x301, 0x100]);
  });

  it('moves a span whose length needs three varint bytes (> 16 KiB) intact', () => {
    const big = 'x'.repeat(70_000);
    const span: SpanRecord = {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      sampled: true,
      name: 'n',
      kind: SpanKind.CLIENT,
      startMs: 1,
      endMs: 2,
      attributes: { body: big },
      events: [{ name: 'e', timeMs: 1.5, attributes: { big } }],
      status: { code: StatusCode.UNSET },
    };
    const ser = new OtlpTraceSerializer({}, SCOPE);
    // Twice: the second call reuses the grown scratch buffer.
    for (let i = 0; i < 2; i++) expect(Buffer.from(ser.serializeRequest([span, span])).equals(Buffer.from(official([span, span], {})))).toBe(true);
  });

  it('returns a copy: a later batch does not change bytes already handed to the transport', () => {
    const ser = new OtlpTraceSerializer({ a: 'b' }, SCOPE);
    const mk = (name: string): SpanRecord => ({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), sampled: true, name, kind: SpanKind.SERVER, startMs: 1, endMs: 2, attributes: {}, events: [], status: { code: StatusCode.OK } });
    const first = ser.serializeRequest([mk('first')]);
    const snapshot = Buffer.from(first);
    ser.serializeRequest([mk('second')]);
    expect(Buffer.from(first).equals(snapshot)).toBe(true);
  });

  it('an empty batch is an empty request, as with the official serializer', () => {
    expect(new OtlpTraceSerializer({}, SCOPE).serializeRequest([])).toHaveLength(0);
    expect(official([], {})).toHaveLength(0);
  });

  it('deserializes the collector response (partial success included)', () => {
    const bytes = ExportTraceServiceResponse.encode({ partialSuccess: { rejectedSpans: 3, errorMessage: 'too big' } }).finish();
    const res = new OtlpTraceSerializer({}, SCOPE).deserializeResponse(bytes);
    expect(Number(res.partialSuccess?.rejectedSpans)).toBe(3);
    expect(res.partialSuccess?.errorMessage).toBe('too big');
  });
});
