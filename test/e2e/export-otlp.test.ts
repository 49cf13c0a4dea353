// Spans exported through the official OTLP/gRPC exporter to a real grpc-js receiver, decoded
// with the official generated protobuf code: every attribute type, events, status, parent,
// tracestate, resource, scope, and headers from OTEL_EXPORTER_OTLP_HEADERS as gRPC metadata.

import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/telemetry/metrics.js';
import { createSpanExporter, type SpanExporter } from '../../src/telemetry/export.js';
import { exportConfigFromEnv } from '../../src/telemetry/otel-env.js';
import { detectResource } from '../../src/telemetry/resource.js';
import { SpanKind, StatusCode, type SpanRecord } from '../../src/telemetry/span.js';
import { VERSION } from '../../src/telemetry/version.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';

let receiver: OtlpReceiver | undefined;
let exporter: SpanExporter | undefined;
afterEach(async () => {
  await exporter?.shutdown();
  await receiver?.close();
  exporter = receiver = undefined;
});

function counters(metrics = new Metrics()) {
  return {
    metrics,
    counters: {
      submitted: metrics.counter('submitted', 'test'),
      exported: metrics.counter('exported', 'test'),
      dropped: metrics.counter('dropped', 'test'),
    },
  };
}

const BODY = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0x0a]);

function richSpan(): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    parentSpanId: '00f067aa0ba902b7',
    traceState: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    sampled: true,
    name: 'GET /books/:id',
    kind: SpanKind.SERVER,
    startMs: 1_763_700_000_123.456,
    endMs: 1_763_700_000_125.5,
    attributes: {
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'sidetrace.ratio': 0.25,
      'sidetrace.kept': true,
      'http.request.header.accept': ['text/html', 'application/json'],
      'http.response.body': BODY,
    },
    events: [{ name: 'first-byte', timeMs: 1_763_700_000_124.25, attributes: { 'bytes': 17, 'raw': Buffer.from('hi') } }],
    status: { code: StatusCode.ERROR, message: 'upstream reset' },
  };
}

