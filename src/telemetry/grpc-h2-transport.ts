// OTLP/gRPC unary calls written straight onto an HTTP/2 stream (node:http2), as an
// IExporterTransport for the official export delegate (otlp-exporter-base).
//
// Hand-written instead of the official transport on grpc-js because that path was the export's
// main cost: at 20k spans/s of ~2 KB (bench/export.js) it took ~13 of the ~20 µs CPU per span.
// The official transport copies each ~1 MiB request (`Buffer.from(data)`), grpc-js copies it again
// to frame the message, and those copies, as external memory, set off full GCs every 150-300 ms;
// grpc-js's per-call machinery (filters, resolver/load-balancer state, metadata objects) comes on
// top. Here the serializer leaves the 5-byte gRPC message prefix free in front of the request
// (serializeEncoded's `room`), so the request buffer itself is the message written to the stream
// (node:http2 hands it to the socket without copying). Measured the same way, the export all-in
// went from ~20 to ~11 µs per span (~15.5 to ~10 with fresh span objects), the transport's own
// share to ~2.5 µs (stream setup, nghttp2 framing, the socket writes); serialization is the rest.
//
// The protocol (grpc/doc/PROTOCOL-HTTP2.md): POST to the method's path with content-type
// application/grpc, te: trailers, grpc-timeout and the metadata; the reply is headers, one
// length-prefixed message and trailers with grpc-status / grpc-message (or, on errors, headers
// alone carrying the status: "trailers-only"). One long-lived session per endpoint, replaced
// after GOAWAY, close or error, with the gRPC connection backoff between failed connects.

import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { gunzipSync, gzip } from 'node:zlib';
import type { ExportResponse, IExporterTransport } from '@opentelemetry/otlp-exporter-base';
import type { Compression } from './otel-env.js';

/** Bytes before a gRPC message: a compressed flag and the message length (big-endian uint32). */
export const GRPC_PREFIX_BYTES = 5;

/** gRPC status codes (grpc/doc/statuscodes.md) this transport produces or acts on. */
const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const STATUS_NAMES: string[] = [];
for (const [name, code] of Object.entries(GrpcStatus)) STATUS_NAMES[code] = name;

/**
 * A failed call. `code` is numeric and the message reads `14 UNAVAILABLE: details`, as grpc-js's
 * ServiceError, so the official exporter metrics (rpc.response.status_code) and our failure log
 * read the same as before.
 */
class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${STATUS_NAMES[code] ?? 'UNKNOWN'}: ${details}`);
    this.name = 'GrpcCallError';
  }
}

// OTLP exporter spec ("Retry", otlp.md): these codes are transient; RESOURCE_EXHAUSTED only
// when the server says recovery is possible (a google.rpc.RetryInfo in the status details).
const RETRYABLE = new Set<number>([
  GrpcStatus.CANCELLED,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.ABORTED,
  GrpcStatus.OUT_OF_RANGE,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DATA_LOSS,
]);

export interface GrpcTls {
  /** Trusted CAs (PEM); the system's when absent. */
  ca?: Buffer;
  /** Client certificate chain and key (PEM), for mutual TLS; both or neither. */
  cert?: Buffer;
  key?: Buffer;
}

export interface GrpcH2TransportOptions {
  /** `http://host:port` (h2c) or `https://host:port` (TLS). */
  endpoint: string;
  /** The method, e.g. /opentelemetry.proto.collector.trace.v1.TraceService/Export. */
  path: string;
  /** gRPC metadata (lowercase ASCII keys, printable values; checked by otel-env). */
  metadata: Record<string, string>;
  compression: Compression;
  tls: GrpcTls;
  userAgent: string;
}

// gRPC connection backoff (grpc/doc/connection-backoff.md), as grpc-js applies it between connects.
const BACKOFF_INITIAL_MS = 1000;
const BACKOFF_MULTIPLIER = 1.6;
const BACKOFF_MAX_MS = 120_000;
const BACKOFF_JITTER = 0.2;
// The official transport drops its client after this many deadlines in a row (a peer that takes
// the connection but never answers); so does this one with its session.
const MAX_DEADLINES_IN_A_ROW = 5;

