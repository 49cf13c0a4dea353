// The OTLP/gRPC transport over node:http2 against real peers: grpc-js servers (gzip, statuses,
// retry info, partial success, mutual TLS) and raw node:http2 servers that misbehave at the
// connection level (a session closed mid-export, GOAWAY). Every span ends up exported or
// dropped and counted; nothing crashes.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSpanExporter, type SpanExporter } from '../../src/telemetry/export.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { exportConfigFromEnv } from '../../src/telemetry/otel-env.js';
import { SpanKind, StatusCode, type SpanRecord } from '../../src/telemetry/span.js';
import { rawUnaryMethod } from '../../src/collector/raw-grpc.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const root = require('otlp-proto/build/src/generated/root.js') as any;
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ExportTraceServiceResponse = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;
const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let seq = 0;
function span(body = Buffer.alloc(2048, 0x61)): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: (++seq).toString(16).padStart(16, '0'),
    sampled: true,
    name: 'GET /items',
    kind: SpanKind.SERVER,
    startMs: 1_763_700_000_000,
    endMs: 1_763_700_000_002,
    attributes: { 'http.request.method': 'GET', 'http.response.body': body },
    events: [],
    status: { code: StatusCode.UNSET },
  };
}

function exporterTo(endpoint: string, env: Record<string, string> = {}) {
  const metrics = new Metrics();
  const logs: string[] = [];
  const counters = { submitted: metrics.counter('s', ''), exported: metrics.counter('e', ''), dropped: metrics.counter('d', '') };
  const exporter: SpanExporter = createSpanExporter({
    config: exportConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '10', ...env }),
    resource: { 'service.name': 'h2' },
    counters,
    log: (line) => logs.push(line),
  });
  cleanups.push(() => exporter.shutdown(1000));
  return { exporter, logs, exported: () => metrics.get('e'), dropped: () => metrics.get('d') };
}

interface Answer {
  code?: grpc.status;
  details?: string;
  /** Trailing metadata sent with an error status. */
  metadata?: grpc.Metadata;
  /** The ExportTraceServiceResponse of a success. */
  response?: Record<string, unknown>;
}

/** A grpc-js TraceService whose n-th Export (0-based) is answered by `answer(n)`. */
async function grpcServer(answer: (call: number) => Answer, creds = grpc.ServerCredentials.createInsecure()) {
  const calls: { spans: number; encoding: string | undefined; userAgent: string }[] = [];
  const server = new grpc.Server();
  server.addService(
    { Export: rawUnaryMethod(EXPORT_PATH) },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const req = ExportTraceServiceRequest.decode(call.request);
        let spans = 0;
        for (const rs of req.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans += (ss.spans ?? []).length;
        calls.push({ spans, encoding: call.metadata.get('grpc-encoding')[0] as string | undefined, userAgent: String(call.metadata.get('user-agent')[0]) });
        const a = answer(calls.length - 1);
        if (a.code !== undefined && a.code !== grpc.status.OK) {
          callback({ code: a.code, details: a.details ?? 'told to fail', metadata: a.metadata });
          return;
        }
        callback(null, Buffer.from(ExportTraceServiceResponse.encode(a.response ?? {}).finish()));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  cleanups.push(() => server.forceShutdown());
  return { port, calls };
}

/** google.rpc.Status with one google.rpc.RetryInfo detail, as grpc-status-details-bin carries it. */
function retryInfoStatus(code: number, delayMs: number): Buffer {
  const len = (b: Buffer) => Buffer.from([b.length]); // all pieces here are under 128 bytes
  const field = (tag: number, b: Buffer) => Buffer.concat([Buffer.from([tag]), len(b), b]);
  const duration = Buffer.from([0x08, Math.floor(delayMs / 1000), 0x10, ...varint((delayMs % 1000) * 1e6)]);
  const retryInfo = field(0x0a, duration);
  const any = Buffer.concat([field(0x0a, Buffer.from('type.googleapis.com/google.rpc.RetryInfo')), field(0x12, retryInfo)]);
  return Buffer.concat([Buffer.from([0x08, code]), field(0x1a, any)]);
}

function varint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** A raw HTTP/2 gRPC peer: `onStream` decides, per stream (numbered from 0 across sessions). */
async function h2Server(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, n: number) => void) {
  const server = http2.createServer();
  const open = new Set<http2.ServerHttp2Session>();
  let sessions = 0;
  let streams = 0;
  server.on('session', (s) => {
    sessions++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    onStream(stream, headers, streams++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => (open.forEach((s) => s.destroy()), server.close(() => resolve()))));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    get sessions() {
      return sessions;
    },
  };
}

/** Reads the request and answers OK with an empty ExportTraceServiceResponse. */
function answerOk(stream: http2.ServerHttp2Stream, beforeAnswer?: () => void): void {
  stream.resume();
  stream.on('end', () => {
    beforeAnswer?.();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.alloc(5));
  });
}

