// A tapped request: one SpanRecord line from a proxy's admin /tap stream, with the columns of
// the seed's trace_http (TIMESTAMP SRC DST PROTO METHOD HOST PATH STATUS LATENCY) pulled out.

import { SpanKind, type AttrValue, type SpanRecord } from '../telemetry/span.js';

export interface TapEvent {
  span: SpanRecord;
  /** service.name of the proxy the line came from. */
  service: string;
  /** Where the stream came from (admin address or pod). */
  source: string;
  timestamp: string;
  src: string;
  dst: string;
  proto: string;
  method?: string;
  host?: string;
  path?: string;
  status?: number;
  latencyMs: number;
}

export function toTapEvent(span: SpanRecord, service: string, source: string): TapEvent {
  const a = span.attributes;
  const inbound = span.kind === SpanKind.SERVER;
  const hostHeader = str(a['http.request.header.host']) ?? str(a['http.request.header.:authority']);
  const serverAddr = endpoint(a['server.address'], a['server.port']);
  const ev: TapEvent = {
    span,
    service,
    source,
    timestamp: new Date(span.startMs).toISOString(),
    // Inbound: the caller → this app. Outbound: this app → the upstream it was sent to.
    src: inbound ? endpoint(a['client.address'], a['client.port']) ?? '-' : service,
    dst: inbound ? serverAddr ?? service : endpoint(a['network.peer.address'], a['network.peer.port']) ?? serverAddr ?? '-',
    proto: a['rpc.system'] === 'grpc' ? 'gRPC' : a['network.protocol.version'] === '2' ? 'HTTP/2' : `HTTP/${str(a['network.protocol.version']) ?? '1.1'}`,
    latencyMs: span.endMs - span.startMs,
  };
  const method = str(a['http.request.method_original']) ?? str(a['http.request.method']);
  if (method !== undefined) ev.method = method;
  const host = hostHeader ?? str(a['server.address']);
  if (host !== undefined) ev.host = host;
  const path = str(a['url.path']);
  if (path !== undefined) ev.path = path;
  const status = a['http.response.status_code'];
  if (typeof status === 'number') ev.status = status;
  return ev;
}

function str(v: AttrValue | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v[0];
  return v === undefined || v instanceof Uint8Array ? undefined : String(v);
}

function endpoint(addr: AttrValue | undefined, port: AttrValue | undefined): string | undefined {
  const a = str(addr);
  if (a === undefined) return undefined;
  const host = a.includes(':') ? `[${a}]` : a;
  return port === undefined ? host : `${host}:${String(port)}`;
}
