// A real OTLP/gRPC trace receiver for tests: a grpc-js server implementing
// opentelemetry.proto.collector.trace.v1.TraceService/Export, decoding with the official
// generated protobuf code. It can answer slowly, fail with UNAVAILABLE, or (startBlackHole)
// be a TCP listener that accepts and never speaks.

import net from 'node:net';
import { createRequire } from 'node:module';
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { rawUnaryMethod } from '../../src/collector/raw-grpc.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const root = require('otlp-proto/build/src/generated/root.js') as any;
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ExportTraceServiceResponse = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

export interface ReceivedEvent {
  name: string;
  timeUnixNano: bigint;
  attributes: Record<string, unknown>;
}

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  traceState: string;
  /**
   * OTLP Span.flags (trace flags in the low byte, remote-parent bits 0x100/0x200). Read from the
   * wire by hand: the generated code in otlp-proto predates field 16.
   */
  flags: number;
  name: string;
  /** OTLP numbering: 1 INTERNAL, 2 SERVER, 3 CLIENT. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, unknown>;
  events: ReceivedEvent[];
  status: { code: number; message: string };
  resource: Record<string, unknown>;
  scope: { name: string; version: string };
}

export interface ReceivedRequest {
  metadata: Record<string, string>;
  spanCount: number;
}

export interface OtlpReceiver {
  port: number;
  /** `http://127.0.0.1:<port>` (plaintext gRPC), or `https://` when serving TLS. */
  endpoint: string;
  spans(): ReceivedSpan[];
  requests(): ReceivedRequest[];
  /** Resolves with all spans once at least n arrived; rejects after timeoutMs. */
  waitForSpans(n: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  /** Answer every later Export after this many ms (0: at once). */
  setDelay(ms: number): void;
  /** Fail every later Export with this status (e.g. grpc.status.UNAVAILABLE); undefined: succeed. */
  setFailure(code: grpc.status | undefined): void;
  close(): Promise<void>;
}

/**
 * The first received span matching `predicate`. `flush` (the sender's, e.g. proxy.flush) runs
 * before each look, so a span waiting in the sender's batch queue is not waited out.
 */
