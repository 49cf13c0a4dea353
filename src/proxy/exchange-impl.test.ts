import zlib from 'node:zlib';
import protobuf from 'protobufjs/minimal.js';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../policy/parse.js';
import type { CompiledPolicy } from '../policy/types.js';
import { Metrics } from '../telemetry/metrics.js';
import { OtlpTraceSerializer, REFERENCE_MIN_BYTES, type EncodedSpan } from '../telemetry/otlp-serializer.js';
import { SpanKind, StatusCode, type SpanRecord } from '../telemetry/span.js';
import { createExchangeFactory, keepByTraceId } from './exchange-impl.js';
import type { ExchangeStart, TapHub } from './exchange.js';
import { createProxyMetrics, type ProxyMetrics } from './proxy-metrics.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

interface Harness {
  spans: SpanRecord[];
  tapped: SpanRecord[];
  metrics: ProxyMetrics;
  start: (s: Partial<ExchangeStart>) => ReturnType<ReturnType<typeof createExchangeFactory>['start']>;
}

function harness(
  doc: unknown = {},
  opts: { tap?: boolean; policy?: () => CompiledPolicy; sink?: (s: SpanRecord) => void; copiesBytesBelow?: number } = {},
): Harness {
  const metrics = createProxyMetrics(new Metrics());
  const spans: SpanRecord[] = [];
  const tapped: SpanRecord[] = [];
  const policy = compilePolicy(doc);
  const tap: TapHub | undefined = opts.tap ? { active: true, publish: (s) => tapped.push(s) } : undefined;
  const factory = createExchangeFactory({
    policy: opts.policy ?? (() => policy),
    sink: { submit: opts.sink ?? ((s) => spans.push(s)), copiesBytesBelow: opts.copiesBytesBelow },
    metrics,
    tap,
  });
  return { spans, tapped, metrics, start: (s) => factory.start({ ...BASE, ...s }) };
}

const BASE: ExchangeStart = {
  direction: 'inbound',
  protocolVersion: '1.1',
  method: 'GET',
  target: '/',
  headers: ['Host', 'shop.local:8080'],
  authority: 'shop.local:8080',
  client: { address: '10.0.0.9', port: 51000 },
  server: { address: '127.0.0.1', port: 8080 },
};

function grpcFrame(payload: Uint8Array, compressed = false): Buffer {
  const h = Buffer.alloc(5);
  h[0] = compressed ? 1 : 0;
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
}

function protoMessage(text: string, n: number): Uint8Array {
  return protobuf.Writer.create().uint32((1 << 3) | 2).string(text).uint32(2 << 3).uint32(n).finish();
}

