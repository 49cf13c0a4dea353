// `sidetrace agent --tail` and `--json`: one line per finished request, fed from the exchange's
// tap (so what is printed is what a span would carry: policy, redaction and all). Filters drop
// rows before any formatting. Output that the terminal or pipe cannot take is dropped, counted.

import type { Writable } from 'node:stream';
import type { TapHub } from '../proxy/exchange.js';
import type { Counter } from '../telemetry/metrics.js';
import { SpanKind, type AttrValue, type SpanRecord } from '../telemetry/span.js';

export interface OutputOptions {
  format: 'table' | 'json';
  /** Show only requests at least this slow. */
  minLatencyMs: number;
  /** Show only requests whose request and response bodies are each at most this many bytes. */
  maxBodySize: number;
  out: Writable;
  dropped: Counter;
}

const TABLE_COLUMNS = ['TIMESTAMP', 'COMM', 'PID', 'SRC', 'DST', 'PROTO', 'METHOD', 'HOST', 'PATH', 'STATUS', 'LATENCY'] as const;
const WIDTHS = [13, 16, 8, 22, 22, 13, 8, 21, 41, 9, 0];
const HOST = 7;
const PATH = 8;
const MAX_BUFFERED = 4 * 1024 * 1024;

/** The fields of one row, from a span the agent built. */
export interface RequestRow {
  timestamp: string;
  comm: string;
  pid: number;
  src: string;
  dst: string;
  proto: string;
  method: string;
  host: string;
  path: string;
  status: string;
  latencyMs: number;
}

export function requestRow(span: SpanRecord): RequestRow {
  const a = span.attributes;
  // The process is the span's resource (spans.ts); a span without one has nothing to show there.
  const r = span.resource?.attributes ?? {};
  const server = span.kind === SpanKind.SERVER;
  const local = endpoint(a['network.local.address'], a['network.local.port']);
  const peer = endpoint(a['network.peer.address'], a['network.peer.port']);
  const grpc = a['rpc.system'] === 'grpc';
  const version = str(a['network.protocol.version']);
  const tls = a['sidetrace.capture.source'] === 'ebpf-tls';
  const status = grpc && a['rpc.grpc.status_code'] !== undefined ? `grpc ${a['rpc.grpc.status_code']}` : a['http.response.status_code'] !== undefined ? String(a['http.response.status_code']) : '-';
  return {
    timestamp: new Date(span.startMs).toISOString().slice(11, 23),
    comm: str(r['process.executable.name']),
    pid: Number(r['process.pid'] ?? 0),
    src: server ? peer : local,
    dst: server ? local : peer,
    proto: (grpc ? 'gRPC' : `HTTP/${version}`) + (tls ? '+TLS' : ''),
    method: str(a['http.request.method_original'] ?? a['http.request.method']),
    host: host(a, server),
    path: str(a['url.path']) + (a['url.query'] === undefined ? '' : `?${str(a['url.query'])}`),
    status,
    latencyMs: span.endMs - span.startMs,
  };
}

function host(a: SpanRecord['attributes'], server: boolean): string {
  if (server) return str(a['server.address']);
  const full = a['url.full'];
  if (typeof full === 'string') {
    const start = full.indexOf('://') + 3;
    const end = full.indexOf('/', start);
    return full.slice(start, end < 0 ? full.length : end);
  }
  return str(a['server.address']);
}

function endpoint(address: AttrValue | undefined, port: AttrValue | undefined): string {
  if (address === undefined || address === '') return '?';
  const text = String(address);
  return text.includes(':') ? `[${text}]:${String(port)}` : `${text}:${String(port)}`;
}

function str(v: AttrValue | undefined): string {
  return v === undefined ? '' : String(v);
}

export function formatLatency(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

/** Pads to the column; only HOST and PATH are cut (with …), other cells overflow rather than lie. */
function pad(text: string, width: number, cut = false): string {
  if (width === 0) return text;
  if (text.length < width) return text.padEnd(width);
  return (cut ? text.slice(0, width - 2) + '…' : text) + ' ';
}

export function tableHeader(): string {
  return TABLE_COLUMNS.map((c, i) => pad(c, WIDTHS[i])).join('').trimEnd() + '\n';
}

export function tableLine(row: RequestRow): string {
  const cells = [row.timestamp, row.comm, String(row.pid), row.src, row.dst, row.proto, row.method, row.host, row.path, row.status, formatLatency(row.latencyMs)];
  return cells.map((c, i) => pad(c, WIDTHS[i], i === HOST || i === PATH)).join('').trimEnd() + '\n';
}

/** One request as one JSON object: the row's fields plus the span's ids, attributes and resource. */
export function jsonLine(span: SpanRecord, row: RequestRow): string {
  const attributes = jsonAttributes(span.attributes);
  const resource = jsonAttributes(span.resource?.attributes ?? {});
  return JSON.stringify({ ...row, traceId: span.traceId, spanId: span.spanId, kind: span.kind === SpanKind.SERVER ? 'server' : 'client', attributes, resource }) + '\n';
}

function jsonAttributes(attrs: Readonly<SpanRecord['attributes']>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(attrs)) out[k] = v instanceof Uint8Array ? { base64: Buffer.from(v).toString('base64') } : v;
  return out;
}

export function passesFilters(span: SpanRecord, opts: Pick<OutputOptions, 'minLatencyMs' | 'maxBodySize'>): boolean {
  if (span.endMs - span.startMs < opts.minLatencyMs) return false;
  const a = span.attributes;
  const req = Number(a['http.request.body.size'] ?? 0);
  const res = Number(a['http.response.body.size'] ?? 0);
  return req <= opts.maxBodySize && res <= opts.maxBodySize;
}

/** A TapHub printing every finished request that passes the filters. */
export function createOutputTap(opts: OutputOptions): TapHub {
  let headerWritten = false;
  return {
    active: true,
    publish(span: SpanRecord): void {
      try {
        if (!passesFilters(span, opts)) return;
        if (opts.out.writableLength > MAX_BUFFERED) {
          opts.dropped.inc();
          return;
        }
        const row = requestRow(span);
        let text = opts.format === 'json' ? jsonLine(span, row) : tableLine(row);
        if (opts.format === 'table' && !headerWritten) {
          headerWritten = true;
          text = tableHeader() + text;
        }
        opts.out.write(text);
      } catch {
        opts.dropped.inc();
      }
    },
  };
}

/** Fans the exchange's tap out to several hubs; active while any of them is. */
export function combineTaps(hubs: readonly TapHub[]): TapHub | undefined {
  if (hubs.length === 0) return undefined;
  if (hubs.length === 1) return hubs[0];
  return {
    get active() {
      return hubs.some((h) => h.active);
    },
    publish(span) {
      for (const h of hubs) if (h.active) h.publish(span);
    },
  };
}
