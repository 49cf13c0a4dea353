// The collector's span shape: what an OTLP span becomes once decoded, kept in the store,
// written to JSON lines and served by the viewer API. Plain JSON values only.

/** An attribute value as JSON: OTLP bytes become UTF-8 text when valid, else `{ base64 }`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonAttributes = Record<string, JsonValue>;

export interface StoredEvent {
  name: string;
  timeMs: number;
  attributes: JsonAttributes;
}

export interface StoredSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer (0 unspecified). */
  kind: number;
  /** `service.name` of the span's resource ('unknown_service' when absent). */
  service: string;
  startMs: number;
  endMs: number;
  durationMs: number;
  attributes: JsonAttributes;
  resource: JsonAttributes;
  scope?: string;
  events: StoredEvent[];
  status: { code: number; message?: string };
  /** Status ERROR, or an `error=true` attribute (Jaeger's convention). */
  error: boolean;
}
