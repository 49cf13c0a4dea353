// The contract between protocol handlers (h1/, h2/) and capture + tracing.
// A handler forwards bytes itself and only *tells* the exchange what passed; the exchange
// never sits between the two sockets, so capture can never hold up or alter forwarding.

import type { Attributes, SpanRecord, SpanResource, SpanSink } from '../telemetry/span.js';
import type { ProxyMetrics } from './proxy-metrics.js';
import type { CompiledPolicy } from '../policy/types.js';
import type { HeadMemo } from './exchange-impl.js';

/** Headers exactly as received: [name0, value0, name1, value1, ...], original case and order. */
export type RawHeaders = string[];

/** gRPC by content type; media types are case-insensitive (RFC 9110 §8.3.1). */
export function isGrpcContentType(ct: string): boolean {
  return ct.length >= 16 && ct.slice(0, 16).toLowerCase() === 'application/grpc';
}

export type Direction = 'inbound' | 'outbound';

export interface Endpoint {
  address: string;
  port: number;
}

export interface ExchangeStart {
  /** inbound → SERVER span, outbound → CLIENT span. */
  direction: Direction;
  /** network.protocol.version: '1.0', '1.1' or '2'. */
  protocolVersion: '1.0' | '1.1' | '2';
  method: string;
  /** Request target as sent: path plus optional `?query` (origin form), or absolute/authority form. */
  target: string;
  headers: RawHeaders;
  /** Host header or :authority. */
  authority?: string;
  /** Downstream peer (the caller). */
  client: Endpoint;
  /** Where the request is forwarded to. */
  server: Endpoint;
  /**
   * For exchanges replayed after the fact (the node agent, from kernel timestamps): when the
   * request started, epoch ms. Default: now. The optional `atMs` arguments below do the same.
   */
  startMs?: number;
  /** url.scheme; default 'http'. The agent sets 'https' for TLS plaintext it captured. */
  scheme?: 'http' | 'https';
  /** Extra span attributes (the agent's process and container identity). */
  attributes?: Attributes;
  /** The span's own resource (SpanRecord.resource): the agent's traced process. */
  resource?: SpanResource;
  /**
   * For replayed exchanges whose parser hands back the same RawHeaders array for a repeated head
   * (the agent's HTTP/1): one HeadMemo per connection, given with each of its exchanges, keeps
   * what was derived from its last heads for the next. Such header arrays must then never change
   * once handed over; the spans built share attribute values (read-only once submitted).
   */
  heads?: HeadMemo;
}

export interface Exchange {
  /**
   * Trace headers the handler must put on the forwarded request, replacing any incoming
   * header of the same name (case-insensitive). Lowercase names. Empty when the route has
   * spans off: then incoming context is forwarded untouched.
   */
  readonly forwardHeaders: ReadonlyArray<readonly [string, string]>;
  /** Names (lowercase) of incoming headers the handler must drop because forwardHeaders replace them. */
  readonly replacesHeaders: ReadonlySet<string>;
  requestBody(chunk: Buffer, atMs?: number): void;
  requestEnd(trailers?: RawHeaders): void;
  /** Final (non-1xx) response head. Interim 1xx responses are not reported. */
  responseHead(status: number, headers: RawHeaders): void;
  responseBody(chunk: Buffer, atMs?: number): void;
  /** Normal completion: the response was fully forwarded. Ends the span. */
  responseEnd(trailers?: RawHeaders, atMs?: number): void;
  /**
   * Abnormal completion (client abort, upstream reset/refused, protocol error, h2 RST_STREAM).
   * `errorType` becomes `error.type` (e.g. 'ECONNREFUSED', 'client_abort', 'RST_STREAM:CANCEL').
   * Ends the span. Calls after the span ended are ignored.
   */
  fail(errorType: string, message?: string, atMs?: number): void;
  /** For upgrades (101) and CONNECT tunnels: end the span at the handshake; bytes after are opaque. */
  tunnelEstablished(status: number, headers: RawHeaders, atMs?: number): void;
}

/**
 * Records nothing and leaves trace context untouched: for routes with spans off, and what a
 * handler falls back to when starting an exchange fails, so forwarding never depends on capture.
 */
export const PASSIVE_EXCHANGE: Exchange = Object.freeze({
  forwardHeaders: Object.freeze([]) as ReadonlyArray<readonly [string, string]>,
  replacesHeaders: new Set<string>() as ReadonlySet<string>,
  requestBody() {},
  requestEnd() {},
  responseHead() {},
  responseBody() {},
  responseEnd() {},
  fail() {},
  tunnelEstablished() {},
});

export interface ExchangeFactory {
  start(start: ExchangeStart): Exchange;
}

export interface ExchangeDeps {
  /** Returns the policy in force now (it can change live). */
  policy: () => CompiledPolicy;
  sink: SpanSink;
  metrics: ProxyMetrics;
  tap?: TapHub;
}

/** Live tap: subscribers see every finished exchange, kept by sampling or not. */
export interface TapHub {
  /** Cheap check so the hot path builds nothing for tap when nobody listens. */
  readonly active: boolean;
  publish(span: SpanRecord): void;
}