describe('SERVER span for an HTTP request', () => {
  it('records every semconv attribute, headers and bodies, with secrets redacted', () => {
    const h = harness({ routes: [{ match: { pathTemplate: '/books/:id' } }] });
    const ex = h.start({
      method: 'POST',
      target: '/books/42?token=abc&x=1',
      headers: [
        'Host', 'shop.local:8080',
        'User-Agent', 'curl/8.5',
        'Authorization', 'Bearer s3cret',
        'Accept', 'text/plain',
        'accept', 'application/json',
        'Content-Type', 'application/json',
      ],
    });
    ex.requestBody(Buffer.from('{"title":"Dune",'));
    ex.requestBody(Buffer.from('"password":"hunter2"}'));
    ex.requestEnd();
    ex.responseHead(201, ['Content-Type', 'application/json', 'Set-Cookie', 'sid=1', 'Set-Cookie', 'sid=2', 'X-Id', '42']);
    ex.responseBody(Buffer.from('{"id":42,"token":"t0k"}'));
    ex.responseEnd();

    expect(h.spans).toHaveLength(1);
    const s = h.spans[0];
    expect(s.name).toBe('POST /books/:id');
    expect(s.kind).toBe(SpanKind.SERVER);
    expect(s.status).toEqual({ code: StatusCode.UNSET });
    expect(s.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(s.parentSpanId).toBeUndefined();
    expect(s.endMs).toBeGreaterThanOrEqual(s.startMs);
    expect(s.events).toEqual([]);
    expect(s.attributes).toEqual({
      'http.request.method': 'POST',
      'url.path': '/books/42',
      'url.query': 'token=REDACTED&x=1',
      'url.scheme': 'http',
      'server.address': 'shop.local',
      'server.port': 8080,
      'client.address': '10.0.0.9',
      'client.port': 51000,
      'network.peer.address': '10.0.0.9',
      'network.peer.port': 51000,
      'network.protocol.version': '1.1',
      'user_agent.original': 'curl/8.5',
      'http.route': '/books/:id',
      'http.response.status_code': 201,
      'http.request.header.host': ['shop.local:8080'],
      'http.request.header.user-agent': ['curl/8.5'],
      'http.request.header.authorization': ['REDACTED'],
      'http.request.header.accept': ['text/plain', 'application/json'],
      'http.request.header.content-type': ['application/json'],
      'http.response.header.content-type': ['application/json'],
      'http.response.header.set-cookie': ['REDACTED', 'REDACTED'],
      'http.response.header.x-id': ['42'],
      'http.request.body.size': 37,
      'http.request.body.content': '{"title":"Dune","password":"REDACTED"}',
      'http.response.body.size': 23,
      'http.response.body.content': '{"id":42,"token":"REDACTED"}',
    });
    expect(h.metrics.requests.value).toBe(0); // the handler's count, not the exchange's
    expect(h.metrics.spansSubmitted.value).toBe(1);
    expect(h.metrics.bytesCaptured.value).toBe(60);
    expect(h.metrics.captureErrors.value).toBe(0);
  });

  it('names the span by method alone without a route, and defaults the port', () => {
    const h = harness();
    const ex = h.start({ target: '/x', headers: ['host', 'shop.local'], authority: 'shop.local' });
    ex.responseHead(200, []);
    ex.responseEnd();
    expect(h.spans[0].name).toBe('GET');
    expect(h.spans[0].attributes['http.route']).toBeUndefined();
    expect(h.spans[0].attributes['server.address']).toBe('shop.local');
    expect(h.spans[0].attributes['server.port']).toBe(80);
  });

  it('parses an IPv6 authority', () => {
    const h = harness();
    const ex = h.start({ authority: '[::1]:9090', headers: ['host', '[::1]:9090'] });
    ex.responseHead(200, []);
    ex.responseEnd();
    expect(h.spans[0].attributes['server.address']).toBe('::1');
    expect(h.spans[0].attributes['server.port']).toBe(9090);
  });

  it('an IPv6 authority with an empty port has no port (the default applies), as a host name does', () => {
    const h = harness();
    for (const authority of ['[::1]:', 'shop.local:']) {
      const ex = h.start({ authority, headers: ['host', authority] });
      ex.responseHead(200, []);
      ex.responseEnd();
    }
    expect(h.spans.map((s) => s.attributes['server.port'])).toEqual([80, 80]);
  });

  it('maps unknown methods to _OTHER and names the span HTTP', () => {
    const h = harness();
    const ex = h.start({ method: 'PURGE' });
    ex.responseHead(200, []);
    ex.responseEnd();
    expect(h.spans[0].name).toBe('HTTP');
    expect(h.spans[0].attributes['http.request.method']).toBe('_OTHER');
    expect(h.spans[0].attributes['http.request.method_original']).toBe('PURGE');
  });

  it('treats 4xx as not an error and 5xx as an error', () => {
    const h = harness();
    const a = h.start({});
    a.responseHead(404, []);
    a.responseEnd();
    const b = h.start({});
    b.responseHead(503, []);
    b.responseEnd();
    expect(h.spans[0].status).toEqual({ code: StatusCode.UNSET });
    expect(h.spans[0].attributes['error.type']).toBeUndefined();
    expect(h.spans[1].status).toEqual({ code: StatusCode.ERROR });
    expect(h.spans[1].attributes['error.type']).toBe('503');
  });

  it('records only the headers the rule selects, still redacting secrets', () => {
    const h = harness({ default: { headers: { request: ['x-a', 'authorization'], response: ['x-b'] } } });
    const ex = h.start({ headers: ['Host', 'h', 'X-A', '1', 'Authorization', 'Basic eA==', 'X-C', '3'] });
    ex.responseHead(200, ['X-B', '2', 'X-D', '4']);
    ex.responseEnd(['X-B', 't']);
    const a = h.spans[0].attributes;
    expect(a['http.request.header.x-a']).toEqual(['1']);
    expect(a['http.request.header.authorization']).toEqual(['REDACTED']);
    expect(a['http.request.header.host']).toBeUndefined();
    expect(a['http.request.header.x-c']).toBeUndefined();
    expect(a['http.response.header.x-b']).toEqual(['2']);
    expect(a['http.response.header.x-d']).toBeUndefined();
    expect(a['http.response.trailer.x-b']).toEqual(['t']);
  });

  it('redacts policy-listed headers, query params and form fields', () => {
    const h = harness({ default: { redact: { headers: ['x-api-key'], query: ['session'], formFields: ['pin'] } } });
    const ex = h.start({
      method: 'POST',
      target: '/login?session=abc&password=pw&page=2',
      headers: ['X-Api-Key', 'k', 'Content-Type', 'application/x-www-form-urlencoded'],
    });
    ex.requestBody(Buffer.from('user=bob&pin=1234&password=x'));
    ex.responseHead(204, []);
    ex.responseEnd();
    const a = h.spans[0].attributes;
    expect(a['http.request.header.x-api-key']).toEqual(['REDACTED']);
    expect(a['url.query']).toBe('session=REDACTED&password=REDACTED&page=2');
    expect(a['http.request.body.content']).toBe('user=bob&pin=REDACTED&password=REDACTED');
  });

  it('records nothing for bodies the rule turns off, but still their size', () => {
    const h = harness({ default: { requestBody: false, responseBody: false } });
    const ex = h.start({ method: 'POST' });
    ex.requestBody(Buffer.from('abc'));
    ex.responseHead(200, []);
    ex.responseBody(Buffer.from('defg'));
    ex.responseEnd();
    const a = h.spans[0].attributes;
    expect(a['http.request.body.size']).toBe(3);
    expect(a['http.response.body.size']).toBe(4);
    expect(a['http.request.body.content']).toBeUndefined();
    expect(a['http.response.body.content']).toBeUndefined();
    expect(h.metrics.bytesCaptured.value).toBe(0);
  });
});

describe('bodies', () => {
  it('keeps maxBodyBytes, reports the full size and marks truncation', () => {
    const h = harness({ default: { maxBodyBytes: 10 } });
    const ex = h.start({ method: 'PUT', headers: ['Content-Type', 'text/plain'] });
    ex.requestBody(Buffer.from('0123456'));
    ex.requestBody(Buffer.from('789abcdef'));
    ex.requestBody(Buffer.from('ghijklmnop'));
    ex.responseHead(200, ['Content-Type', 'text/plain']);
    ex.responseBody(Buffer.from('short'));
    ex.responseEnd();
    const a = h.spans[0].attributes;
    expect(a['http.request.body.size']).toBe(26);
    expect(a['http.request.body.content']).toBe('0123456789');
    expect(a['http.request.body.truncated']).toBe(true);
    expect(a['http.response.body.content']).toBe('short');
    expect(a['http.response.body.truncated']).toBeUndefined();
    expect(h.metrics.bytesCaptured.value).toBe(15);
  });

  it('decodes a gzip response for the recorded value, capped at maxBodyBytes', () => {
    const h = harness({ default: { maxBodyBytes: 1000 } });
    const body = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ i, secret: 'x' })) });
    const gz = zlib.gzipSync(body);
    expect(gz.length).toBeLessThan(1000);
    const ex = h.start({});
    ex.responseHead(200, ['Content-Type', 'application/json', 'Content-Encoding', 'gzip']);
    ex.responseBody(gz);
    ex.responseEnd();
    const a = h.spans[0].attributes;
    expect(a['http.response.body.size']).toBe(gz.length);
    const text = a['http.response.body.content'] as string;
    const unredacted = text.replaceAll('"REDACTED"', '"x"');
    expect(unredacted.length).toBeLessThanOrEqual(1000);
    expect(unredacted.length).toBeGreaterThanOrEqual(750);
    expect(body.startsWith(unredacted)).toBe(true);
    expect(text).not.toContain('"secret":"x"');
    expect(a['http.response.body.truncated']).toBe(true);
  });

  it('records brotli bodies decoded', () => {
    const h = harness();
    const ex = h.start({});
    ex.responseHead(200, ['content-type', 'text/html', 'content-encoding', 'br']);
    ex.responseBody(zlib.brotliCompressSync('<p>hello</p>'));
    ex.responseEnd();
    expect(h.spans[0].attributes['http.response.body.content']).toBe('<p>hello</p>');
  });

  it('records binary bodies as bytes', () => {
    const h = harness();
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00]);
    const ex = h.start({});
    ex.responseHead(200, []);
    ex.responseBody(png);
    ex.responseEnd();
    const v = h.spans[0].attributes['http.response.body.content'];
    expect(v).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(v as Uint8Array).equals(png)).toBe(true);
  });

  it('copies a small binary body out of a large socket read instead of pinning it', () => {
    const h = harness();
    const read = Buffer.alloc(65536, 0);
    const ex = h.start({});
    ex.responseHead(200, ['content-type', 'application/octet-stream']);
    ex.responseBody(read.subarray(100, 116));
    ex.responseEnd();
    const v = h.spans[0].attributes['http.response.body.content'] as Uint8Array;
    expect(v.byteLength).toBe(16);
    expect(v.buffer.byteLength).toBeLessThan(65536);
  });

  // The fast path for sinks that copy small bytes values themselves (the OTLP exporter): the view
  // goes out uncopied only below the sink's bound, and never while a tap may hold the span.
  it.each([
    { what: 'a sink that may keep it', copiesBytesBelow: undefined, size: 16, tap: false, copied: true },
    { what: 'a sink that copies it', copiesBytesBelow: 2048, size: 16, tap: false, copied: false },
    { what: 'a sink that copies only smaller values', copiesBytesBelow: 2048, size: 2048, tap: false, copied: true },
    { what: 'a copying sink with a live tap', copiesBytesBelow: 2048, size: 16, tap: true, copied: true },
  ])('hands a view of a large socket read to $what: copied $copied', ({ copiesBytesBelow, size, tap, copied }) => {
    const h = harness({}, { copiesBytesBelow, tap });
    const read = Buffer.alloc(65536, 7);
    const body = read.subarray(100, 100 + size);
    const ex = h.start({});
    ex.responseHead(200, ['content-type', 'application/octet-stream']);
    ex.responseBody(body);
    ex.responseEnd();
    const v = h.spans[0].attributes['http.response.body.content'] as Uint8Array;
    expect(Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(body)).toBe(true);
    expect(v.buffer === read.buffer).toBe(!copied);
    if (tap) expect(h.tapped[0].attributes['http.response.body.content']).toBe(v);
  });

  // What the OTLP exporter's copiesBytesBelow (REFERENCE_MIN_BYTES) promises, and the fast path
  // above relies on: an encoded span holds no reference to a shorter bytes value.
  it('OTLP encoding keeps no reference to a bytes value below REFERENCE_MIN_BYTES', () => {
    const read = Buffer.alloc(65536, 7);
    const body = read.subarray(100, 100 + REFERENCE_MIN_BYTES - 1);
    const span: SpanRecord = {
      traceId: TRACE,
      spanId: PARENT,
      sampled: true,
      name: 'GET',
      kind: SpanKind.SERVER,
      startMs: 1,
      endMs: 2,
      attributes: { 'http.response.body.content': body },
      events: [],
      status: { code: StatusCode.UNSET },
    };
    const ser = new OtlpTraceSerializer({ 'service.name': 'shop' }, { name: 't' });
    const encoded = ser.encodeSpan(span);
    const flat = (e: EncodedSpan) => Buffer.from(ser.serializeEncoded([e]));
    const before = flat(encoded);
    expect(before.includes(body)).toBe(true);
    read.fill(9);
    expect(flat(encoded).equals(before)).toBe(true);
  });

  it('records an undecodable encoded body as raw bytes', () => {
    const h = harness();
    const ex = h.start({});
    ex.responseHead(200, ['content-type', 'text/plain', 'content-encoding', 'zstd']);
    ex.responseBody(Buffer.from('(raw)'));
    ex.responseEnd();
    expect(h.spans[0].attributes['http.response.body.content']).toBeInstanceOf(Uint8Array);
  });
});