// RST_STREAM codes as grpc-js maps them when no status arrived (PROTOCOL-HTTP2.md "Errors").
const RST_STATUS: Record<number, number> = {
  [http2.constants.NGHTTP2_REFUSED_STREAM]: GrpcStatus.UNAVAILABLE,
  [http2.constants.NGHTTP2_CANCEL]: GrpcStatus.CANCELLED,
  [http2.constants.NGHTTP2_ENHANCE_YOUR_CALM]: GrpcStatus.RESOURCE_EXHAUSTED,
  [http2.constants.NGHTTP2_INADEQUATE_SECURITY]: GrpcStatus.PERMISSION_DENIED,
};

/**
 * The IExporterTransport: `data` is a gRPC message whose first GRPC_PREFIX_BYTES are free for the
 * prefix (see OtlpTraceSerializer.serializeEncoded); the request proper follows.
 */
export class GrpcH2Transport implements IExporterTransport {
  private readonly staticHeaders: http2.OutgoingHttpHeaders;
  private readonly connectOptions: http2.SecureClientSessionOptions;
  private session: http2.ClientHttp2Session | undefined;
  /** Calls in flight per session: a session with calls keeps the process alive, an idle one does not. */
  private readonly calls = new WeakMap<http2.ClientHttp2Session, number>();
  private failedConnects = 0;
  private nextConnectAt = 0;
  private lastConnectError = '';
  private deadlinesInARow = 0;
  private closed = false;