export async function spanMatching(
  receiver: OtlpReceiver,
  flush: () => Promise<void>,
  predicate: (s: ReceivedSpan) => boolean,
  timeoutMs = 5000,
): Promise<ReceivedSpan> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await flush();
    const s = receiver.spans().find(predicate);
    if (s) return s;
    if (Date.now() > deadline) throw new Error(`no matching span after ${timeoutMs} ms; ${receiver.spans().length} received`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ReceiverOptions {
  /** Serve TLS with this PEM key and certificate chain (the endpoint becomes https://). */
  tls?: { key: Buffer; cert: Buffer };
}

export async function startOtlpReceiver(opts: ReceiverOptions = {}): Promise<OtlpReceiver> {
  const received: ReceivedSpan[] = [];
  const requests: ReceivedRequest[] = [];
  let waiters: { n: number; resolve: (s: ReceivedSpan[]) => void }[] = [];
  let delayMs = 0;
  let failure: grpc.status | undefined;

  const server = new grpc.Server();
  server.addService(
    { Export: rawUnaryMethod('/opentelemetry.proto.collector.trace.v1.TraceService/Export') },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const answer = (): void => {
          if (failure !== undefined) {
            callback({ code: failure, details: 'test receiver told to fail' });
            return;
          }
          let spans: ReceivedSpan[];
          try {
            spans = decodeRequest(call.request);
          } catch (err) {
            callback({ code: grpc.status.INVALID_ARGUMENT, details: String(err) });
            return;
          }
          const metadata: Record<string, string> = {};
          for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v);
          requests.push({ metadata, spanCount: spans.length });
          received.push(...spans);
          callback(null, Buffer.from(ExportTraceServiceResponse.encode({}).finish()));
          waiters = waiters.filter((w) => (received.length >= w.n ? (w.resolve(received.slice()), false) : true));
        };
        if (delayMs > 0) setTimeout(answer, delayMs);
        else answer();
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    const creds = opts.tls
      ? grpc.ServerCredentials.createSsl(null, [{ private_key: opts.tls.key, cert_chain: opts.tls.cert }])
      : grpc.ServerCredentials.createInsecure();
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p)));
  });

  return {
    port,
    endpoint: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    spans: () => received.slice(),
    requests: () => requests.slice(),
    waitForSpans(n, timeoutMs = 10_000) {
      if (received.length >= n) return Promise.resolve(received.slice());
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`receiver: ${received.length} spans after ${timeoutMs} ms, wanted ${n}`)), timeoutMs);
        waiters.push({ n, resolve: (s) => (clearTimeout(t), resolve(s)) });
      });
    },
    setDelay: (ms) => {
      delayMs = ms;
    },
    setFailure: (code) => {
      failure = code;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

export interface BlackHole {
  port: number;
  endpoint: string;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/** Accepts TCP connections and never writes a byte: no HTTP/2 SETTINGS, no response, no close. */
export async function startBlackHole(): Promise<BlackHole> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.resume(); // read and discard, so the client's writes never stall on a full window
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port with nothing listening on it (bound once, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Flattens an OTLP AnyValue into JS: int64 → number, bytes → Buffer, arrays and kvlists recursively. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function anyValueToJs(v: any): unknown {
  if (v == null) return undefined;
  if (v.stringValue != null) return v.stringValue;
  if (v.boolValue != null) return v.boolValue;
  if (v.intValue != null) return typeof v.intValue === 'number' ? v.intValue : v.intValue.toNumber();
  if (v.doubleValue != null) return v.doubleValue;
  if (v.bytesValue != null) return Buffer.from(v.bytesValue);
  if (v.arrayValue != null) return (v.arrayValue.values ?? []).map(anyValueToJs);
  if (v.kvlistValue != null) return attributesToJs(v.kvlistValue.values);
  return undefined;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function attributesToJs(kvs: any[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs ?? []) out[kv.key] = anyValueToJs(kv.value);
  return out;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function nanos(v: any): bigint {
  if (v == null) return 0n;
  if (typeof v === 'number') return BigInt(v);
  return BigInt(v.toString());
}

function hex(b: Uint8Array | undefined): string {
  return b && b.length ? Buffer.from(b).toString('hex') : '';
}

function decodeRequest(buf: Buffer): ReceivedSpan[] {
  const req = ExportTraceServiceRequest.decode(buf);
  const flags = spanFlags(buf);
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attributesToJs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '' };
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState ?? '',
          flags: flags[out.length] ?? 0,
          name: s.name,
          kind: s.kind ?? 0,
          startTimeUnixNano: nanos(s.startTimeUnixNano),
          endTimeUnixNano: nanos(s.endTimeUnixNano),
          attributes: attributesToJs(s.attributes),
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          events: (s.events ?? []).map((e: any) => ({ name: e.name, timeUnixNano: nanos(e.timeUnixNano), attributes: attributesToJs(e.attributes) })),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          resource,
          scope,
        });
      }
    }
  }
  return out;
}

/** Span.flags of every span in wire order: request.1 → ResourceSpans.2 → ScopeSpans.2 → Span.16. */
function spanFlags(buf: Uint8Array): number[] {
  const out: number[] = [];
  for (const rs of fields(buf, 1)) for (const ss of fields(rs, 2)) for (const span of fields(ss, 2)) out.push(fixed32Field(span, 16));
  return out;
}

function fields(buf: Uint8Array, wanted: number): Uint8Array[] {
  const r = protobuf.Reader.create(buf);
  const out: Uint8Array[] = [];
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === wanted && (tag & 7) === 2) out.push(r.bytes());
    else r.skipType(tag & 7);
  }
  return out;
}

function fixed32Field(buf: Uint8Array, wanted: number): number {
  const r = protobuf.Reader.create(buf);
  let value = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === wanted && (tag & 7) === 5) value = r.fixed32();
    else r.skipType(tag & 7);
  }
  return value;
}