describe('trace context', () => {
  it('continues an incoming W3C trace and forwards the proxy span as parent', () => {
    const h = harness();
    const ex = h.start({ headers: ['traceparent', `00-${TRACE}-${PARENT}-01`, 'tracestate', 'congo=t61rcWkgMzE'] });
    const [tp, ts] = ex.forwardHeaders;
    ex.responseHead(200, []);
    ex.responseEnd();
    const s = h.spans[0];
    expect(s.traceId).toBe(TRACE);
    expect(s.parentSpanId).toBe(PARENT);
    expect(s.traceState).toBe('congo=t61rcWkgMzE');
    expect(s.sampled).toBe(true);
    expect(tp).toEqual(['traceparent', `00-${TRACE}-${s.spanId}-01`]);
    expect(ts).toEqual(['tracestate', 'congo=t61rcWkgMzE']);
    expect([...ex.replacesHeaders].sort()).toEqual(['traceparent', 'tracestate']);
  });

  it('starts a root trace without context', () => {
    const h = harness();
    const ex = h.start({});
    expect(ex.forwardHeaders).toHaveLength(1);
    ex.responseHead(200, []);
    ex.responseEnd();
    const s = h.spans[0];
    expect(s.parentSpanId).toBeUndefined();
    expect(ex.forwardHeaders[0]).toEqual(['traceparent', `00-${s.traceId}-${s.spanId}-01`]);
  });

  it('starts a new trace when traceparent is invalid', () => {
    const h = harness();
    const ex = h.start({ headers: ['traceparent', `00-${TRACE.toUpperCase()}-${PARENT}-01`, 'tracestate', 'a=1'] });
    ex.responseEnd();
    expect(h.spans[0].traceId).not.toBe(TRACE);
    expect(h.spans[0].parentSpanId).toBeUndefined();
    expect(h.spans[0].traceState).toBeUndefined();
    expect(ex.forwardHeaders.map(([n]) => n)).toEqual(['traceparent']);
    expect(ex.replacesHeaders.has('tracestate')).toBe(true);
  });

  it('continues a B3 trace and forwards B3 in the same style', () => {
    const h = harness();
    const ex = h.start({ headers: ['X-B3-TraceId', 'a3ce929d0e0e4736', 'X-B3-SpanId', PARENT, 'X-B3-Sampled', '1'] });
    ex.responseEnd();
    const s = h.spans[0];
    expect(s.traceId).toBe('0000000000000000a3ce929d0e0e4736');
    expect(s.parentSpanId).toBe(PARENT);
    expect(Object.fromEntries(ex.forwardHeaders)).toEqual({
      traceparent: `00-${s.traceId}-${s.spanId}-01`,
      'x-b3-traceid': s.traceId,
      'x-b3-spanid': s.spanId,
      'x-b3-parentspanid': PARENT,
      'x-b3-sampled': '1',
    });
    expect(ex.replacesHeaders.has('x-b3-spanid')).toBe(true);
  });

  it('leaves context untouched and records nothing for spans: false routes', () => {
    const h = harness({ routes: [{ match: { path: '/healthz' }, spans: false }] });
    const ex = h.start({ target: '/healthz', headers: ['traceparent', `00-${TRACE}-${PARENT}-01`] });
    expect(ex.forwardHeaders).toEqual([]);
    expect(ex.replacesHeaders.size).toBe(0);
    ex.requestBody(Buffer.from('x'));
    ex.responseHead(200, []);
    ex.responseEnd();
    expect(h.spans).toHaveLength(0);
    expect(h.metrics.spansSubmitted.value).toBe(0);
    expect(h.metrics.spansSampledOut.value).toBe(0);
  });
});

