// Turns an OTLP ExportTraceServiceRequest (protobuf bytes) into StoredSpans, using the
// static code generated from the official OTLP protos (otlp-proto's root.js).

import { createRequire } from 'node:module';
import { StatusCode } from '../telemetry/span.js';
import type { JsonAttributes, JsonValue, StoredEvent, StoredSpan } from './model.js';

// root.js is CommonJS without usable types (`export = Root`); the interfaces below declare
// only the fields the collector reads.
interface LongLike {
  low: number;
  high: number;
  toNumber(): number;
}
type Int64 = number | LongLike | null | undefined;
interface PbAnyValue {
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: Int64;
  doubleValue?: number | null;
  arrayValue?: { values?: PbAnyValue[] | null } | null;
  kvlistValue?: { values?: PbKeyValue[] | null } | null;
  bytesValue?: Uint8Array | null;
}
interface PbKeyValue {
  key?: string | null;
  value?: PbAnyValue | null;
}
interface PbSpan {
  traceId?: Uint8Array | null;
  spanId?: Uint8Array | null;
  parentSpanId?: Uint8Array | null;
  name?: string | null;
  kind?: number | null;
  startTimeUnixNano?: Int64;
  endTimeUnixNano?: Int64;
  attributes?: PbKeyValue[] | null;
  events?: { timeUnixNano?: Int64; name?: string | null; attributes?: PbKeyValue[] | null }[] | null;
  status?: { code?: number | null; message?: string | null } | null;
}
interface PbRequest {
  resourceSpans?: {
    resource?: { attributes?: PbKeyValue[] | null } | null;
    scopeSpans?: { scope?: { name?: string | null } | null; spans?: PbSpan[] | null }[] | null;
  }[] | null;
}
interface PbType<T> {
  decode(buf: Uint8Array): T;
  encode(msg: object): { finish(): Uint8Array };
  create(props?: object): object;
}
interface OtlpRoot {
  opentelemetry: {
    proto: {
      collector: {
        trace: {
          v1: {
            ExportTraceServiceRequest: PbType<PbRequest>;
            ExportTraceServiceResponse: PbType<object>;
          };
        };
      };
    };
  };
}

const require = createRequire(import.meta.url);
const root = require('otlp-proto/build/src/generated/root.js') as OtlpRoot;
const traceV1 = root.opentelemetry.proto.collector.trace.v1;

/** Raised for bytes that are not an ExportTraceServiceRequest. */
export class OtlpDecodeError extends Error {
  readonly code = 'ST_OTLP_MALFORMED';
  constructor(detail: string) {
    super(`malformed OTLP ExportTraceServiceRequest: ${detail}`);
    this.name = 'OtlpDecodeError';
  }
}

export interface DecodedBatch {
  spans: StoredSpan[];
  /** Spans dropped for invalid ids; reported back as OTLP partial success. */
  rejected: number;
  rejectReason?: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeExportRequest(buf: Uint8Array): DecodedBatch {
  let req: PbRequest;
  try {
    req = traceV1.ExportTraceServiceRequest.decode(buf);
  } catch (err) {
    throw new OtlpDecodeError((err as Error).message);
  }
  const spans: StoredSpan[] = [];
  let rejected = 0;
  let rejectReason: string | undefined;
  for (const rs of req.resourceSpans ?? []) {
    const resource = toAttributes(rs.resource?.attributes);
    const sn = resource['service.name'];
    const service = typeof sn === 'string' && sn !== '' ? sn : 'unknown_service';
    for (const ss of rs.scopeSpans ?? []) {
      const scope = ss.scope?.name || undefined;
      for (const s of ss.spans ?? []) {
        const traceId = hex(s.traceId);
        const spanId = hex(s.spanId);
        if (traceId.length !== 32 || /^0+$/.test(traceId) || spanId.length !== 16 || /^0+$/.test(spanId)) {
          rejected++;
          rejectReason = `span "${s.name ?? ''}": trace_id must be 16 bytes and span_id 8 bytes, not all zero (got ${traceId.length / 2} and ${spanId.length / 2})`;
          continue;
        }
        const parent = hex(s.parentSpanId);
        const startNs = nanos(s.startTimeUnixNano);
        const endNs = nanos(s.endTimeUnixNano);
        const startMs = nsToMs(startNs);
        // From the exact difference: epoch nanoseconds do not fit a double.
        const durationMs = endNs > startNs ? Number(endNs - startNs) / 1e6 : 0;
        const attributes = toAttributes(s.attributes);
        const statusCode = s.status?.code ?? 0;
        const span: StoredSpan = {
          traceId,
          spanId,
          name: s.name ?? '',
          kind: s.kind ?? 0,
          service,
          startMs,
          endMs: startMs + durationMs,
          durationMs,
          attributes,
          resource,
          events: (s.events ?? []).map(
            (e): StoredEvent => ({ name: e.name ?? '', timeMs: nsToMs(nanos(e.timeUnixNano)), attributes: toAttributes(e.attributes) }),
          ),
          status: s.status?.message ? { code: statusCode, message: s.status.message } : { code: statusCode },
          error: statusCode === StatusCode.ERROR || attributes['error'] === true || attributes['error'] === 'true',
        };
        if (parent.length === 16 && !/^0+$/.test(parent)) span.parentSpanId = parent;
        if (scope) span.scope = scope;
        spans.push(span);
      }
    }
  }
  return rejectReason === undefined ? { spans, rejected } : { spans, rejected, rejectReason };
}

/** The protobuf ExportTraceServiceResponse, with partial success when spans were rejected. */
export function encodeExportResponse(rejected: number, message?: string): Buffer {
  const props = rejected > 0 ? { partialSuccess: { rejectedSpans: rejected, errorMessage: message ?? '' } } : {};
  return Buffer.from(traceV1.ExportTraceServiceResponse.encode(traceV1.ExportTraceServiceResponse.create(props)).finish());
}

function hex(b: Uint8Array | null | undefined): string {
  return b && b.length ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') : '';
}

function int64(v: Int64): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

function nanos(v: Int64): bigint {
  if (v == null) return 0n;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}

/** Milliseconds with microsecond precision (what a double holds exactly for epoch times). */
function nsToMs(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

function toAttributes(kvs: PbKeyValue[] | null | undefined): JsonAttributes {
  const out: JsonAttributes = {};
  if (!kvs) return out;
  for (const kv of kvs) if (kv.key) out[kv.key] = toJson(kv.value);
  return out;
}

function toJson(v: PbAnyValue | null | undefined): JsonValue {
  if (!v) return null;
  // protobufjs leaves unset oneof members as null/undefined, so test each in turn.
  if (v.stringValue != null) return v.stringValue;
  if (v.boolValue != null) return v.boolValue;
  if (v.intValue != null) return int64(v.intValue);
  if (v.doubleValue != null) return v.doubleValue;
  if (v.arrayValue != null) return (v.arrayValue.values ?? []).map(toJson);
  if (v.kvlistValue != null) return toAttributes(v.kvlistValue.values);
  if (v.bytesValue != null) {
    try {
      return utf8.decode(v.bytesValue);
    } catch {
      return { base64: Buffer.from(v.bytesValue).toString('base64') };
    }
  }
  return null;
}