describe('OTLP/gRPC over node:http2', () => {
  it('gzip: compressed messages reach a grpc-js server intact', async () => {
    const srv = await grpcServer(() => ({}));
    const { exporter, exported } = exporterTo(`http://127.0.0.1:${srv.port}`, { OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' });
    for (let i = 0; i < 300; i++) exporter.submit(span(Buffer.alloc(8192, i)));
    await exporter.flush();
    expect(exported()).toBe(300);
    expect(srv.calls.reduce((n, c) => n + c.spans, 0)).toBe(300);
    expect(srv.calls.every((c) => c.userAgent.includes('OTel-OTLP-Exporter-JavaScript/') && c.userAgent.startsWith('sidetrace/'))).toBe(true);
  });

  it('sends the gRPC request headers and metadata', async () => {
    let seen: http2.IncomingHttpHeaders | undefined;
    const peer = await h2Server((stream, headers) => {
      seen = headers;
      answerOk(stream);
    });
    const { exporter, exported } = exporterTo(peer.endpoint, { OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=acme', OTEL_EXPORTER_OTLP_TIMEOUT: '3000' });
    exporter.submit(span());
    await exporter.flush();
    expect(exported()).toBe(1);
    expect(seen).toMatchObject({
      ':method': 'POST',
      ':path': EXPORT_PATH,
      ':scheme': 'http',
      'content-type': 'application/grpc',
      te: 'trailers',
      'x-tenant': 'acme',
    });
    expect(seen!['grpc-timeout']).toMatch(/^\d{1,8}m$/);
    expect(Number(seen!['grpc-timeout']!.toString().slice(0, -1))).toBeLessThanOrEqual(3000);
  });

  it('retries UNAVAILABLE: a server that fails once then accepts gets every span', async () => {
    const srv = await grpcServer((n) => (n === 0 ? { code: grpc.status.UNAVAILABLE } : {}));
    const { exporter, exported, dropped } = exporterTo(`http://127.0.0.1:${srv.port}`);
    for (let i = 0; i < 10; i++) exporter.submit(span());
    await exporter.flush();
    expect(exported()).toBe(10);
    expect(dropped()).toBe(0);
    expect(srv.calls.map((c) => c.spans)).toEqual([10, 10]);
  });

  it('does not retry INVALID_ARGUMENT, nor RESOURCE_EXHAUSTED without retry info', async () => {
    for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED]) {
      const srv = await grpcServer(() => ({ code }));
      const { exporter, exported, dropped, logs } = exporterTo(`http://127.0.0.1:${srv.port}`);
      for (let i = 0; i < 4; i++) exporter.submit(span());
      await exporter.flush();
      expect(srv.calls).toHaveLength(1);
      expect(exported()).toBe(0);
      expect(dropped()).toBe(4);
      expect(logs[0]).toContain(`failed: ${code} ${grpc.status[code]}: told to fail`);
    }
  });

  it('retries RESOURCE_EXHAUSTED carrying RetryInfo after the delay the server asks for', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('grpc-status-details-bin', retryInfoStatus(grpc.status.RESOURCE_EXHAUSTED, 200));
    const srv = await grpcServer((n) => (n === 0 ? { code: grpc.status.RESOURCE_EXHAUSTED, metadata } : {}));
    const { exporter, exported } = exporterTo(`http://127.0.0.1:${srv.port}`);
    exporter.submit(span());
    const t0 = performance.now();
    await exporter.flush();
    const took = performance.now() - t0;
    expect(exported()).toBe(1);
    expect(srv.calls).toHaveLength(2);
    // The server's 200 ms, not the 1 s default backoff.
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(900);
  });

  it('partial success: the spans the server rejects are counted dropped, the rest exported', async () => {
    const srv = await grpcServer(() => ({ response: { partialSuccess: { rejectedSpans: 3, errorMessage: 'bad ids' } } }));
    const { exporter, exported, dropped, logs } = exporterTo(`http://127.0.0.1:${srv.port}`);
    for (let i = 0; i < 10; i++) exporter.submit(span());
    await exporter.flush();
    expect(srv.calls).toHaveLength(1);
    expect(exported()).toBe(7);
    expect(dropped()).toBe(3);
    expect(logs[0]).toContain('rejected 3 of 10 spans');
  });

  it('a session closed mid-export: the export is retried on a new connection', async () => {
    const peer = await h2Server((stream, _headers, n) => {
      if (n === 0) stream.once('data', () => stream.session!.destroy());
      else answerOk(stream);
    });
    const { exporter, exported, dropped } = exporterTo(peer.endpoint);
    for (let i = 0; i < 20; i++) exporter.submit(span(Buffer.alloc(64 * 1024, i)));
    await exporter.flush();
    expect(exported()).toBe(20);
    expect(dropped()).toBe(0);
    expect(peer.sessions).toBe(2);
  });

  it('a peer that drops every session: spans dropped and counted, no crash, and later exports still try', async () => {
    const peer = await h2Server((stream) => stream.once('data', () => stream.session!.destroy()));
    const { exporter, exported, dropped, logs } = exporterTo(peer.endpoint, { OTEL_EXPORTER_OTLP_TIMEOUT: '1500', OTEL_BSP_EXPORT_TIMEOUT: '1500' });
    for (let i = 0; i < 5; i++) exporter.submit(span());
    await exporter.flush();
    expect(exported()).toBe(0);
    expect(dropped()).toBe(5);
    expect(logs[0]).toContain('14 UNAVAILABLE');
    const sessions = peer.sessions;
    expect(sessions).toBeGreaterThanOrEqual(2); // the retry reconnected
    exporter.submit(span());
    await exporter.flush();
    expect(dropped()).toBe(6);
    expect(peer.sessions).toBeGreaterThan(sessions);
  });

  it('GOAWAY: the call in flight is answered, the next export opens a new session and succeeds', async () => {
    // Every answer goes after a GOAWAY that still covers its own stream.
    const peer = await h2Server((stream) => answerOk(stream, () => stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id)));
    const { exporter, exported, dropped } = exporterTo(peer.endpoint);
    exporter.submit(span());
    await exporter.flush();
    exporter.submit(span());
    await exporter.flush();
    expect(exported()).toBe(2);
    expect(dropped()).toBe(0);
    expect(peer.sessions).toBe(2);
  });

  it('trailers-only errors and a missing status are read as gRPC statuses', async () => {
    const peer = await h2Server((stream, _h, n) => {
      stream.resume();
      if (n === 0) stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'no%20entry' }, { endStream: true });
      else stream.respond({ ':status': 503 }, { endStream: true });
    });
    const { exporter, dropped, logs } = exporterTo(peer.endpoint, { OTEL_EXPORTER_OTLP_TIMEOUT: '1500', OTEL_BSP_EXPORT_TIMEOUT: '1500' });
    exporter.submit(span());
    await exporter.flush();
    expect(dropped()).toBe(1);
    expect(logs[0]).toContain('7 PERMISSION_DENIED: no entry');
  });
});