describe('CLIENT span', () => {
  it('describes the upstream and errs on 4xx', () => {
    const h = harness();
    const ex = h.start({
      direction: 'outbound',
      target: '/v1/pay?sig=zzz',
      authority: 'payments:9000',
      headers: ['Host', 'payments:9000'],
      server: { address: '10.1.2.3', port: 9000 },
    });
    ex.responseHead(404, []);
    ex.responseEnd();
    const s = h.spans[0];
    expect(s.kind).toBe(SpanKind.CLIENT);
    expect(s.status).toEqual({ code: StatusCode.ERROR });
    const a = s.attributes;
    expect(a['error.type']).toBe('404');
    expect(a['server.address']).toBe('10.1.2.3');
    expect(a['server.port']).toBe(9000);
    expect(a['network.peer.address']).toBe('10.1.2.3');
    expect(a['network.peer.port']).toBe(9000);
    expect(a['client.address']).toBeUndefined();
    expect(a['url.full']).toBe('http://payments:9000/v1/pay?sig=REDACTED');
  });

  it('reads path and query from an absolute-form target', () => {
    const h = harness();
    const ex = h.start({ direction: 'outbound', target: 'http://api.example:81/a/b?q=1', authority: undefined, headers: [] });
    ex.responseHead(200, []);
    ex.responseEnd();
    const a = h.spans[0].attributes;
    expect(a['url.path']).toBe('/a/b');
    expect(a['url.query']).toBe('q=1');
    expect(a['url.full']).toBe('http://api.example:81/a/b?q=1');
  });
});

