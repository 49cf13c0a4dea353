// The whole proxy as a user runs it: startProxy with an inbound and an outbound listener in
// front of real node:http servers, real clients (undici, curl), spans decoded by a real OTLP
// gRPC receiver with the official protos, the admin listener, and a live policy file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { request } from 'undici';
import { startProxy, type RunningProxy } from '../../src/proxy/proxy.js';
import { parseProxyArgs, type ProxyConfig } from '../../src/proxy/config.js';
import { spanMatching, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

const run = promisify(execFile);

let receiver: OtlpReceiver;
let app: http.Server;
let appPort: number;
let proxy: RunningProxy;
let policyFile: string;
const seenByApp: http.IncomingHttpHeaders[] = [];

const inbound = () => proxy.listeners.find((l) => l.direction === 'inbound')!.address;
const outbound = () => proxy.listeners.find((l) => l.direction === 'outbound')!.address;
const url = (path: string, at = inbound()) => `http://127.0.0.1:${at.port}${path}`;

const spanFor = (predicate: (s: ReceivedSpan) => boolean) => spanMatching(receiver, () => proxy.flush(), predicate);

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  app = http.createServer((req, res) => {
    seenByApp.push(req.headers);
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url?.startsWith('/fail')) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":"Book server is on high load"}');
      } else if (req.url?.startsWith('/gzip')) {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
        res.end(zlib.gzipSync('compressed hello'));
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'sid=secret-session' });
        res.end(JSON.stringify({ received: body.length, path: req.url }));
      }
    });
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  appPort = (app.address() as { port: number }).port;
  policyFile = join(mkdtempSync(join(tmpdir(), 'st-policy-')), 'policy.yaml');
  writeFileSync(policyFile, 'routes:\n  - match: { pathTemplate: "/books/:id" }\n');
  const config = parseProxyArgs([
    '--inbound', `127.0.0.1:0=127.0.0.1:${appPort}`,
    '--outbound', `127.0.0.1:0=127.0.0.1:${appPort}`,
    '--service-name', 'bookstore',
    '--otlp-endpoint', receiver.endpoint,
    '--policy', policyFile,
    '--admin', '127.0.0.1:0',
  ]) as ProxyConfig;
  proxy = await startProxy(config, {
    env: { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test', SIDETRACE_POD_NAME: 'books-7d4f', SIDETRACE_POD_NAMESPACE: 'shop' },
    log: () => {},
  });
});

afterAll(async () => {
  await proxy?.close();
  await receiver?.close();
  app?.close();
});