describe('OTLP/gRPC export to a real receiver', () => {
  it('carries every attribute type, events, status, parent, tracestate, resource and scope', async () => {
    receiver = await startOtlpReceiver();
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,team=a%2Cb',
      SIDETRACE_POD_NAME: 'books-7d9f-abc',
      SIDETRACE_POD_NAMESPACE: 'shop',
    };
    const { metrics, counters: c } = counters();
    const resource = detectResource(env, { serviceName: 'books' });
    exporter = createSpanExporter({ config: exportConfigFromEnv(env), resource: resource.attributes, counters: c });
    exporter.submit(richSpan());
    exporter.submit({ ...richSpan(), spanId: '1111111111111111', parentSpanId: undefined, traceState: undefined, sampled: false, kind: SpanKind.CLIENT, status: { code: StatusCode.OK } });

    const [server, client] = await receiver.waitForSpans(2);
    expect(server.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(server.spanId).toBe('b7ad6b7169203331');
    expect(server.parentSpanId).toBe('00f067aa0ba902b7');
    expect(server.traceState).toBe('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    expect(server.name).toBe('GET /books/:id');
    expect(server.kind).toBe(2);
    // Sampled flag in the low byte; 0x100|0x200: has-remote-parent and parent-is-remote.
    expect(server.flags).toBe(0x301);
    expect(server.startTimeUnixNano).toBe(1_763_700_000_123_456_000n);
    expect(server.endTimeUnixNano).toBe(1_763_700_000_125_500_000n);
    expect(server.attributes).toEqual({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'sidetrace.ratio': 0.25,
      'sidetrace.kept': true,
      'http.request.header.accept': ['text/html', 'application/json'],
      'http.response.body': BODY,
    });
    expect(Buffer.isBuffer(server.attributes['http.response.body'])).toBe(true);
    expect(server.events).toEqual([{ name: 'first-byte', timeUnixNano: 1_763_700_000_124_250_000n, attributes: { bytes: 17, raw: Buffer.from('hi') } }]);
    expect(server.status).toEqual({ code: 2, message: 'upstream reset' });
    expect(server.scope).toEqual({ name: 'sidetrace', version: VERSION });
    expect(server.resource).toEqual({
      'service.name': 'books',
      'deployment.environment.name': 'test',
      team: 'a,b',
      'k8s.pod.name': 'books-7d9f-abc',
      'k8s.namespace.name': 'shop',
      'telemetry.sdk.name': 'sidetrace',
      'telemetry.sdk.language': 'nodejs',
      'telemetry.sdk.version': VERSION,
    });

    expect(client.parentSpanId).toBe('');
    expect(client.traceState).toBe('');
    expect(client.kind).toBe(3);
    expect(client.flags & 0xff).toBe(0);
    expect(client.status).toEqual({ code: 1, message: '' });

    await exporter.flush();
    expect(metrics.get('submitted')).toBe(2);
    expect(metrics.get('exported')).toBe(2);
    expect(metrics.get('dropped')).toBe(0);
  });

  it('sends OTEL_EXPORTER_OTLP_HEADERS as gRPC metadata, traces-specific variable winning', async () => {
    receiver = await startOtlpReceiver();
    const env = {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `127.0.0.1:${receiver.port}`,
      OTEL_EXPORTER_OTLP_INSECURE: 'true',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-general=ignored',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'Authorization=Bearer%20s3cr%3Dt, x-tenant = acme ',
    };
    const { counters: c } = counters();
    exporter = createSpanExporter({ config: exportConfigFromEnv(env), resource: detectResource(env).attributes, counters: c });
    exporter.submit(richSpan());
    await receiver.waitForSpans(1);
    const [req] = receiver.requests();
    expect(req.metadata.authorization).toBe('Bearer s3cr=t');
    expect(req.metadata['x-tenant']).toBe('acme');
    expect(req.metadata['x-general']).toBeUndefined();
  });

  it('batches: 1,200 spans arrive in batches of at most maxExportBatchSize', async () => {
    receiver = await startOtlpReceiver();
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '500' };
    const { metrics, counters: c } = counters();
    exporter = createSpanExporter({ config: exportConfigFromEnv(env), resource: detectResource(env).attributes, counters: c });
    for (let i = 0; i < 1200; i++) exporter.submit({ ...richSpan(), spanId: i.toString(16).padStart(16, '0') });
    const spans = await receiver.waitForSpans(1200);
    expect(new Set(spans.map((s) => s.spanId)).size).toBe(1200);
    expect(receiver.requests().length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...receiver.requests().map((r) => r.spanCount))).toBeLessThanOrEqual(500);
    await exporter.flush();
    expect(metrics.get('exported')).toBe(1200);
  });

  it("splits batches of big bodies under gRPC's 4 MiB default receive limit: all 300 × 64 KiB arrive", async () => {
    receiver = await startOtlpReceiver();
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
    const { metrics, counters: c } = counters();
    exporter = createSpanExporter({ config: exportConfigFromEnv(env), resource: {}, counters: c });
    for (let i = 0; i < 300; i++) {
      exporter.submit({ ...richSpan(), spanId: i.toString(16).padStart(16, '0'), attributes: { 'http.response.body': Buffer.alloc(64 * 1024, i) } });
    }
    await exporter.flush();
    expect(metrics.get('dropped')).toBe(0);
    expect(metrics.get('exported')).toBe(300);
    const spans = receiver.spans();
    expect(spans).toHaveLength(300);
    expect((spans[299].attributes['http.response.body'] as Buffer).equals(Buffer.alloc(64 * 1024, 299))).toBe(true);
    // 300 spans but several requests, each under 4 MiB.
    expect(Math.max(...receiver.requests().map((r) => r.spanCount))).toBeLessThan(64);
  });

  it('OTEL_EXPORTER_OTLP_COMPRESSION=gzip shrinks what goes on the wire', async () => {
    receiver = await startOtlpReceiver();
    const wireBytes = async (compression: string): Promise<number> => {
      const relay = await byteCountingRelay(receiver!.port);
      const env = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${relay.port}`, OTEL_EXPORTER_OTLP_COMPRESSION: compression };
      const exp = createSpanExporter({ config: exportConfigFromEnv(env), resource: {}, counters: counters().counters });
      const before = receiver!.spans().length;
      for (let i = 0; i < 200; i++) exp.submit({ ...richSpan(), attributes: { ...richSpan().attributes, 'http.response.body': Buffer.alloc(2048, 'a') } });
      await receiver!.waitForSpans(before + 200);
      await exp.shutdown();
      await relay.close();
      return relay.bytes;
    };
    const plain = await wireBytes('none');
    const gzip = await wireBytes('gzip');
    expect(plain).toBeGreaterThan(200 * 2048);
    expect(gzip).toBeLessThan(plain / 4);
  });
});

/** A TCP relay in front of the receiver that counts the bytes the exporter sends. */
async function byteCountingRelay(targetPort: number): Promise<{ port: number; readonly bytes: number; close(): Promise<void> }> {
  let bytes = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    sockets.add(down).add(up);
    down.on('data', (d: Buffer) => (bytes += d.length));
    down.pipe(up).pipe(down);
    const end = () => (down.destroy(), up.destroy());
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get bytes() {
      return bytes;
    },
    close: () => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), server.close(() => resolve()))),
  };
}