describe('failure and tunnels', () => {
  it('marks fail() as ERROR with error.type and ends exactly once', () => {
    const h = harness();
    const ex = h.start({});
    ex.fail('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:8080');
    ex.responseHead(200, []);
    ex.responseEnd();
    ex.fail('again');
    expect(h.spans).toHaveLength(1);
    expect(h.spans[0].status).toEqual({ code: StatusCode.ERROR, message: 'connect ECONNREFUSED 127.0.0.1:8080' });
    expect(h.spans[0].attributes['error.type']).toBe('ECONNREFUSED');
    expect(h.spans[0].attributes['http.response.status_code']).toBeUndefined();
  });

  it('keeps the status when the client aborts mid-response', () => {
    const h = harness();
    const ex = h.start({});
    ex.responseHead(200, []);
    ex.responseBody(Buffer.from('par'));
    ex.fail('client_abort');
    expect(h.spans[0].attributes['http.response.status_code']).toBe(200);
    expect(h.spans[0].attributes['error.type']).toBe('client_abort');
  });

  it('ends a CONNECT tunnel at the handshake', () => {
    const h = harness();
    const ex = h.start({ method: 'CONNECT', target: 'db.internal:5432', authority: 'db.internal:5432', headers: ['Host', 'db.internal:5432'] });
    ex.tunnelEstablished(200, []);
    ex.responseBody(Buffer.from('opaque'));
    ex.responseEnd();
    expect(h.spans).toHaveLength(1);
    const a = h.spans[0].attributes;
    expect(h.spans[0].name).toBe('CONNECT');
    expect(a['http.response.status_code']).toBe(200);
    expect(a['url.path']).toBeUndefined();
    expect(a['server.address']).toBe('db.internal');
    expect(a['server.port']).toBe(5432);
    expect(a['http.response.body.size']).toBeUndefined();
  });

  it('ends an upgrade at 101', () => {
    const h = harness();
    const ex = h.start({ target: '/ws', headers: ['Upgrade', 'websocket', 'Connection', 'Upgrade'] });
    ex.tunnelEstablished(101, ['Upgrade', 'websocket']);
    expect(h.spans).toHaveLength(1);
    expect(h.spans[0].status.code).toBe(StatusCode.UNSET);
    expect(h.spans[0].attributes['http.response.header.upgrade']).toEqual(['websocket']);
  });
});

