// The collector against real peers: the official OTel SDK + OTLP gRPC exporter sending real
// spans, a raw grpc-js client sending bad bytes, and the HTTP API read with fetch.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { SpanStatusCode, SpanKind, context, trace as otelTrace } from '@opentelemetry/api';
import { TracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { startCollector, type Collector } from '../../src/collector/collector.js';
import { EXPORT_PATH } from '../../src/collector/otlp-server.js';

const require = createRequire(import.meta.url);
const pb = require('otlp-proto/build/src/generated/root.js').opentelemetry.proto.collector.trace.v1;

let collector: Collector;
let jsonlPath: string;

beforeAll(async () => {
  jsonlPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'st-collector-')), 'spans.jsonl');
  collector = await startCollector({ otlp: '127.0.0.1:0', ui: '127.0.0.1:0', maxSpans: 10_000, jsonl: jsonlPath });
});
afterAll(async () => {
  await collector?.close();
});

async function api(p: string): Promise<{ status: number; body: any }> {
  const r = await fetch(new URL(p, collector.uiUrl));
  return { status: r.status, body: await r.json() };
}

function rawExport(bytes: Buffer): Promise<{ err: grpc.ServiceError | null; res?: Buffer }> {
  const client = new grpc.Client(collector.otlp.address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, bytes, (err, res) => {
      client.close();
      resolve({ err: err ?? null, res });
    });
  });
}

describe('collector receives the official OTel SDK exporter', () => {
  let traceId = '';
  let parentId = '';
  let childId = '';

  beforeAll(async () => {
    const exporter = new OTLPTraceExporter({ url: `http://${collector.otlp.address}` });
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'sdk-checkout', 'deployment.environment': 'test' }),
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
    });
    const tracer = provider.getTracer('collector-test');
    const parent = tracer.startSpan('POST /checkout', {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': 'POST', 'http.response.status_code': 502, 'cart.items': ['book', 'pen'], ratio: 0.25, retried: false },
    });
    const ctx = otelTrace.setSpan(context.active(), parent);
    const child = tracer.startSpan('charge card', { kind: SpanKind.CLIENT, attributes: { 'http.request.body': '{"amount":1200}' } }, ctx);
    child.addEvent('declined', { reason: 'limit' });
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'card declined' });
    await new Promise((r) => setTimeout(r, 30));
    child.end();
    parent.end();
    traceId = parent.spanContext().traceId;
    parentId = parent.spanContext().spanId;
    childId = child.spanContext().spanId;
    await provider.forceFlush();
    await provider.shutdown();
  });

  it('stores both spans under the SDK trace id with parent links, kinds and typed attributes', () => {
    const spans = collector.store.trace(traceId)!;
    expect(spans.map((s) => s.name).sort()).toEqual(['POST /checkout', 'charge card']);
    const parent = spans.find((s) => s.spanId === parentId)!;
    const child = spans.find((s) => s.spanId === childId)!;
    expect(parent.parentSpanId).toBeUndefined();
    expect(child.parentSpanId).toBe(parentId);
    expect(parent.kind).toBe(2);
    expect(child.kind).toBe(3);
    expect(parent.service).toBe('sdk-checkout');
    expect(parent.resource['deployment.environment']).toBe('test');
    expect(parent.attributes).toMatchObject({ 'http.response.status_code': 502, 'cart.items': ['book', 'pen'], ratio: 0.25, retried: false });
    expect(child.status).toEqual({ code: 2, message: 'card declined' });
    expect(child.error).toBe(true);
    expect(parent.error).toBe(false);
    expect(child.events[0]).toMatchObject({ name: 'declined', attributes: { reason: 'limit' } });
    expect(child.durationMs).toBeGreaterThanOrEqual(25);
    expect(child.startMs).toBeGreaterThan(Date.now() - 60_000);
  });

  it('answers the Jaeger-style API: services, operations, search filters and one trace', async () => {
    expect((await api('/api/services')).body.data).toContain('sdk-checkout');
    const ops = (await api('/api/operations?service=sdk-checkout')).body.data;
    expect(ops).toEqual([{ name: 'POST /checkout', spanKind: 'server' }, { name: 'charge card', spanKind: 'client' }]);
    expect((await api('/api/services/sdk-checkout/operations')).body.data).toEqual(['POST /checkout', 'charge card']);
    const badName = await api('/api/services/sdk%E0%A4/operations');
    expect(badName.status).toBe(400);
    expect(badName.body.errors[0].msg).toMatch(/invalid query parameter "service"/);

    const errs = await api(`/api/traces?service=sdk-checkout&tags=${encodeURIComponent('{"error":"true"}')}`);
    expect(errs.body.data.map((t: any) => t.traceID)).toEqual([traceId]);
    const byOp = await api(`/api/traces?service=sdk-checkout&operation=${encodeURIComponent('charge card')}&minDuration=20ms`);
    expect(byOp.body.data).toHaveLength(1);
    expect((await api('/api/traces?service=sdk-checkout&minDuration=10s')).body.data).toHaveLength(0);
    expect((await api('/api/traces?service=sdk-checkout&maxDuration=1us')).body.data).toHaveLength(0);
    const byTag = await api(`/api/traces?tags=${encodeURIComponent('{"http.response.status_code":"502","cart.items":"pen"}')}`);
    expect(byTag.body.data.map((t: any) => t.traceID)).toEqual([traceId]);
    expect((await api(`/api/traces?tag=deployment.environment:prod`)).body.data).toHaveLength(0);

    const one = await api(`/api/traces/${traceId}`);
    const t = one.body.data[0];
    const child = t.spans.find((s: any) => s.spanID === childId);
    expect(child.references).toEqual([{ refType: 'CHILD_OF', traceID: traceId, spanID: parentId }]);
    expect(child.tags).toContainEqual({ key: 'http.request.body', type: 'string', value: '{"amount":1200}' });
    expect(child.tags).toContainEqual({ key: 'error', type: 'bool', value: true });
    expect(t.processes[child.processID].serviceName).toBe('sdk-checkout');
    expect((await api('/api/traces/0123456789abcdef0123456789abcdef')).status).toBe(404);
  });

  it('rejects bad search parameters naming the parameter', async () => {
    const r = await api('/api/traces?minDuration=fast');
    expect(r.status).toBe(400);
    expect(r.body.errors[0].msg).toContain('"minDuration"');
    expect((await api('/api/traces?tags=notjson')).body.errors[0].msg).toContain('"tags"');
  });

  it('writes every span as one JSON line', async () => {
    // The file is written through a stream: poll rather than guess how long the write takes.
    const spanIds = () => {
      const text = fs.readFileSync(jsonlPath, 'utf8').trim();
      const lines = text === '' ? [] : text.split('\n').map((l) => JSON.parse(l) as { traceId: string; spanId: string });
      return lines.filter((l) => l.traceId === traceId).map((l) => l.spanId).sort();
    };
    await expect.poll(spanIds, { timeout: 5000 }).toEqual([parentId, childId].sort());
  });
});