describe('sidetrace proxy end to end', () => {
  it('continues an incoming trace, forwards the proxy span as parent, and exports a SERVER span with bodies', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await request(url('/books/42?token=abc&q=dune'), {
      method: 'POST',
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'vendor=x', 'content-type': 'application/json', authorization: 'Bearer s3cret', cookie: 'a=b' },
      body: JSON.stringify({ title: 'Dune', password: 'hunter2' }),
    });
    const body = await res.body.json();
    expect(body).toEqual({ received: JSON.stringify({ title: 'Dune', password: 'hunter2' }).length, path: '/books/42?token=abc&q=dune' });

    const forwarded = seenByApp.at(-1)!;
    const fwd = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(forwarded.traceparent));
    expect(fwd?.[1]).toBe(traceId);
    expect(forwarded.tracestate).toBe('vendor=x');
    expect(forwarded.authorization).toBe('Bearer s3cret'); // the app still gets its credentials

    const span = await spanFor((s) => s.traceId === traceId);
    expect(span.spanId).toBe(fwd![2]);
    expect(span.parentSpanId).toBe('00f067aa0ba902b7');
    expect(span.traceState).toBe('vendor=x');
    expect(span.kind).toBe(2);
    expect(span.name).toBe('POST /books/:id');
    const a = span.attributes;
    expect(a['http.request.method']).toBe('POST');
    expect(a['url.path']).toBe('/books/42');
    expect(a['url.query']).toBe('token=REDACTED&q=dune');
    expect(a['http.route']).toBe('/books/:id');
    expect(a['http.response.status_code']).toBe(200);
    expect(a['network.protocol.version']).toBe('1.1');
    expect(a['server.port']).toBe(inbound().port);
    expect(a['client.address']).toBe('127.0.0.1');
    expect(a['http.request.header.authorization']).toEqual(['REDACTED']);
    expect(a['http.request.header.cookie']).toEqual(['REDACTED']);
    expect(a['http.response.header.set-cookie']).toEqual(['REDACTED']);
    expect(JSON.parse(String(a['http.request.body.content']))).toEqual({ title: 'Dune', password: 'REDACTED' });
    expect(a['http.response.body.content']).toContain('"path":"/books/42?token=abc&q=dune"');
    expect(span.status.code).toBe(0);
    expect(span.resource['service.name']).toBe('bookstore');
    expect(span.resource['k8s.pod.name']).toBe('books-7d4f');
    expect(span.resource['k8s.namespace.name']).toBe('shop');
    expect(span.resource['deployment.environment.name']).toBe('test');
    expect(JSON.stringify(receiver.spans(), (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toMatch(/s3cret|hunter2|secret-session/);
  });

  it('starts a trace when none is given and marks a 5xx SERVER span as an error; the outbound listener makes CLIENT spans', async () => {
    const res = await request(url('/fail'), { method: 'GET' });
    expect(res.statusCode).toBe(503);
    await res.body.text();
    const tp = String(seenByApp.at(-1)!.traceparent);
    const [, traceId, spanId] = tp.split('-');
    const server = await spanFor((s) => s.spanId === spanId);
    expect(server.traceId).toBe(traceId);
    expect(server.parentSpanId).toBe('');
    expect(server.status.code).toBe(2);
    expect(server.attributes['error.type']).toBe('503');
    expect(server.attributes['http.response.body.content']).toBe('{"error":"Book server is on high load"}');

    const { stdout } = await run('curl', ['-sS', '--compressed', url('/gzip', outbound())]);
    expect(stdout).toBe('compressed hello');
    const client = await spanFor((s) => s.kind === 3 && s.attributes['url.path'] === '/gzip');
    expect(client.attributes['server.port']).toBe(appPort);
    expect(client.attributes['http.response.body.content']).toBe('compressed hello');
    expect(String(client.attributes['user_agent.original'])).toMatch(/^curl\//);
  });

  it('applies an edited policy live, rejects an invalid one naming the field, and keeps the last good one', async () => {
    writeFileSync(policyFile, 'routes:\n  - match: { path: /quiet }\n    spans: false\n');
    await expect.poll(() => JSON.stringify(proxy.policy.current().effective), { timeout: 5000 }).toContain('/quiet');
    const before = receiver.spans().length;
    const r1 = await request(url('/quiet'));
    await r1.body.text();
    await proxy.flush();
    expect(receiver.spans().length).toBe(before);

    writeFileSync(policyFile, 'routes:\n  - match: { path: /quiet, methods: [1] }\n');
    await expect.poll(() => proxy.metrics.policyErrors.value, { timeout: 5000 }).toBe(1);
    const r2 = await request(url('/quiet'));
    await r2.body.text();
    await proxy.flush();
    expect(receiver.spans().length).toBe(before); // still the last good policy: spans off
  });

  it('serves health, readiness, metrics and the effective config on the admin listener', async () => {
    const admin = `http://127.0.0.1:${proxy.admin.port}`;
    expect((await request(`${admin}/healthz`)).statusCode).toBe(200);
    expect((await request(`${admin}/readyz`)).statusCode).toBe(200);
    const metrics = await (await request(`${admin}/metrics`)).body.text();
    expect(metrics).toMatch(/^sidetrace_requests_total [1-9]\d*$/m);
    expect(metrics).toMatch(/^sidetrace_spans_exported_total [1-9]\d*$/m);
    expect(metrics).toMatch(/^sidetrace_policy_errors_total 1$/m);
    const cfg = (await (await request(`${admin}/config`)).body.json()) as { serviceName: string; policy: { routes: unknown[] } };
    expect(cfg.serviceName).toBe('bookstore');
    expect(cfg.policy.routes).toHaveLength(1);
  });
});
