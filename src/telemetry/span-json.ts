// SpanRecord ⇄ one JSON line: the format of the console exporter and of the admin /tap stream.
// Bytes attribute values become `{ "base64": "..." }`, as in the collector's model, so a reader
// can tell a body from a string.

import type { AttrValue, Attributes, SpanRecord } from './span.js';

export interface JsonBytes {
  base64: string;
}
export type JsonAttrValue = Exclude<AttrValue, Uint8Array> | JsonBytes;

/** One line, without the trailing newline. */
export function spanToJson(span: SpanRecord): string {
  return JSON.stringify({
    traceId: span.traceId,
    spanId: span.spanId,
    parentSpanId: span.parentSpanId,
    traceState: span.traceState,
    sampled: span.sampled,
    name: span.name,
    kind: span.kind,
    startMs: span.startMs,
    endMs: span.endMs,
    attributes: attrsToJson(span.attributes),
    events: span.events.map((e) => ({ name: e.name, timeMs: e.timeMs, attributes: attrsToJson(e.attributes) })),
    status: span.status,
    resource: span.resource === undefined ? undefined : { attributes: attrsToJson(span.resource.attributes) },
  });
}

/** The inverse of spanToJson, for tap clients. Throws on a line that is not a span. */
export function spanFromJson(line: string): SpanRecord {
  const o = JSON.parse(line) as SpanRecord | null;
  if (typeof o !== 'object' || o === null || typeof o.traceId !== 'string' || typeof o.spanId !== 'string') {
    throw new Error('not a span line: traceId/spanId missing');
  }
  o.attributes = attrsFromJson(o.attributes as unknown as Record<string, JsonAttrValue>);
  o.events ??= [];
  for (const e of o.events) e.attributes = attrsFromJson(e.attributes as unknown as Record<string, JsonAttrValue>);
  if (o.resource !== undefined) o.resource = { attributes: attrsFromJson(o.resource.attributes as unknown as Record<string, JsonAttrValue>) };
  return o;
}

function attrsToJson(attrs: Attributes): Record<string, JsonAttrValue> {
  const out: Record<string, JsonAttrValue> = {};
  for (const k in attrs) {
    const v = attrs[k];
    out[k] = v instanceof Uint8Array ? { base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') } : v;
  }
  return out;
}

function attrsFromJson(attrs: Record<string, JsonAttrValue> | undefined): Attributes {
  const out: Attributes = {};
  for (const k in attrs ?? {}) {
    const v = attrs![k];
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) ? Buffer.from(v.base64, 'base64') : v;
  }
  return out;
}
