// SpanRecord → the SDK's ReadableSpan, so the official OTLP serializer can encode our spans.
// Runs only when a batch is exported, never on the request path.

import type { Attributes, HrTime, SpanContext, SpanStatus } from '@opentelemetry/api';
import { TraceState, type InstrumentationScope } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import type { SpanRecord } from './span.js';
import { VERSION } from './version.js';

const INSTRUMENTATION_SCOPE: InstrumentationScope = { name: 'sidetrace', version: VERSION };

export function otelResource(attributes: Record<string, string>): Resource {
  return resourceFromAttributes(attributes);
}

// The API's SpanKind starts at INTERNAL = 0; SpanRecord uses OTLP's numbering (INTERNAL = 1).
const KIND_OFFSET = 1;
const SAMPLED = 1;

/**
 * Attribute values are passed through as they are: otlp-transformer 0.223's protobuf writer
 * encodes a Uint8Array as AnyValue.bytes_value (common-serializer writeAnyValue, field 7), which
 * the API's Attributes type does not admit, hence the casts.
 */
export function toReadableSpan(rec: SpanRecord, resource: Resource, scope: InstrumentationScope = INSTRUMENTATION_SCOPE): ReadableSpan {
  const traceFlags = rec.sampled ? SAMPLED : 0;
  const ctx: SpanContext = {
    traceId: rec.traceId,
    spanId: rec.spanId,
    traceFlags,
    traceState: rec.traceState ? new TraceState(rec.traceState) : undefined,
  };
  const startTime = msToHrTime(rec.startMs);
  const endTime = msToHrTime(rec.endMs);
  const events: TimedEvent[] = new Array(rec.events.length);
  for (let i = 0; i < rec.events.length; i++) {
    const e = rec.events[i];
    events[i] = { name: e.name, time: msToHrTime(e.timeMs), attributes: e.attributes as unknown as Attributes, droppedAttributesCount: 0 };
  }
  return {
    name: rec.name,
    kind: rec.kind - KIND_OFFSET,
    spanContext: () => ctx,
    // A sidecar's parent always arrives in a header, so it is remote.
    parentSpanContext: rec.parentSpanId ? { traceId: rec.traceId, spanId: rec.parentSpanId, traceFlags, isRemote: true } : undefined,
    startTime,
    endTime,
    // StatusCode and the API's SpanStatusCode share their values (UNSET 0, OK 1, ERROR 2).
    status: rec.status as unknown as SpanStatus,
    attributes: rec.attributes as unknown as Attributes,
    links: [],
    events,
    duration: msToHrTime(Math.max(0, rec.endMs - rec.startMs)),
    ended: true,
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/**
 * Fractional epoch ms → [s, ns], rounded to the µs that nowMs() actually resolves. core's
 * millisToHrTime keeps the float's noise (…123.456 ms → …123456055 ns); whole µs since the epoch
 * (~1.8e15) are exact in a double, so this is exact.
 */
function msToHrTime(ms: number): HrTime {
  const us = Math.round(ms * 1000);
  const s = Math.floor(us / 1e6);
  return [s, (us - s * 1e6) * 1000];
}
