// gRPC through the whole proxy as a user runs it (startProxy: listener + protocol detection +
// h2 handler + exchange + OTLP export), spans read back by a real OTLP receiver.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseProxyArgs, type ProxyConfig } from '../../src/proxy/config.js';
import { startProxy, type RunningProxy } from '../../src/proxy/proxy.js';
import { echoClient, startGrpcEcho, type EchoReply, type GrpcEchoServer } from '../support/grpc-echo.js';
import { spanMatching, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

let receiver: OtlpReceiver;
let server: GrpcEchoServer;
let proxy: RunningProxy;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  server = await startGrpcEcho();
  const config = parseProxyArgs([
    '--inbound', `127.0.0.1:0=127.0.0.1:${server.port}`,
    '--outbound', `127.0.0.1:0=127.0.0.1:${server.port}`,
    '--service-name', 'echo-svc',
    '--otlp-endpoint', receiver.endpoint,
    '--admin', '127.0.0.1:0',
  ]) as ProxyConfig;
  proxy = await startProxy(config, { env: {}, log: () => {} });
});

afterAll(async () => {
  await proxy?.close();
  await server?.close();
  await receiver?.close();
});

const portOf = (direction: 'inbound' | 'outbound') => proxy.listeners.find((l) => l.direction === direction)!.address.port;

const spanFor = (predicate: (s: ReceivedSpan) => boolean) => spanMatching(receiver, () => proxy.flush(), predicate);

function unary(port: number, text: string, md: grpc.Metadata): Promise<{ err: grpc.ServiceError | null; reply?: EchoReply }> {
  const c = echoClient(port);
  return new Promise((resolve) =>
    c.Unary({ text }, md, (err: grpc.ServiceError | null, reply?: EchoReply) => {
      c.close();
      resolve({ err, reply });
    }),
  );
}

it('an inbound call continues the caller trace and exports a SERVER span with rpc.* and messages', async () => {
  const traceId = '5bf92f3577b34da6a3ce929d0e0e4736';
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${traceId}-00f067aa0ba902b7-01`);
  const { err, reply } = await unary(portOf('inbound'), 'traced hello', md);
  expect(err).toBeNull();
  expect(reply?.text).toBe('traced hello');

  const forwarded = String(server.lastMetadata?.get('traceparent')[0]);
  const fwd = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(forwarded);
  expect(fwd?.[1]).toBe(traceId);

  const span = await spanFor((s) => s.traceId === traceId);
  expect(span.kind).toBe(2);
  expect(span.spanId).toBe(fwd![2]);
  expect(span.parentSpanId).toBe('00f067aa0ba902b7');
  expect(span.name).toBe('sidetrace.test.Echo/Unary');
  expect(span.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'sidetrace.test.Echo', 'rpc.method': 'Unary', 'rpc.grpc.status_code': 0 });
  expect(span.events.filter((e) => e.name === 'message').map((e) => e.attributes['message.type'])).toEqual(['RECEIVED', 'SENT']);
  expect(span.resource['service.name']).toBe('echo-svc');
});

it('an outbound call exports a CLIENT span with the error status', async () => {
  const traceId = '6bf92f3577b34da6a3ce929d0e0e4736';
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${traceId}-00f067aa0ba902b7-01`);
  const c = echoClient(portOf('outbound'));
  const err = await new Promise<grpc.ServiceError | null>((resolve) =>
    c.Unary({ text: 'gone', failCode: grpc.status.NOT_FOUND }, md, (e: grpc.ServiceError | null) => resolve(e)),
  );
  c.close();
  expect(err?.code).toBe(grpc.status.NOT_FOUND);
  expect(err?.details).toBe('gone');
  const span = await spanFor((s) => s.traceId === traceId);
  expect(span.kind).toBe(3);
  expect(span.attributes['rpc.grpc.status_code']).toBe(grpc.status.NOT_FOUND);
});