describe('OTLP/gRPC over node:http2 with mutual TLS', () => {
  let dir: string;
  let port: number;
  let calls: { spans: number }[];
  let closeServer: () => Promise<void> | void;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidetrace-mtls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=sidetrace mtls CA');
    for (const who of ['server', 'client']) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? '127.0.0.1' : 'sidetrace'}`);
      fs.writeFileSync(path.join(dir, `${who}.ext`), who === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
      ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1', '-extfile', `${who}.ext`);
    }
    const read = (f: string) => fs.readFileSync(path.join(dir, f));
    const creds = grpc.ServerCredentials.createSsl(read('ca.pem'), [{ private_key: read('server.key'), cert_chain: read('server.pem') }], true);
    const srv = await grpcServer(() => ({}), creds);
    closeServer = cleanups.pop()!; // the server outlives the tests of this block
    port = srv.port;
    calls = srv.calls;
  });

  afterAll(async () => {
    await closeServer?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function exportWith(vars: Record<string, string>) {
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    try {
      const { exporter, exported, dropped } = exporterTo(`https://127.0.0.1:${port}`, { OTEL_EXPORTER_OTLP_TIMEOUT: '1500', OTEL_BSP_EXPORT_TIMEOUT: '1500' });
      exporter.submit(span());
      await exporter.flush();
      return { exported: exported(), dropped: dropped() };
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }

  it('presents the client certificate from OTEL_EXPORTER_OTLP_CLIENT_KEY / _CLIENT_CERTIFICATE, trusting the CA', async () => {
    const got = await exportWith({
      OTEL_EXPORTER_OTLP_CERTIFICATE: path.join(dir, 'ca.pem'),
      OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: path.join(dir, 'client.key'),
      OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: path.join(dir, 'client.pem'),
    });
    expect(got).toEqual({ exported: 1, dropped: 0 });
    expect(calls.length).toBeGreaterThanOrEqual(1);
  });

  it('without a client certificate the server refuses: the span is dropped and counted', async () => {
    const before = calls.length;
    const got = await exportWith({ OTEL_EXPORTER_OTLP_CERTIFICATE: path.join(dir, 'ca.pem') });
    expect(got).toEqual({ exported: 0, dropped: 1 });
    expect(calls.length).toBe(before);
  });
});
