// gRPC calls through the h2 handler with the real exchange (capture + tracing, default policy):
// the spans carry the rpc.* attributes, the status and one event per message each way.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaultPolicy } from '../../src/policy/parse.js';
import { createExchangeFactory } from '../../src/proxy/exchange-impl.js';
import { createProxyMetrics } from '../../src/proxy/proxy-metrics.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { SpanRecord } from '../../src/telemetry/span.js';
import { echoClient, startGrpcEcho, type EchoReply, type GrpcEchoServer } from '../support/grpc-echo.js';
import { startH2Proxy, type H2Proxy } from '../support/h2-proxy.js';

let server: GrpcEchoServer;
let proxy: H2Proxy;
let client: ReturnType<typeof echoClient>;
const spans: SpanRecord[] = [];

beforeAll(async () => {
  server = await startGrpcEcho();
  const metrics = createProxyMetrics(new Metrics());
  const exchanges = createExchangeFactory({ serviceName: 'grpc-span-test', policy: defaultPolicy, sink: { submit: (s) => spans.push(s) }, metrics });
  proxy = await startH2Proxy({ address: '127.0.0.1', port: server.port }, exchanges);
  client = echoClient(proxy.port);
});

afterAll(async () => {
  client.close();
  await proxy.close();
  await server.close();
});

function call(f: (done: (err: grpc.ServiceError | null) => void) => void): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => f(resolve));
}

async function spanFor(method: string): Promise<SpanRecord> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = spans.find((x) => x.attributes['rpc.method'] === method);
    if (s !== undefined) return s;
    if (Date.now() > deadline) throw new Error(`no span for ${method}; have ${spans.map((x) => x.name).join(', ')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it('a unary call becomes a SERVER span with rpc.* attributes and one message event each way', async () => {
  const err = await call((done) => client.Unary({ text: 'hello span' }, (e: grpc.ServiceError | null) => done(e)));
  expect(err).toBeNull();
  const span = await spanFor('Unary');
  expect(span.kind).toBe(2); // SERVER: the handler was started inbound
  expect(span.name).toBe('sidetrace.test.Echo/Unary');
  expect(span.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'sidetrace.test.Echo', 'rpc.method': 'Unary', 'rpc.grpc.status_code': 0 });
  const messages = span.events.filter((e) => e.name === 'message');
  expect(messages.map((e) => e.attributes['message.type'])).toEqual(['RECEIVED', 'SENT']);
  expect(String(messages[0].attributes['message.body'])).toContain('hello span');
  expect(String(messages[1].attributes['message.body'])).toContain('hello span');
});

it('server streaming: one SENT event per reply', async () => {
  await new Promise<void>((resolve) => {
    const s = client.ServerStream({ text: 'n', count: 3 }) as grpc.ClientReadableStream<EchoReply>;
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('status', () => resolve());
  });
  const span = await spanFor('ServerStream');
  const types = span.events.filter((e) => e.name === 'message').map((e) => e.attributes['message.type']);
  expect(types).toEqual(['RECEIVED', 'SENT', 'SENT', 'SENT']);
  expect(span.attributes['rpc.grpc.status_code']).toBe(0);
});

it('a trailers-only error status reaches the span', async () => {
  const err = await call((done) => {
    const s = client.ClientStream((e: grpc.ServiceError | null) => done(e)) as grpc.ClientWritableStream<unknown>;
    s.write({ text: 'nope', failCode: grpc.status.PERMISSION_DENIED });
    s.end();
  });
  expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
  const span = await spanFor('ClientStream');
  expect(span.attributes['rpc.grpc.status_code']).toBe(grpc.status.PERMISSION_DENIED);
});

it('a cancelled call ends its span with error.type RST_STREAM:CANCEL', async () => {
  const before = server.calls;
  const err = await call((done) => {
    const s = client.Bidi() as grpc.ClientDuplexStream<unknown, EchoReply>;
    s.on('error', (e: grpc.ServiceError) => done(e));
    s.on('data', () => {});
    s.write({ text: 'wait', hang: true });
    const poll = setInterval(() => {
      if (server.calls > before) {
        clearInterval(poll);
        s.cancel();
      }
    }, 5);
  });
  expect(err?.code).toBe(grpc.status.CANCELLED);
  const span = await spanFor('Bidi');
  expect(span.attributes['error.type']).toBe('RST_STREAM:CANCEL');
  expect(span.status.code).toBe(2);
});
