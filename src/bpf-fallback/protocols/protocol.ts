// The contract every protocol of the node agent implements (Pixie's socket_tracer shape): find a
// frame boundary, parse one frame, stitch request frames to response frames into records.
// Parsers are pure over bytes plus the explicit state object they are handed: no sockets, no
// timers, no globals, so tables and split-point fuzzing can drive them directly.

import type { RawHeaders } from '../../proxy/exchange.js';

/** Which way a byte stream flows in protocol terms: client → server, or server → client. */
export type MessageType = 'request' | 'response';

export type ParseResult<F> =
  | { readonly kind: 'needs-more-data' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** Bytes that belong to the protocol but carry nothing to record (e.g. the h2 preface). */
  | { readonly kind: 'ignored'; readonly consumed: number }
  | { readonly kind: 'success'; readonly frame: F; readonly consumed: number };

export const NEEDS_MORE_DATA: ParseResult<never> = Object.freeze({ kind: 'needs-more-data' });

/** A parsed frame with the kernel times (CLOCK_MONOTONIC ns) of its first and last byte. */
export interface TimedFrame<F> {
  frame: F;
  startNs: number;
  endNs: number;
}

export interface TimeWindow {
  fromNs: number;
  toNs: number;
}

export interface BodyChunk {
  data: Buffer;
  tsNs: number;
}

/** buf[at, at + length) as a Buffer over buf's memory: the same view as subarray, made without
 * its species lookup and argument clamping (~15 ns less per record). */
export function payloadView(buf: Buffer, at: number, length: number): Buffer {
  return Buffer.from(buf.buffer, buf.byteOffset + at, length);
}

/** `data`, or a copy when it is a small view of a much larger capture batch it would keep alive. */
export function unpinned(data: Buffer): Buffer {
  return data.buffer.byteLength > 2 * data.length + 4096 ? Buffer.from(data) : data;
}

/** One request/response exchange, as the stitcher hands it to span building. */
export interface HttpRecord {
  protocolVersion: '1.0' | '1.1' | '2';
  method: string;
  target: string;
  requestHeaders: RawHeaders;
  authority?: string;
  /** Kept body chunks (at most the capture limit) and the full size. */
  requestBody: BodyChunk[];
  requestBodySize: number;
  requestTrailers?: RawHeaders;
  /** 0 when no response head was seen. */
  status: number;
  responseHeaders: RawHeaders;
  responseBody: BodyChunk[];
  responseBodySize: number;
  responseTrailers?: RawHeaders;
  startNs: number;
  endNs: number;
  /** Set when the exchange ended abnormally (e.g. 'RST_STREAM:CANCEL', 'connection_closed'). */
  error?: string;
  /** Decoded from a stream first seen mid-way or after lost bytes: fields may be missing. */
  partial?: boolean;
  /** HTTP/2 stream id. */
  streamId?: number;
}

export interface StateOptions {
  /** The stream was first seen after its start (or its beginning was lost). */
  midStream: boolean;
  /** Body bytes kept per message; the rest is only counted. */
  maxBodyBytes: number;
}

export interface Protocol<F, S> {
  readonly name: ProtocolName;
  /**
   * Whether bytes at the very start of a stream look like this protocol's first message of
   * the given type: true, false, or undefined when more bytes are needed to tell.
   */
  detect(type: MessageType, buf: Buffer): boolean | undefined;
  createState(options: StateOptions): S;
  /**
   * Offset (≥ start) of the next plausible frame start in `buf`, or -1: used to resynchronise
   * after lost bytes, a mid-stream start or an invalid frame.
   */
  findFrameBoundary(type: MessageType, buf: Buffer, start: number, state: S): number;
  /**
   * Parses one frame at the start of `buf` (a stream-aligned position); `tsNs` is the kernel
   * time of its first byte (HTTP/1 uses it to find which request a response answers).
   */
  parseFrame(type: MessageType, buf: Buffer, state: S, tsNs?: number): ParseResult<F>;
  /**
   * Optional fast path: the frames, and state changes, parseFrame would give for the frames at
   * the start of mem[from, from + length) that the parser takes without parsing text (HTTP/1: heads
   * that repeat their predecessor, and the Content-Length bodies after them), read in place from
   * a capture batch so that no Buffer view is made for a head. The frames are pushed onto `out`;
   * returns the bytes taken, up to the first ones parseFrame has to parse (0: none, state
   * unchanged). Called only at a stream-aligned position with nothing of this direction waiting
   * to be parsed.
   */
  parseInPlace?(type: MessageType, mem: Buffer, from: number, length: number, state: S, tsNs: number, out: F[]): number;
  /**
   * `length` bytes of this direction were lost. Returns true when the parser absorbed them
   * (e.g. inside a body of known length); false means the caller resynchronises.
   */
  skip(type: MessageType, length: number, state: S): boolean;
  /**
   * Forget partial messages of this direction; the next frame comes from findFrameBoundary.
   * `lost`: kernel-time window in which the lost bytes were sent (whole messages may be among them).
   */
  resync(type: MessageType, state: S, lost?: TimeWindow): void;
  /**
   * Pairs frames into records, pushed onto `out` (the caller's array, which it empties). Consumes
   * what it used from both frame arrays (frames of messages still open stay in `state`). `eof`:
   * the connection closed; flush what can be flushed. The records are new objects, never changed
   * once pushed; parts of them (header lists) may be shared with other records and are read-only
   * for everyone.
   */
  stitch(requests: TimedFrame<F>[], responses: TimedFrame<F>[], state: S, eof: boolean, out: HttpRecord[]): void;
  /**
   * Optional, with parseInPlace: what stitch does with one frame it is handed, for a frame that
   * is never put in a TimedFrame (the connection table's frames taken in place, assembled when
   * stitch would have been handed them, with no frame of their type waiting before them).
   */
  assemble?(type: MessageType, frame: F, startNs: number, endNs: number, state: S): void;
  /** Bytes `state` retains (partial messages, header tables), for the memory bound. */
  retainedBytes(state: S): number;
  /** Responses dropped so far because their request was never captured (cumulative). */
  orphans(state: S): number;
}

export type ProtocolName = 'http1' | 'http2';

