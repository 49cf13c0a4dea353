// The Exchange driven by real HTTP traffic: a minimal forwarding handler written against the
// contract (as h1/ does) between an undici client and a node:http upstream.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePolicy } from '../policy/parse.js';
import { Metrics } from '../telemetry/metrics.js';
import type { SpanRecord } from '../telemetry/span.js';
import { createExchangeFactory } from './exchange-impl.js';
import { createProxyMetrics } from './proxy-metrics.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

const payload = JSON.stringify({ books: Array.from({ length: 300 }, (_, i) => ({ id: i, title: `Book ${i}` })), token: 'secret-token' });
const gzipped = zlib.gzipSync(payload);

let upstream: http.Server;
let proxy: http.Server;
let proxyUrl: string;
const seen: http.IncomingHttpHeaders[] = [];
const spans: SpanRecord[] = [];

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      // Several writes so the proxy sees several chunks.
      for (let i = 0; i < gzipped.length; i += 500) res.write(gzipped.subarray(i, i + 500));
      res.end();
    });
  });
  const upstreamPort = await listen(upstream);

  const metrics = createProxyMetrics(new Metrics());
  const policy = compilePolicy({ default: { maxBodyBytes: 4096 } });
  const exchanges = createExchangeFactory({ policy: () => policy, sink: { submit: (s) => spans.push(s) }, metrics });

  proxy = http.createServer((req, res) => {
    const ex = exchanges.start({
      direction: 'inbound',
      protocolVersion: req.httpVersion === '1.0' ? '1.0' : '1.1',
      method: req.method!,
      target: req.url!,
      headers: req.rawHeaders,
      authority: req.headers.host,
      client: { address: req.socket.remoteAddress!, port: req.socket.remotePort! },
      server: { address: '127.0.0.1', port: upstreamPort },
    });
    const out: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (!ex.replacesHeaders.has(req.rawHeaders[i].toLowerCase())) out.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
    }
    for (const [n, v] of ex.forwardHeaders) out.push(n, v);
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: out }, (ures) => {
      ex.responseHead(ures.statusCode!, ures.rawHeaders);
      res.writeHead(ures.statusCode!, ures.rawHeaders);
      ures.on('data', (c: Buffer) => {
        ex.responseBody(c);
        res.write(c);
      });
      ures.on('end', () => {
        ex.responseEnd(ures.rawTrailers);
        res.end();
      });
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      ex.fail(err.code ?? 'upstream_error', err.message);
      res.destroy();
    });
    req.on('data', (c: Buffer) => {
      ex.requestBody(c);
      up.write(c);
    });
    req.on('end', () => {
      ex.requestEnd(req.rawTrailers);
      up.end();
    });
  });
  proxyUrl = `http://127.0.0.1:${await listen(proxy)}`;
});

afterAll(async () => {
  await new Promise((r) => proxy.close(r));
  await new Promise((r) => upstream.close(r));
});

describe('exchange under real HTTP traffic', () => {
  it('propagates context upstream, forwards bytes unchanged and records the decoded body', async () => {
    const res = await request(`${proxyUrl}/books?limit=300`, {
      method: 'POST',
      headers: {
        traceparent: `00-${TRACE}-${PARENT}-01`,
        tracestate: 'rojo=00f067aa0ba902b7',
        b3: `${TRACE}-${PARENT}-1`,
        'content-type': 'application/json',
      },
      body: '{"q":"dune"}',
    });
    const received = Buffer.from(await res.body.arrayBuffer());
    expect(received.equals(gzipped)).toBe(true);

    expect(spans).toHaveLength(1);
    const span = spans[0];
    const h = seen[0];
    expect(h.traceparent).toBe(`00-${TRACE}-${span.spanId}-01`);
    expect(h.tracestate).toBe('rojo=00f067aa0ba902b7');
    expect(h.b3).toBe(`${TRACE}-${span.spanId}-1-${PARENT}`);
    expect(span.traceId).toBe(TRACE);
    expect(span.parentSpanId).toBe(PARENT);

    const a = span.attributes;
    expect(a['http.request.body.content']).toBe('{"q":"dune"}');
    expect(a['http.response.body.size']).toBe(gzipped.length);
    const body = a['http.response.body.content'] as string;
    expect(body.length).toBeLessThanOrEqual(4096);
    expect(body.length).toBeGreaterThanOrEqual(3072);
    expect(payload.startsWith(body)).toBe(true);
    expect(a['http.response.body.truncated']).toBe(true);
    expect(a['client.address']).toBe('127.0.0.1');
    expect(a['http.response.status_code']).toBe(200);
  });
});