  constructor(private readonly opts: GrpcH2TransportOptions) {
    this.staticHeaders = {
      ...opts.metadata,
      [http2.constants.HTTP2_HEADER_METHOD]: 'POST',
      [http2.constants.HTTP2_HEADER_PATH]: opts.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': opts.userAgent,
      // Replies are a few bytes: never ask for them compressed.
      'grpc-accept-encoding': 'identity',
    };
    if (opts.compression === 'gzip') this.staticHeaders['grpc-encoding'] = 'gzip';
    const url = new URL(opts.endpoint);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port);
    // Our own socket, for noDelay (as grpc-js sets it): node:http2 leaves Nagle on, and its
    // socket cannot be reconfigured once the session holds it.
    const connect =
      url.protocol === 'https:'
        ? () => tls.connect({ socket: net.connect({ host, port, noDelay: true }), host, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['h2'], ...opts.tls })
        : () => net.connect({ host, port, noDelay: true });
    this.connectOptions = { settings: { enablePush: false }, createConnection: connect };
  }

  send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    if (this.closed) return Promise.resolve({ status: 'failure', error: new GrpcCallError(GrpcStatus.UNAVAILABLE, 'transport shut down') });
    const message = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return new Promise((resolve) => {
      const deadline = Date.now() + timeoutMillis;
      if (this.opts.compression !== 'gzip') {
        message[0] = 0;
        message.writeUInt32BE(message.length - GRPC_PREFIX_BYTES, 1);
        this.call([message], deadline, resolve);
        return;
      }
      // Compressed off the event loop (zlib's thread pool), as grpc-js does.
      gzip(message.subarray(GRPC_PREFIX_BYTES), (err, compressed) => {
        if (err) return resolve({ status: 'failure', error: new GrpcCallError(GrpcStatus.INTERNAL, `gzip: ${err.message}`) });
        const prefix = Buffer.allocUnsafe(GRPC_PREFIX_BYTES);
        prefix[0] = 1;
        prefix.writeUInt32BE(compressed.length, 1);
        this.call([prefix, compressed], deadline, resolve);
      });
    });
  }

  shutdown(): void {
    this.closed = true;
    // Calls in flight finish (or meet their deadline); no new ones start.
    this.session?.close();
    this.session = undefined;
  }

  private call(chunks: Buffer[], deadline: number, resolve: (r: ExportResponse) => void): void {
    const remaining = deadline - Date.now();
    if (remaining <= 0) return resolve(toResponse(GrpcStatus.DEADLINE_EXCEEDED, 'deadline passed before the call started'));
    const session = this.currentSession();
    if (session === undefined) {
      const wait = Math.max(0, this.nextConnectAt - Date.now());
      return resolve(toResponse(GrpcStatus.UNAVAILABLE, `not connected (next attempt in ${wait} ms; last error: ${this.lastConnectError})`));
    }
    let stream: http2.ClientHttp2Stream;
    try {
      // grpc-timeout: at most 8 digits; milliseconds cover 27 hours.
      stream = session.request({ ...this.staticHeaders, 'grpc-timeout': `${Math.ceil(remaining)}m` }, { endStream: false });
    } catch (err) {
      this.dropSession(session);
      return resolve(toResponse(GrpcStatus.UNAVAILABLE, `cannot start a stream: ${(err as Error).message}`));
    }
    this.callStarted(session);

    let status: number | undefined;
    let statusMessage = '';
    let statusDetails: string | undefined;
    let httpStatus = 0;
    let timedOut = false;
    let streamError: Error | undefined;
    const body: Buffer[] = [];
    const readStatus = (headers: http2.IncomingHttpHeaders): void => {
      const s = headers['grpc-status'];
      if (s === undefined) return;
      status = Number(s);
      if (!Number.isInteger(status)) status = GrpcStatus.UNKNOWN;
      statusMessage = decodeGrpcMessage(headers['grpc-message']);
      const d = headers['grpc-status-details-bin'];
      statusDetails = Array.isArray(d) ? d[0] : d;
    };
    stream.on('response', (headers) => {
      httpStatus = Number(headers[':status']);
      readStatus(headers); // trailers-only: the status came in the headers
    });
    stream.on('trailers', readStatus);
    stream.on('data', (chunk: Buffer) => body.push(chunk));
    stream.on('error', (err) => (streamError = err));
    const timer = setTimeout(() => {
      timedOut = true;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, remaining);
    stream.on('close', () => {
      clearTimeout(timer);
      this.callEnded(session);
      if (status === undefined && timedOut) {
        if (++this.deadlinesInARow > MAX_DEADLINES_IN_A_ROW) this.dropSession(session, true);
        return resolve(toResponse(GrpcStatus.DEADLINE_EXCEEDED, `no reply within the deadline`));
      }
      this.deadlinesInARow = 0;
      if (status === undefined) return resolve(noStatus(httpStatus, stream.rstCode, streamError, session));
      if (status !== GrpcStatus.OK) return resolve(toResponse(status, statusMessage, statusDetails));
      try {
        resolve({ status: 'success', data: readMessage(Buffer.concat(body)) });
      } catch (err) {
        resolve(toResponse(GrpcStatus.INTERNAL, `malformed reply: ${(err as Error).message}`));
      }
    });
    for (let i = 0; i < chunks.length - 1; i++) stream.write(chunks[i]);
    stream.end(chunks[chunks.length - 1]);
  }

  /** The live session, connecting if there is none and the backoff allows; undefined while backing off. */
  private currentSession(): http2.ClientHttp2Session | undefined {
    const s = this.session;
    if (s !== undefined && !s.closed && !s.destroyed) return s;
    this.session = undefined;
    if (Date.now() < this.nextConnectAt) return undefined;
    const session = http2.connect(this.opts.endpoint, this.connectOptions);
    this.session = session;
    let settled = false;
    session.once('remoteSettings', () => {
      // The peer speaks HTTP/2: the connection is up, the backoff starts over.
      settled = true;
      this.failedConnects = 0;
      this.nextConnectAt = 0;
    });
    session.on('error', (err) => {
      if (!settled) this.connectFailed(err.message);
      settled = true;
      this.dropSession(session);
    });
    // After GOAWAY the session takes no new streams; calls in flight on it still finish.
    session.on('goaway', () => this.dropSession(session));
    session.on('close', () => {
      if (!settled && !this.closed) this.connectFailed('connection closed before the HTTP/2 preface');
      this.dropSession(session);
    });
    session.unref(); // idle, it must not keep the process alive; callStarted refs it
    return session;
  }

  private connectFailed(reason: string): void {
    this.lastConnectError = reason;
    const backoff = Math.min(BACKOFF_INITIAL_MS * BACKOFF_MULTIPLIER ** this.failedConnects, BACKOFF_MAX_MS);
    this.failedConnects++;
    this.nextConnectAt = Date.now() + backoff * (1 + BACKOFF_JITTER * (2 * Math.random() - 1));
  }

  private dropSession(session: http2.ClientHttp2Session, destroy = false): void {
    if (this.session === session) this.session = undefined;
    if (destroy) session.destroy();
    else if (!session.closed) session.close();
  }

  private callStarted(session: http2.ClientHttp2Session): void {
    const n = this.calls.get(session) ?? 0;
    if (n === 0) session.ref();
    this.calls.set(session, n + 1);
  }

  private callEnded(session: http2.ClientHttp2Session): void {
    const n = (this.calls.get(session) ?? 1) - 1;
    if (n === 0) session.unref();
    this.calls.set(session, n);
  }
}

