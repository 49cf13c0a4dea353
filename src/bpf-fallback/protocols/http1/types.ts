// HTTP/1.x frames and per-connection state for the agent's parser and stitcher.

import type { RawHeaders } from '../../../proxy/exchange.js';
import type { BodyChunk, ParseResult, TimeWindow } from '../protocol.js';

export type H1Frame = H1RequestHead | H1ResponseHead | H1Body | H1End | H1HeadBody;

export interface H1RequestHead {
  kind: 'request-head';
  method: string;
  target: string;
  version: '1.0' | '1.1';
  headers: RawHeaders;
  /** The message ends with its head (no body). */
  complete: boolean;
}

export interface H1ResponseHead {
  kind: 'response-head';
  status: number;
  version: '1.0' | '1.1';
  headers: RawHeaders;
  /** A 1xx other than 101: the final response follows. */
  interim: boolean;
  complete: boolean;
}

export interface H1Body {
  kind: 'body';
  data: Buffer;
  /** The last body bytes of a Content-Length message. */
  last: boolean;
  /** Body bytes lost before this frame (absorbed by skip), counted into the body size. */
  lost: number;
}

/**
 * A head and the Content-Length body bytes right after it in the same capture event, as one
 * frame (parseH1InPlace): what its head and body frames would say, for one frame fewer per
 * message. No bytes were lost between them.
 */
export interface H1HeadBody {
  kind: 'head-body';
  head: H1RequestHead | H1ResponseHead;
  data: Buffer;
  /** The body ends with these bytes. */
  last: boolean;
}

/** End of a chunked message, with its trailers. */
export interface H1End {
  kind: 'end';
  trailers?: RawHeaders;
  lost: number;
}

export type H1Mode = 'head' | 'fixed' | 'fixed-lost-end' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'until-eof' | 'opaque';

export interface H1DirState {
  mode: H1Mode;
  /** Bytes left in the current Content-Length body or chunk. */
  remaining: number;
  /** Lost bytes absorbed since the last frame. */
  lost: number;
}

export interface H1Message {
  head: H1RequestHead | H1ResponseHead;
  startNs: number;
  endNs: number;
  body: BodyChunk[];
  kept: number;
  size: number;
  trailers?: RawHeaders;
  /** Bytes of this message were lost (its body is incomplete). */
  partial: boolean;
}

export interface H1State {
  request: H1DirState;
  response: H1DirState;
  /** Methods of requests whose responses have not been parsed yet, oldest first: a response's framing depends on them (HEAD, CONNECT). */
  pendingMethods: string[];
  /** The kernel time each of pendingMethods' requests started (parallel to it). */
  pendingStarts: number[];
  maxBodyBytes: number;
  midStream: boolean;
  currentRequest?: H1Message;
  currentResponse?: H1Message;
  requests: H1Message[];
  responses: H1Message[];
  /** Responses dropped because no request could be theirs (lost request bytes). */
  orphanResponses: number;
  /** Response bytes were lost: the next response answers the latest request before it. */
  responseResynced: boolean;
  /** The parser's copy of responseResynced: the next response head takes the latest request's method. */
  methodsResynced: boolean;
  /** When request bytes were lost (whole requests may be among them), oldest first. */
  requestGaps: TimeWindow[];
  /** Text of the last request and response head parsed, when small: a head that repeats it is cached. */
  lastRequestText?: string;
  lastResponseText?: string;
  /** The last request and response heads that repeated, by their bytes: see H1CachedHead. */
  lastRequestHead?: H1CachedHead;
  lastResponseHead?: H1CachedHead;
}

/** A head's body framing: chunked, a Content-Length, none (no framing header) or a bad Content-Length. */
export type H1Framing = 'chunked' | 'none' | 'invalid' | number;

/**
 * A head's parse, reused while the heads of its direction keep the same bytes: a keep-alive
 * client repeats its request head and a server its response head (its Date changes once a
 * second), so most heads are parsed once. Made on a head's first repeat and dropped at the first
 * head that differs, so heads that all differ (per-request ids) cost no copies and no byte
 * compares, only a string compare against the last head's text. Everything kept depends on the
 * bytes alone, and a repeat returns the same result object, frame and header list: consumers
 * (the stitcher, the records it makes, span building) only read them, never mutate.
 */
export interface H1CachedHead {
  /** The head's bytes, its final CRLFCRLF included: a head that starts with them is this one. */
  bytes: Uint8Array;
  /** The same bytes as 32-bit words, once per alignment: `words[a]` holds them from its byte `a`
   * on, so a head at any offset is compared a word at a time (see parse.ts repeats). */
  words: Int32Array[];
  /** Request heads: the method (a known method), for the response's framing. */
  method: string;
  /** Response heads: the status. */
  status: number;
  framing: H1Framing;
  /** The parse result when the message ends with its head (requests: the only one). */
  done: H1HeadResult;
  /** Response heads: the result when a body follows (the answered request's method decides). */
  open: H1HeadResult | undefined;
}

/** A head parsed: what the head cache hands out again. */
export type H1HeadResult = { readonly kind: 'success'; readonly frame: H1RequestHead | H1ResponseHead; readonly consumed: number };
