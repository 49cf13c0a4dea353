// Spans from captured exchanges, made exactly as the proxy makes them: each stitched record is
// replayed into the proxy's Exchange (policy, trace context, headers, bodies, redaction, gRPC
// messages), with the kernel's times and the process/container identity added. The process that
// read the request is the server (SERVER span, inbound); the one that wrote it, the client.

import type { Exchange, ExchangeFactory, ExchangeStart, RawHeaders } from '../proxy/exchange.js';
import type { Attributes } from '../telemetry/span.js';
import type { KernelClock } from './clock.js';
import type { ConnView } from './conn-table.js';
import { processAttributes, type ProcessInfo } from './process-info.js';
import type { HttpRecord } from './protocols/protocol.js';

export interface SpanReplayDeps {
  exchanges: ExchangeFactory;
  clock: KernelClock;
  process: (pid: number, comm: string) => ProcessInfo;
}

/** Kernel times and extra attributes (the exchange contract's optional agent fields). */
interface TimedStart extends ExchangeStart {
  startMs?: number;
  attributes?: Attributes;
}
interface TimedExchange extends Exchange {
  requestBody(chunk: Buffer, atMs?: number): void;
  responseBody(chunk: Buffer, atMs?: number): void;
  responseEnd(trailers?: RawHeaders, atMs?: number): void;
  fail(errorType: string, message?: string, atMs?: number): void;
}

export function replayRecord(deps: SpanReplayDeps, conn: ConnView, rec: HttpRecord): void {
  const { clock } = deps;
  const server = conn.requestDir === 'ingress';
  const attributes: Attributes = processAttributes(conn.pid, conn.comm, deps.process(conn.pid, conn.comm));
  attributes['sidetrace.capture.source'] = conn.source === 'tls' ? 'ebpf-tls' : 'ebpf';
  if (conn.local.address !== '') {
    attributes['network.local.address'] = conn.local.address;
    attributes['network.local.port'] = conn.local.port;
  }
  if (rec.partial) attributes['sidetrace.capture.partial'] = true;
  if (rec.streamId !== undefined) attributes['sidetrace.http2.stream_id'] = rec.streamId;
  const start: TimedStart = {
    direction: server ? 'inbound' : 'outbound',
    protocolVersion: rec.protocolVersion,
    method: rec.method,
    target: rec.target,
    headers: rec.requestHeaders,
    authority: rec.authority,
    client: server ? conn.remote : conn.local,
    server: server ? conn.local : conn.remote,
    startMs: clock.toEpochMs(rec.startNs),
    attributes,
  };
  const ex = deps.exchanges.start(start) as TimedExchange;
  for (const c of rec.requestBody) ex.requestBody(c.data, clock.toEpochMs(c.tsNs));
  ex.requestEnd(rec.requestTrailers);
  if (rec.status > 0) ex.responseHead(rec.status, rec.responseHeaders);
  for (const c of rec.responseBody) ex.responseBody(c.data, clock.toEpochMs(c.tsNs));
  const endMs = clock.toEpochMs(rec.endNs);
  if (rec.error !== undefined) ex.fail(rec.error, undefined, endMs);
  else ex.responseEnd(rec.responseTrailers, endMs);
}