function toResponse(code: number, message: string, detailsBin?: string): ExportResponse {
  const error = new GrpcCallError(code, message);
  const retryInMillis = detailsBin === undefined ? undefined : retryDelayMs(detailsBin);
  if (RETRYABLE.has(code) || (code === GrpcStatus.RESOURCE_EXHAUSTED && retryInMillis !== undefined)) {
    return retryInMillis === undefined ? { status: 'retryable', error } : { status: 'retryable', error, retryInMillis };
  }
  return { status: 'failure', error };
}

/** A stream that ended without a grpc-status: the HTTP status, the RST_STREAM code or the connection says why. */
function noStatus(httpStatus: number, rstCode: number | undefined, err: Error | undefined, session: http2.ClientHttp2Session): ExportResponse {
  if (httpStatus !== 0 && httpStatus !== 200) return toResponse(httpToGrpc(httpStatus), `HTTP status ${httpStatus} without grpc-status`);
  if (session.destroyed || session.closed) return toResponse(GrpcStatus.UNAVAILABLE, `connection dropped${err ? `: ${err.message}` : ''}`);
  if (rstCode !== undefined && rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
    return toResponse(RST_STATUS[rstCode] ?? GrpcStatus.INTERNAL, `stream reset with code ${rstCode}`);
  }
  return toResponse(GrpcStatus.INTERNAL, `stream ended without a status${err ? `: ${err.message}` : ''}`);
}

// grpc/doc/http-grpc-status-mapping.md
function httpToGrpc(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md); a malformed one is shown as received. */
function decodeGrpcMessage(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return '';
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The reply's one message, decompressed if flagged. */
function readMessage(body: Buffer): Uint8Array {
  if (body.length === 0) return body;
  if (body.length < GRPC_PREFIX_BYTES) throw new Error(`${body.length} bytes, shorter than a message prefix`);
  const len = body.readUInt32BE(1);
  if (body.length < GRPC_PREFIX_BYTES + len) throw new Error(`message of ${len} bytes cut at ${body.length - GRPC_PREFIX_BYTES}`);
  const msg = body.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + len);
  return body[0] === 1 ? gunzipSync(msg) : msg;
}

const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

/**
 * RetryInfo.retry_delay from grpc-status-details-bin (base64 google.rpc.Status): the server's
 * word on when to retry. Undefined when absent or unreadable.
 */
export function retryDelayMs(detailsBin: string): number | undefined {
  try {
    const status = Buffer.from(detailsBin, 'base64');
    for (const any of fieldsOf(status, 3)) {
      // google.protobuf.Any: type_url = 1, value = 2
      const typeUrl = fieldsOf(any, 1)[0];
      if (typeUrl === undefined || typeUrl.toString('utf8') !== RETRY_INFO_TYPE) continue;
      const retryInfo = fieldsOf(any, 2)[0] ?? Buffer.alloc(0);
      const duration = fieldsOf(retryInfo, 1)[0] ?? Buffer.alloc(0); // RetryInfo.retry_delay = 1
      const { 1: seconds = 0, 2: nanos = 0 } = varintsOf(duration);
      return Math.max(0, seconds * 1000 + Math.round(nanos / 1e6));
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** The length-delimited fields numbered `wanted` of a protobuf message. */
function fieldsOf(msg: Buffer, wanted: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < msg.length) {
    const [tag, afterTag] = readVarint(msg, at);
    at = afterTag;
    const wire = tag & 7;
    if (wire === 0) at = readVarint(msg, at)[1];
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const [len, start] = readVarint(msg, at);
      if (start + len > msg.length) throw new Error('truncated field');
      if (tag >>> 3 === wanted) out.push(msg.subarray(start, start + len));
      at = start + len;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

/** The varint fields of a small message, by number (int64 read as a double: delays fit). */
function varintsOf(msg: Buffer): Record<number, number> {
  const out: Record<number, number> = {};
  let at = 0;
  while (at < msg.length) {
    const [tag, afterTag] = readVarint(msg, at);
    if ((tag & 7) !== 0) throw new Error('not a varint field');
    const [v, next] = readVarint(msg, afterTag);
    out[tag >>> 3] = v;
    at = next;
  }
  return out;
}

function readVarint(b: Buffer, at: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= b.length) throw new Error('truncated varint');
    const byte = b[at++];
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, at];
    mul *= 128;
  }
  throw new Error('varint too long');
}
