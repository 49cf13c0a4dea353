// The trace and span id issued last, with where their bytes are, so the serializer copies those
// bytes rather than decoding the hex back (ids are slices of a pooled hex string, which V8 reads a
// char at a time slowly: ~0.2 µs a span). The node agent (and a proxy between requests) ends a
// span before it issues the next ids, so its span's ids are these. proxy/propagation/ids.ts
// issues ids and fills this in; otlp-serializer.ts reads it.

/** An issued id's hex (empty: none), and its bytes: `bytes[at .. at + hex.length / 2)`. */
export interface IssuedId {
  hex: string;
  bytes: Uint8Array;
  at: number;
}

const NO_BYTES = new Uint8Array(0);

/** The last 16-byte (trace) id issued. */
export const issuedTraceId: IssuedId = { hex: '', bytes: NO_BYTES, at: 0 };
/** The last 8-byte (span) id issued. */
export const issuedSpanId: IssuedId = { hex: '', bytes: NO_BYTES, at: 0 };