describe('collector rejects bad input and lives on', () => {
  it('answers malformed protobuf with INVALID_ARGUMENT and a clear message', async () => {
    // Field 1, wire type 2, with a length running past the end of the buffer.
    const { err } = await rawExport(Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x01]));
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/^ST_OTLP_MALFORMED: malformed OTLP ExportTraceServiceRequest: /);
    // Field 2 with wire type 7, which does not exist.
    const { err: err2 } = await rawExport(Buffer.from([0x17, 0x00]));
    expect(err2?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err2?.details).toContain('wire type');
  });

  it('answers a batch over 16 MiB with RESOURCE_EXHAUSTED', async () => {
    const { err } = await rawExport(Buffer.alloc(16 * 1024 * 1024 + 1));
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/larger than max/);
  });

  it('reports spans with bad ids as partial success and keeps the good ones', async () => {
    const good = { traceId: Buffer.alloc(16, 0xab), spanId: Buffer.alloc(8, 1), name: 'good', startTimeUnixNano: 1, endTimeUnixNano: 2 };
    const bad = { traceId: Buffer.alloc(4, 1), spanId: Buffer.alloc(8, 2), name: 'short id' };
    const req = pb.ExportTraceServiceRequest.encode({ resourceSpans: [{ scopeSpans: [{ spans: [good, bad] }] }] }).finish();
    const { err, res } = await rawExport(Buffer.from(req));
    expect(err).toBeNull();
    const decoded = pb.ExportTraceServiceResponse.decode(res!);
    expect(decoded.partialSuccess.rejectedSpans.toString()).toBe('1');
    expect(decoded.partialSuccess.errorMessage).toContain('"short id"');
    expect(collector.store.trace('ab'.repeat(16))!.map((s) => s.name)).toEqual(['good']);
    expect(collector.store.trace('ab'.repeat(16))![0].service).toBe('unknown_service');
  });

  it('still accepts valid exports after the bad ones', async () => {
    const span = { traceId: Buffer.alloc(16, 0xcd), spanId: Buffer.alloc(8, 3), name: 'after', startTimeUnixNano: 1, endTimeUnixNano: 2 };
    const req = pb.ExportTraceServiceRequest.encode({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] }).finish();
    const { err } = await rawExport(Buffer.from(req));
    expect(err).toBeNull();
    expect(collector.store.trace('cd'.repeat(16))).toHaveLength(1);
    expect(collector.otlp.rejectedRequests).toBe(2);
  });
});