describe('gRPC', () => {
  const grpcHeaders = ['content-type', 'application/grpc', 'te', 'trailers', 'grpc-encoding', 'gzip'];

  it('records rpc attributes and one event per message, decoded by field number', () => {
    const h = harness({ routes: [{ match: { grpc: 'shop.Cart/AddItem' }, maxBodyBytes: 1000 }] });
    const ex = h.start({ protocolVersion: '2', method: 'POST', target: '/shop.Cart/AddItem', headers: grpcHeaders });
    const req = grpcFrame(protoMessage('sku-1', 2));
    ex.requestBody(req.subarray(0, 3));
    ex.requestBody(req.subarray(3));
    ex.requestBody(grpcFrame(zlib.gzipSync(protoMessage('sku-2', 7)), true));
    ex.requestEnd();
    ex.responseHead(200, ['content-type', 'application/grpc']);
    ex.responseBody(grpcFrame(protoMessage('ok', 1)));
    ex.responseEnd(['grpc-status', '0']);
    const s = h.spans[0];
    expect(s.name).toBe('shop.Cart/AddItem');
    expect(s.status).toEqual({ code: StatusCode.UNSET });
    const a = s.attributes;
    expect(a['rpc.system']).toBe('grpc');
    expect(a['rpc.service']).toBe('shop.Cart');
    expect(a['rpc.method']).toBe('AddItem');
    expect(a['rpc.grpc.status_code']).toBe(0);
    expect(a['network.protocol.version']).toBe('2');
    expect(a['http.response.trailer.grpc-status']).toEqual(['0']);
    expect(a['http.request.body.content']).toBeUndefined();
    expect(a['http.request.body.size']).toBe(req.length + 5 + zlib.gzipSync(protoMessage('sku-2', 7)).length);
    const ev = s.events.map((e) => e.attributes);
    expect(s.events.every((e) => e.name === 'message')).toBe(true);
    expect(ev).toEqual([
      { 'message.type': 'RECEIVED', 'message.id': 1, 'message.compressed_size': req.length - 5, 'message.uncompressed_size': req.length - 5, 'message.body': '{"1":"sku-1","2":2}' },
      {
        'message.type': 'RECEIVED',
        'message.id': 2,
        'message.compressed_size': zlib.gzipSync(protoMessage('sku-2', 7)).length,
        'message.uncompressed_size': protoMessage('sku-2', 7).length,
        'message.body': '{"1":"sku-2","2":7}',
      },
      { 'message.type': 'SENT', 'message.id': 1, 'message.compressed_size': 6, 'message.uncompressed_size': 6, 'message.body': '{"1":"ok","2":1}' },
    ]);
  });

  it('counts messages beyond the capture limit without decoding them', () => {
    const h = harness({ default: { maxBodyBytes: 12 } });
    const ex = h.start({ protocolVersion: '2', method: 'POST', target: '/shop.Cart/List', headers: ['content-type', 'application/grpc+proto'] });
    ex.responseHead(200, ['content-type', 'application/grpc']);
    ex.responseBody(Buffer.concat([grpcFrame(protoMessage('a', 1)), grpcFrame(protoMessage('bbbbbbbbbb', 2))]));
    ex.responseEnd(['grpc-status', '0']);
    const ev = h.spans[0].events.map((e) => e.attributes);
    expect(ev).toHaveLength(2);
    expect(ev[0]['message.body']).toBe('{"1":"a","2":1}');
    expect(ev[1]['message.body']).toBeUndefined();
    expect(ev[1]['message.uncompressed_size']).toBe(14);
    expect(h.spans[0].attributes['http.response.body.truncated']).toBe(true);
  });

  it('marks SERVER spans as errors only for the semconv codes', () => {
    const h = harness();
    const call = (status: string, message?: string) => {
      const ex = h.start({ protocolVersion: '2', method: 'POST', target: '/shop.Cart/Get', headers: ['content-type', 'application/grpc'] });
      ex.responseHead(200, ['content-type', 'application/grpc']);
      ex.responseEnd(message === undefined ? ['grpc-status', status] : ['grpc-status', status, 'grpc-message', message]);
      return h.spans[h.spans.length - 1];
    };
    const notFound = call('5', 'no such cart');
    expect(notFound.status).toEqual({ code: StatusCode.UNSET });
    expect(notFound.attributes['error.type']).toBeUndefined();
    expect(notFound.attributes['rpc.grpc.status_code']).toBe(5);
    const internal = call('13', 'db%20down%3A%20timeout');
    expect(internal.status).toEqual({ code: StatusCode.ERROR, message: 'db down: timeout' });
    expect(internal.attributes['error.type']).toBe('13');
    expect(internal.attributes['http.response.trailer.grpc-message']).toEqual(['db%20down%3A%20timeout']);
  });

  it('marks CLIENT spans as errors for any non-zero code, from a trailers-only response', () => {
    const h = harness({ default: { headers: { response: ['content-type'] } } });
    const ex = h.start({ direction: 'outbound', protocolVersion: '2', method: 'POST', target: '/shop.Cart/Get', headers: ['content-type', 'application/grpc'] });
    ex.responseHead(200, ['content-type', 'application/grpc', 'grpc-status', '5', 'grpc-message', 'missing']);
    ex.responseEnd();
    const s = h.spans[0];
    expect(s.status).toEqual({ code: StatusCode.ERROR, message: 'missing' });
    expect(s.attributes['rpc.grpc.status_code']).toBe(5);
    expect(s.attributes['error.type']).toBe('5');
    expect(s.attributes['http.response.header.grpc-status']).toEqual(['5']);
  });
});

