// The span record: the one shape every producer (proxy, agent) hands to export.
// Built cheaply on the request path; converted to OTLP only in the export batch.

/** Attribute values as OTLP carries them. Uint8Array becomes an OTLP bytes value. */
export type AttrValue = string | number | boolean | Uint8Array | string[];
export type Attributes = Record<string, AttrValue>;

export const enum SpanKind {
  INTERNAL = 1,
  SERVER = 2,
  CLIENT = 3,
}

export const enum StatusCode {
  UNSET = 0,
  OK = 1,
  ERROR = 2,
}

export interface SpanEvent {
  name: string;
  /** Unix epoch milliseconds, fractional (µs precision). */
  timeMs: number;
  attributes: Attributes;
}

export interface SpanRecord {
  /** 32 lowercase hex chars. */
  traceId: string;
  /** 16 lowercase hex chars. */
  spanId: string;
  /** 16 lowercase hex chars, absent for a root span. */
  parentSpanId?: string;
  /** W3C tracestate to carry on the span, as received (already validated). */
  traceState?: string;
  /** Whether the remote parent was sampled/ the trace flags' sampled bit. */
  sampled: boolean;
  name: string;
  kind: SpanKind;
  /** Unix epoch milliseconds, fractional. */
  startMs: number;
  endMs: number;
  attributes: Attributes;
  events: SpanEvent[];
  status: { code: StatusCode; message?: string };
  /**
   * The span's own OTLP resource, complete (it replaces the exporter's), when the span is not the
   * exporting process's own: the node agent traces many processes, each a resource of its own
   * (service.name, process.*, container.*, k8s.*). Absent: the exporter's resource.
   */
  resource?: SpanResource;
}

/**
 * A span's own resource. The exporter encodes each object once, so a producer reuses one object
 * for all spans of an entity.
 */
export interface SpanResource {
  readonly attributes: Readonly<Attributes>;
}

/** Where finished spans go. Must never throw and never block: a full queue drops and counts. */
export interface SpanSink {
  submit(span: SpanRecord): void;
  /**
   * submit() keeps no reference to a bytes (Uint8Array) attribute value shorter than this: it has
   * copied it when it returns (the OTLP exporter encodes the span there). A producer may then hand
   * over a view into memory it must not keep alive (a socket read, a capture batch) uncopied.
   * Absent: 0, any bytes value may be kept.
   */
  readonly copiesBytesBelow?: number;
}

/** Unix epoch milliseconds with sub-millisecond precision, without allocating a Date. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
