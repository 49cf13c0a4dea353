// Spans from captured exchanges, made exactly as the proxy makes them: each stitched record is
// replayed into the proxy's Exchange (policy, trace context, headers, bodies, redaction, gRPC
// messages), with the kernel's times and the process/container identity added. The process that
// read the request is the server (SERVER span, inbound); the one that wrote it, the client.
//
// The exchange stamps its own clock and knows nothing of processes, so the replayer wraps the
// sink and tap it hands spans to: replay is synchronous, so the span that comes out during a
// replay is that record's, and gets its kernel times, identity and scheme there.

import type { ExchangeDeps, ExchangeFactory, TapHub } from '../proxy/exchange.js';
import { createExchangeFactory } from '../proxy/exchange-impl.js';
import type { Attributes, SpanRecord, SpanSink } from '../telemetry/span.js';
import type { KernelClock } from './clock.js';
import type { ConnView } from './conn-table.js';
import { processAttributes, type PodLookup, type ProcessInfo } from './process-info.js';
import type { HttpRecord } from './protocols/protocol.js';

export interface SpanReplayerDeps extends Omit<ExchangeDeps, 'sink' | 'tap'> {
  sink: SpanSink;
  tap?: TapHub;
  clock: KernelClock;
  process: (pid: number, comm: string) => ProcessInfo;
  pods?: PodLookup;
}

interface Stamp {
  startMs: number;
  endMs: number;
  attributes: Attributes;
  https: boolean;
  record: HttpRecord;
  stamped?: SpanRecord;
}

export class SpanReplayer {
  private current: Stamp | undefined;
  private readonly exchanges: ExchangeFactory;

  constructor(private readonly deps: SpanReplayerDeps) {
    const sink: SpanSink = { submit: (span) => deps.sink.submit(this.stamp(span)) };
    const tap = deps.tap;
    this.exchanges = createExchangeFactory({
      serviceName: deps.serviceName,
      policy: deps.policy,
      metrics: deps.metrics,
      sink,
      tap:
        tap === undefined
          ? undefined
          : {
              get active() {
                return tap.active;
              },
              publish: (span) => tap.publish(this.stamp(span)),
            },
    });
  }

  replay(conn: ConnView, rec: HttpRecord): void {
    const { clock } = this.deps;
    const server = conn.requestDir === 'ingress';
    const attributes: Attributes = processAttributes(conn.pid, conn.comm, this.deps.process(conn.pid, conn.comm), this.deps.pods);
    attributes['sidetrace.capture.source'] = conn.source === 'tls' ? 'ebpf-tls' : 'ebpf';
    if (conn.local.address !== '') {
      attributes['network.local.address'] = conn.local.address;
      attributes['network.local.port'] = conn.local.port;
    }
    if (rec.partial) attributes['sidetrace.capture.partial'] = true;
    if (rec.streamId !== undefined) attributes['sidetrace.http2.stream_id'] = rec.streamId;
    this.current = { startMs: clock.toEpochMs(rec.startNs), endMs: clock.toEpochMs(rec.endNs), attributes, https: conn.source === 'tls', record: rec };
    try {
      const ex = this.exchanges.start({
        direction: server ? 'inbound' : 'outbound',
        protocolVersion: rec.protocolVersion,
        method: rec.method,
        target: rec.target,
        headers: rec.requestHeaders,
        authority: rec.authority,
        client: server ? conn.remote : conn.local,
        server: server ? conn.local : conn.remote,
      });
      for (const c of rec.requestBody) ex.requestBody(c.data);
      ex.requestEnd(rec.requestTrailers);
      if (isTunnel(rec)) {
        // Upgrades and CONNECT end at the handshake, as in the proxy; what follows is opaque.
        ex.tunnelEstablished(rec.status, rec.responseHeaders);
        return;
      }
      if (rec.status > 0) ex.responseHead(rec.status, rec.responseHeaders);
      for (const c of rec.responseBody) ex.responseBody(c.data);
      if (rec.error !== undefined) ex.fail(rec.error);
      else ex.responseEnd(rec.responseTrailers);
    } finally {
      this.current = undefined;
    }
  }

  /** Puts the record's kernel times and identity on the span made during its replay (once). */
  private stamp(span: SpanRecord): SpanRecord {
    const s = this.current;
    if (s === undefined || s.stamped === span) return span;
    s.stamped = span;
    // Message events were stamped during the replay: keep their order, move them into the span.
    const shift = s.endMs - span.endMs;
    for (const e of span.events) e.timeMs = Math.min(s.endMs, Math.max(s.startMs, e.timeMs + shift));
    span.startMs = s.startMs;
    span.endMs = s.endMs;
    Object.assign(span.attributes, s.attributes);
    if (s.https) {
      span.attributes['url.scheme'] = 'https';
      const full = span.attributes['url.full'];
      if (typeof full === 'string' && full.startsWith('http://')) span.attributes['url.full'] = 'https://' + full.slice(7);
    }
    // The exchange saw only the kept body bytes; the record knows the full sizes.
    bodySize(span.attributes, 'http.request.body.', s.record.requestBodySize);
    bodySize(span.attributes, 'http.response.body.', s.record.responseBodySize);
    return span;
  }
}

function isTunnel(rec: HttpRecord): boolean {
  return rec.status === 101 || (rec.method === 'CONNECT' && rec.status >= 200 && rec.status < 300);
}

function bodySize(attrs: Attributes, prefix: string, size: number): void {
  const seen = attrs[prefix + 'size'];
  if (size === 0 || (typeof seen === 'number' && seen >= size)) return;
  attrs[prefix + 'size'] = size;
  if (attrs[prefix + 'content'] !== undefined) attrs[prefix + 'truncated'] = true;
}