describe('sampling', () => {
  const traceWithLow56 = (low: string) => `0123456789abcdef01${low}`;

  it('decides on the low 56 bits of the trace id', () => {
    expect(keepByTraceId(traceWithLow56('7fffffffffffff'), 0.5)).toBe(true);
    expect(keepByTraceId(traceWithLow56('80000000000000'), 0.5)).toBe(false);
    expect(keepByTraceId(traceWithLow56('ffffffffffffff'), 1)).toBe(true);
    expect(keepByTraceId(traceWithLow56('00000000000000'), 0)).toBe(false);
    const ids = Array.from({ length: 100 }, (_, i) => traceWithLow56(Math.floor((i / 100) * 2 ** 56).toString(16).padStart(14, '0')));
    expect(ids.filter((id) => keepByTraceId(id, 0.25))).toHaveLength(25);
  });

  it('applies the rule to sampled parents deterministically on every hop', () => {
    const h = harness({ default: { sample: 0.5, keepSlowerThanMs: 60000 } });
    const keep = traceWithLow56('10000000000000');
    const drop = traceWithLow56('f0000000000000');
    for (let hop = 0; hop < 2; hop++) {
      for (const id of [keep, drop]) {
        const ex = h.start({ headers: ['traceparent', `00-${id}-${PARENT}-01`] });
        ex.responseHead(200, []);
        ex.responseEnd();
      }
    }
    expect(h.spans.map((s) => s.traceId)).toEqual([keep, keep]);
    expect(h.metrics.spansSampledOut.value).toBe(2);
  });

  it('propagates the head decision for root spans', () => {
    const h = harness({ default: { sample: 0, keepSlowerThanMs: 60000 } });
    const ex = h.start({});
    expect(ex.forwardHeaders[0][1]).toMatch(/-00$/);
    ex.responseHead(200, []);
    ex.responseEnd();
    expect(h.spans).toHaveLength(0);
    expect(h.metrics.spansSampledOut.value).toBe(1);
    expect(h.metrics.spansSubmitted.value).toBe(0);
  });

  it('always keeps errors and slow requests', () => {
    const h = harness({ default: { sample: 0, keepSlowerThanMs: 60000 } });
    const err = h.start({});
    err.responseHead(500, []);
    err.responseEnd();
    expect(h.spans).toHaveLength(1);
    const slow = harness({ default: { sample: 0, keepSlowerThanMs: 0 } });
    const ex = slow.start({});
    ex.responseHead(200, []);
    ex.responseEnd();
    expect(slow.spans).toHaveLength(1);
  });

  it('never exports a span whose parent was not sampled, even an error', () => {
    const h = harness({ default: { sample: 1, keepSlowerThanMs: 0 } });
    const ex = h.start({ headers: ['traceparent', `00-${TRACE}-${PARENT}-00`] });
    expect(ex.forwardHeaders[0][1]).toBe(`00-${TRACE}-${ex.forwardHeaders[0][1].slice(36, 52)}-00`);
    ex.responseHead(500, []);
    ex.responseEnd();
    expect(h.spans).toHaveLength(0);
    expect(h.metrics.spansSampledOut.value).toBe(1);
  });

  it('keeps B3 debug requests whatever the rate', () => {
    const h = harness({ default: { sample: 0, keepSlowerThanMs: 60000 } });
    const ex = h.start({ headers: ['b3', `${TRACE}-${PARENT}-d`] });
    ex.responseEnd();
    expect(h.spans).toHaveLength(1);
    expect(ex.forwardHeaders).toContainEqual(['b3', `${TRACE}-${h.spans[0].spanId}-d-${PARENT}`]);
  });

  it('publishes every span to an active tap, kept or not', () => {
    const h = harness({ default: { sample: 0, keepSlowerThanMs: 60000 } }, { tap: true });
    const ex = h.start({ method: 'POST', headers: ['content-type', 'text/plain'] });
    ex.requestBody(Buffer.from('hi'));
    ex.responseHead(200, []);
    ex.responseEnd();
    expect(h.spans).toHaveLength(0);
    expect(h.tapped).toHaveLength(1);
    expect(h.tapped[0].attributes['http.request.body.content']).toBe('hi');
  });
});

