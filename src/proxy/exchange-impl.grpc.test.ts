// gRPC spans from real calls: grpc-js client → h2 handler with this exchange → grpc-js server.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoClient, startGrpcEcho, type GrpcEchoServer } from '../../test/support/grpc-echo.js';
import { startH2Proxy, type H2Proxy } from '../../test/support/h2-proxy.js';
import { compilePolicy } from '../policy/parse.js';
import { Metrics } from '../telemetry/metrics.js';
import { SpanKind, StatusCode, type SpanRecord } from '../telemetry/span.js';
import { createExchangeFactory } from './exchange-impl.js';
import { createProxyMetrics } from './proxy-metrics.js';

let server: GrpcEchoServer;
let proxy: H2Proxy;
let client: ReturnType<typeof echoClient>;
const spans: SpanRecord[] = [];

beforeAll(async () => {
  server = await startGrpcEcho();
  const policy = compilePolicy({ default: { redact: { jsonKeys: [] } } });
  const exchanges = createExchangeFactory({
    policy: () => policy,
    sink: { submit: (s) => spans.push(s) },
    metrics: createProxyMetrics(new Metrics()),
  });
  proxy = await startH2Proxy({ address: '127.0.0.1', port: server.port }, exchanges);
  client = echoClient(proxy.port);
});

afterAll(async () => {
  client.close();
  await proxy.close();
  await server.close();
});

function call<T>(method: string, req: object, md = new grpc.Metadata()): Promise<{ err: grpc.ServiceError | null; reply?: T }> {
  return new Promise((resolve) => {
    (client[method] as (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: T) => void) => void)(req, md, (err, reply) =>
      resolve({ err, reply }),
    );
  });
}

/** The span lands when the proxy sees the response end, which can trail the client's callback. */
async function spanFor(name: string, n: number): Promise<SpanRecord> {
  for (let i = 0; i < 100; i++) {
    const found = spans.filter((s) => s.name === name);
    if (found.length >= n) return found[n - 1];
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no span ${name} #${n}; have ${spans.map((s) => s.name).join(', ')}`);
}

describe('gRPC spans from real calls', () => {
  it('records a unary call: rpc attributes, metadata with secrets redacted, decoded messages', async () => {
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer abc');
    md.set('x-tenant', 'acme');
    const { err, reply } = await call<{ text: string }>('Unary', { text: 'hello' }, md);
    expect(err).toBeNull();
    expect(reply?.text).toBe('hello');

    const s = await spanFor('sidetrace.test.Echo/Unary', 1);
    expect(s.kind).toBe(SpanKind.SERVER);
    expect(s.status).toEqual({ code: StatusCode.UNSET });
    const a = s.attributes;
    expect(a['rpc.system']).toBe('grpc');
    expect(a['rpc.service']).toBe('sidetrace.test.Echo');
    expect(a['rpc.method']).toBe('Unary');
    expect(a['rpc.grpc.status_code']).toBe(0);
    expect(a['network.protocol.version']).toBe('2');
    expect(a['url.path']).toBe('/sidetrace.test.Echo/Unary');
    expect(a['http.request.header.authorization']).toEqual(['REDACTED']);
    expect(a['http.request.header.x-tenant']).toEqual(['acme']);
    expect(a['http.response.trailer.x-trailer']).toEqual(['bye']);
    expect(a['http.response.trailer.grpc-status']).toEqual(['0']);
    expect(s.events.map((e) => [e.attributes['message.type'], e.attributes['message.id'], e.attributes['message.body']])).toEqual([
      ['RECEIVED', 1, '{"1":"hello"}'],
      // The server's grpc-js writes its reply's empty payload and zero index explicitly.
      ['SENT', 1, '{"1":"hello","2":"","3":0}'],
    ]);
    expect(s.events[0].attributes['message.uncompressed_size']).toBe(7);
  });

  it('records one event per streamed message', async () => {
    const replies: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = (client.ServerStream as (r: object) => grpc.ClientReadableStream<{ text: string }>)({ text: 'tick', count: 3 });
      stream.on('data', (r: { text: string }) => replies.push(r.text));
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
    expect(replies).toEqual(['tick 0', 'tick 1', 'tick 2']);
    const s = await spanFor('sidetrace.test.Echo/ServerStream', 1);
    expect(s.events.map((e) => e.attributes['message.type'])).toEqual(['RECEIVED', 'SENT', 'SENT', 'SENT']);
    expect(s.attributes['rpc.grpc.status_code']).toBe(0);
    const sent = s.events.filter((e) => e.attributes['message.type'] === 'SENT');
    expect(sent.map((e) => e.attributes['message.id'])).toEqual([1, 2, 3]);
    expect(sent[2].attributes['message.body']).toBe('{"1":"tick 2","2":"","3":2}');
    for (let i = 1; i < s.events.length; i++) expect(s.events[i].timeMs).toBeGreaterThanOrEqual(s.events[i - 1].timeMs);
  });

  it('marks INTERNAL as an error with the grpc-message, and NOT_FOUND not, on a SERVER span', async () => {
    const internal = await call('Unary', { text: 'db down: 100%', failCode: grpc.status.INTERNAL });
    expect(internal.err?.code).toBe(grpc.status.INTERNAL);
    const notFound = await call('Unary', { text: 'no such thing', failCode: grpc.status.NOT_FOUND });
    expect(notFound.err?.code).toBe(grpc.status.NOT_FOUND);

    const e = await spanFor('sidetrace.test.Echo/Unary', 2);
    expect(e.status).toEqual({ code: StatusCode.ERROR, message: 'db down: 100%' });
    expect(e.attributes['error.type']).toBe('13');
    expect(e.attributes['rpc.grpc.status_code']).toBe(13);
    const n = await spanFor('sidetrace.test.Echo/Unary', 3);
    expect(n.status).toEqual({ code: StatusCode.UNSET });
    expect(n.attributes['rpc.grpc.status_code']).toBe(5);
    expect(n.attributes['error.type']).toBeUndefined();
  });

  it('a trailers-only error status reaches the span', async () => {
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      const s = (client.ClientStream as (cb: (e: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<unknown>)(resolve);
      s.write({ text: 'nope', failCode: grpc.status.PERMISSION_DENIED });
      s.end();
    });
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
    const s = await spanFor('sidetrace.test.Echo/ClientStream', 1);
    expect(s.attributes['rpc.grpc.status_code']).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('a cancelled call ends its span with error.type RST_STREAM:CANCEL', async () => {
    const before = server.calls;
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const s = (client.Bidi as () => grpc.ClientDuplexStream<unknown, unknown>)();
      s.on('error', resolve);
      s.on('data', () => {});
      s.write({ text: 'wait', hang: true });
      const poll = setInterval(() => {
        if (server.calls > before) {
          clearInterval(poll);
          s.cancel();
        }
      }, 5);
    });
    expect(err.code).toBe(grpc.status.CANCELLED);
    const s = await spanFor('sidetrace.test.Echo/Bidi', 1);
    expect(s.attributes['error.type']).toBe('RST_STREAM:CANCEL');
    expect(s.status.code).toBe(StatusCode.ERROR);
  });
});
