// Micro-benchmark of span serialization, the export cost per span: sidetrace's OtlpTraceSerializer
// against what a user of the OTel SDK gets (SpanRecord → ReadableSpan → otlp-transformer's
// ProtobufTraceSerializer, as sidetrace itself did before), on 512-span batches shaped like the
// proxy's spans, without and with 1 KiB request/response bodies. Runs A/B interleaved, reports
// medians of rounds and the ratio. Needs `npm run build` (imports dist/).
//   node bench/serializer.js [rounds=15]

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist/telemetry/otlp-serializer.js');
if (!existsSync(DIST)) throw new Error(`${DIST} missing: run npm run build first`);
const { OtlpTraceSerializer } = await import(DIST);

const BATCH = 512;
const ROUNDS = Number(process.argv[2] ?? 15);
const RESOURCE = { 'service.name': 'checkout', 'k8s.pod.name': 'checkout-7d9f8b6c5d-x2x8k', 'k8s.namespace.name': 'shop', 'telemetry.sdk.name': 'sidetrace' };
const SCOPE = { name: 'sidetrace', version: '0.1.0' };

function hex(n, seed) {
  let s = '';
  for (let i = 0; i < n; i++) s += ((seed * 2654435761 + i * 40503) >>> 0).toString(16).padStart(8, '0').slice(-2);
  return s;
}

function json(bytes, seed) {
  let s = `{"order":${seed},"items":[`;
  while (s.length < bytes - 40) s += `{"sku":"SKU-${seed % 997}","qty":${seed % 7}},`;
  return (s.slice(0, -1) + `],"note":"ok"}`).padEnd(bytes, ' ');
}

/** A span like the proxy's HTTP server span (attribute names from exchange-impl). */
function span(i, bodies) {
  const start = 1_763_700_000_000 + i * 1.237;
  const attributes = {
    'http.request.method': 'POST',
    'url.path': `/api/orders/${i}`,
    'url.scheme': 'http',
    'server.address': 'checkout.shop.svc.cluster.local',
    'server.port': 8080,
    'client.address': '10.0.3.17',
    'client.port': 40000 + (i % 20000),
    'network.peer.address': '10.0.3.17',
    'network.peer.port': 40000 + (i % 20000),
    'network.protocol.version': '1.1',
    'user_agent.original': 'Go-http-client/1.1',
    'http.route': '/api/orders/{id}',
    'http.response.status_code': 200,
    'http.request.header.content-type': ['application/json'],
    'http.response.header.content-type': ['application/json'],
  };
  if (bodies) {
    attributes['http.request.body.size'] = 1024;
    attributes['http.request.body.content'] = json(1024, i);
    attributes['http.response.body.size'] = 1024;
    attributes['http.response.body.content'] = json(1024, i + 1);
  }
  return {
    traceId: hex(16, i + 1),
    spanId: hex(8, i + 7),
    parentSpanId: hex(8, i + 13),
    traceState: i % 4 === 0 ? 'congo=t61rcWkgMzE' : undefined,
    sampled: true,
    name: 'POST /api/orders/{id}',
    kind: 2,
    startMs: start,
    endMs: start + 2.345,
    attributes,
    events: [],
    status: { code: 0 },
  };
}

// The conversion sidetrace used before this serializer (src/telemetry/readable-span.ts).
function hr(ms) {
  const us = Math.round(ms * 1000);
  const s = Math.floor(us / 1e6);
  return [s, (us - s * 1e6) * 1000];
}
function toReadableSpan(rec, resource) {
  const traceFlags = rec.sampled ? 1 : 0;
  const ctx = { traceId: rec.traceId, spanId: rec.spanId, traceFlags, traceState: rec.traceState ? new TraceState(rec.traceState) : undefined };
  return {
    name: rec.name,
    kind: rec.kind - 1,
    spanContext: () => ctx,
    parentSpanContext: rec.parentSpanId ? { traceId: rec.traceId, spanId: rec.parentSpanId, traceFlags, isRemote: true } : undefined,
    startTime: hr(rec.startMs),
    endTime: hr(rec.endMs),
    status: rec.status,
    attributes: rec.attributes,
    links: [],
    events: rec.events.map((e) => ({ name: e.name, time: hr(e.timeMs), attributes: e.attributes, droppedAttributesCount: 0 })),
    duration: hr(rec.endMs - rec.startMs),
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

const resource = resourceFromAttributes(RESOURCE);
const ours = new OtlpTraceSerializer(RESOURCE, SCOPE);
const contenders = {
  'official (SpanRecord → ReadableSpan → ProtobufTraceSerializer)': (batch) =>
    ProtobufTraceSerializer.serializeRequest(batch.map((s) => toReadableSpan(s, resource))),
  'official serializer alone (ReadableSpans prebuilt)': (batch, prebuilt) => ProtobufTraceSerializer.serializeRequest(prebuilt),
  'sidetrace OtlpTraceSerializer': (batch) => ours.serializeRequest(batch),
};

/** µs per span for one timed run of `iters` batches. */
function time(fn, batch, prebuilt, iters) {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) sink += fn(batch, prebuilt).length;
  const ns = Number(process.hrtime.bigint() - t0);
  if (sink === 0) throw new Error('nothing serialized');
  return ns / 1000 / (iters * batch.length);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

console.log(`node ${process.version}, ${BATCH}-span batches, ${ROUNDS} interleaved rounds, median µs/span`);
for (const bodies of [false, true]) {
  const batch = Array.from({ length: BATCH }, (_, i) => span(i, bodies));
  const prebuilt = batch.map((s) => toReadableSpan(s, resource));
  const a = ProtobufTraceSerializer.serializeRequest(prebuilt);
  const b = ours.serializeRequest(batch);
  if (!Buffer.from(a).equals(Buffer.from(b))) throw new Error('the serializers disagree on this batch');
  const iters = bodies ? 10 : 20;
  const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (const fn of Object.values(contenders)) time(fn, batch, prebuilt, iters); // warm-up
  for (let r = 0; r < ROUNDS; r++) for (const [k, fn] of Object.entries(contenders)) samples[k].push(time(fn, batch, prebuilt, iters));
  console.log(`\n${bodies ? 'with 1 KiB request + response bodies' : 'no bodies'} (${(b.length / BATCH).toFixed(0)} B/span on the wire)`);
  const base = median(samples['official (SpanRecord → ReadableSpan → ProtobufTraceSerializer)']);
  for (const [k, xs] of Object.entries(samples)) {
    const m = median(xs);
    console.log(`  ${k.padEnd(66)} ${m.toFixed(2).padStart(7)} µs/span  ${(base / m).toFixed(2)}x`);
  }
}