describe('never throws into the handler', () => {
  it('survives a throwing sink', () => {
    const h = harness({}, { sink: () => { throw new Error('queue exploded'); } });
    const ex = h.start({});
    ex.responseHead(200, []);
    expect(() => ex.responseEnd()).not.toThrow();
    expect(h.metrics.captureErrors.value).toBe(1);
    expect(h.metrics.spansSubmitted.value).toBe(0);
  });

  it('survives a throwing policy and forwards context untouched', () => {
    const h = harness({}, { policy: () => { throw new Error('no policy'); } });
    const ex = h.start({ headers: ['traceparent', `00-${TRACE}-${PARENT}-01`] });
    expect(ex.forwardHeaders).toEqual([]);
    expect(() => {
      ex.requestBody(Buffer.from('x'));
      ex.responseHead(200, []);
      ex.responseEnd();
    }).not.toThrow();
    expect(h.metrics.captureErrors.value).toBe(1);
  });

  it('survives malformed handler input', () => {
    const h = harness();
    const ex = h.start({ headers: ['content-type'] as unknown as string[] });
    expect(() => {
      ex.requestBody(undefined as unknown as Buffer);
      ex.responseHead(200, [undefined as unknown as string, 'x']);
      ex.responseEnd();
    }).not.toThrow();
    expect(h.metrics.captureErrors.value).toBeGreaterThan(0);
  });
});
