// Spans from captured exchanges, made exactly as the proxy makes them: each stitched record is
// replayed into the proxy's Exchange (policy, trace context, headers, bodies, redaction, gRPC
// messages) with the kernel's times, the process/container identity and the scheme, through the
// exchange contract's fields for replayed exchanges. The process that read the request is the
// server (SERVER span, inbound); the one that wrote it, the client.

import type { ExchangeDeps, ExchangeFactory, TapHub } from '../proxy/exchange.js';
import { createExchangeFactory, REQUEST_BODY, RESPONSE_BODY, type BodyKeys } from '../proxy/exchange-impl.js';
import type { Attributes, SpanRecord, SpanSink } from '../telemetry/span.js';
import type { KernelClock } from './clock.js';
import type { ConnView } from './conn-table.js';
import { processAttributes, type PodLookup, type ProcessInfo } from './process-info.js';
import type { HttpRecord } from './protocols/protocol.js';

export interface SpanReplayerDeps extends ExchangeDeps {
  clock: KernelClock;
  process: (pid: number, comm: string) => ProcessInfo;
  pods?: PodLookup;
}

/** A connection's identity attributes, rebuilt when what they were made from changes. */
interface IdentityEntry {
  info: ProcessInfo;
  pod: unknown;
  source: ConnView['source'];
  attributes: Attributes;
}

export class SpanReplayer {
  private readonly exchanges: ExchangeFactory;
  /** Per connection: the exchange only reads `attributes`, so one object serves all its records. */
  private readonly identities = new WeakMap<ConnView, IdentityEntry>();
  /** The record being replayed: replay is synchronous, so a span built now is this record's. */
  private current: HttpRecord | undefined;

  constructor(private readonly deps: SpanReplayerDeps) {
    // The exchange sees only the body bytes the kernel copied; the record knows the full sizes,
    // its stream id and whether it is partial, put on the span where it leaves the exchange
    // (sink and tap).
    const sink: SpanSink = { submit: (span) => deps.sink.submit(this.sizes(span)) };
    const tap = deps.tap;
    const wrappedTap: TapHub | undefined =
      tap === undefined
        ? undefined
        : {
            get active() {
              return tap.active;
            },
            publish: (span) => tap.publish(this.sizes(span)),
          };
    this.exchanges = createExchangeFactory({ ...deps, sink, tap: wrappedTap });
  }

  replay(conn: ConnView, rec: HttpRecord): void {
    const { clock } = this.deps;
    const server = conn.requestDir === 'ingress';
    const attributes = this.identity(conn);
    this.current = rec;
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
        startMs: clock.toEpochMs(rec.startNs),
        scheme: conn.source === 'tls' ? 'https' : 'http',
        attributes,
      });
      for (const c of rec.requestBody) ex.requestBody(c.data, clock.toEpochMs(c.tsNs));
      ex.requestEnd(rec.requestTrailers);
      const endMs = clock.toEpochMs(rec.endNs);
      if (isTunnel(rec)) {
        // Upgrades and CONNECT end at the handshake, as in the proxy; what follows is opaque.
        ex.tunnelEstablished(rec.status, rec.responseHeaders, endMs);
        return;
      }
      if (rec.status > 0) ex.responseHead(rec.status, rec.responseHeaders);
      for (const c of rec.responseBody) ex.responseBody(c.data, clock.toEpochMs(c.tsNs));
      if (rec.error !== undefined) ex.fail(rec.error, undefined, endMs);
      else ex.responseEnd(rec.responseTrailers, endMs);
    } finally {
      this.current = undefined;
    }
  }

  private identity(conn: ConnView): Attributes {
    const info = this.deps.process(conn.pid, conn.comm);
    const podUid = info.cgroup?.podUid;
    // Pod names can arrive after a connection's first span (the pod list is fetched async).
    const pod = podUid === undefined ? undefined : this.deps.pods?.(podUid);
    const cached = this.identities.get(conn);
    if (cached !== undefined && cached.info === info && cached.pod === pod && cached.source === conn.source) return cached.attributes;
    const attributes = processAttributes(conn.pid, conn.comm, info, this.deps.pods);
    attributes['sidetrace.capture.source'] = conn.source === 'tls' ? 'ebpf-tls' : 'ebpf';
    if (conn.local.address !== '') {
      attributes['network.local.address'] = conn.local.address;
      attributes['network.local.port'] = conn.local.port;
    }
    this.identities.set(conn, { info, pod, source: conn.source, attributes });
    return attributes;
  }

  private sizes(span: SpanRecord): SpanRecord {
    const rec = this.current;
    if (rec !== undefined) {
      bodySize(span.attributes, REQUEST_BODY, rec.requestBodySize);
      bodySize(span.attributes, RESPONSE_BODY, rec.responseBodySize);
      // Per record, so set on the finished span rather than on a copy of the connection's
      // identity made for every HTTP/2 record.
      if (rec.partial) span.attributes['sidetrace.capture.partial'] = true;
      if (rec.streamId !== undefined) span.attributes['sidetrace.http2.stream_id'] = rec.streamId;
    }
    return span;
  }
}

function isTunnel(rec: HttpRecord): boolean {
  return rec.status === 101 || (rec.method === 'CONNECT' && rec.status >= 200 && rec.status < 300);
}

/** Full body size, and `truncated` when content was recorded but bytes were not captured. */
function bodySize(attrs: Attributes, keys: BodyKeys, size: number): void {
  if (size === 0) return;
  const seen = attrs[keys.size];
  if (typeof seen === 'number' && seen >= size) return;
  attrs[keys.size] = size;
  if (attrs[keys.content] !== undefined) attrs[keys.truncated] = true;
}
