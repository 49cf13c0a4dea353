// `sidetrace tap` against real admin listeners (createAdminServer's /tap stream): exact
// filters, both output formats, several proxies at once, and the API server pod-proxy path.

import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { createAdminServer, type AdminServer } from '../../src/proxy/admin.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { SpanRecord } from '../../src/telemetry/span.js';
import { run } from '../../src/commands/tap.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function admin(serviceName: string): Promise<{ server: AdminServer; addr: string }> {
  const server = createAdminServer({
    listen: { address: '127.0.0.1', port: 0 },
    metrics: new Metrics(),
    ready: () => true,
    config: () => ({ serviceName, listeners: [] }),
  });
  const a = await server.listen();
  cleanups.push(() => server.close());
  return { server, addr: `${a.address}:${a.port}` };
}

let n = 0;
function span(kind: 2 | 3, method: string, path: string, status: number, latencyMs: number, extra: SpanRecord['attributes'] = {}): SpanRecord {
  n++;
  const startMs = Date.UTC(2026, 10, 21, 12, 0, 0) + n;
  return {
    traceId: n.toString(16).padStart(32, '0'),
    spanId: n.toString(16).padStart(16, '0'),
    sampled: true,
    name: method,
    kind: kind as never,
    startMs,
    endMs: startMs + latencyMs,
    attributes: {
      'http.request.method': method,
      'url.path': path,
      'http.response.status_code': status,
      'network.protocol.version': '1.1',
      'server.address': 'books.local',
      'server.port': 8080,
      ...(kind === 2 ? { 'client.address': '10.0.0.7', 'client.port': 40000 + n } : { 'network.peer.address': '127.0.0.1', 'network.peer.port': 9100 }),
      ...extra,
    },
    events: [],
    status: { code: status >= 500 ? 2 : 0 },
  };
}

const TRAFFIC = (): SpanRecord[] => [
  span(2, 'POST', '/books/purchase', 200, 340),
  span(2, 'POST', '/books/purchase', 502, 910),
  span(2, 'GET', '/books/42', 404, 3),
  span(3, 'POST', '/books/order', 503, 880),
  span(2, 'GET', '/healthz', 200, 0.4),
  span(2, 'POST', '/books', 201, 45),
  span(3, 'POST', '/books/validate', 200, 60),
];

interface TapRun {
  lines(): string[];
  stderr(): string;
  done: Promise<number>;
}

function startTap(args: string[]): TapRun {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (c) => (o += c));
  err.on('data', (c) => (e += c));
  const done = run(args, out, err);
  return { lines: () => o.split('\n').filter(Boolean), stderr: () => e, done };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function tapWith(filters: string[], expected: number): Promise<string[]> {
  const { server, addr } = await admin('bookstore');
  const t = startTap([addr, ...filters, '--max-events', String(expected)]);
  await until(() => server.tap.active, 'the tap client to subscribe');
  // Twice: a filter that let one extra line through would show it before the expected ones end.
  for (const s of [...TRAFFIC(), ...TRAFFIC()]) server.tap.publish(s);
  expect(await t.done).toBe(0);
  const [head, ...rows] = t.lines();
  expect(head).toMatch(/^TIMESTAMP\s+SRC\s+DST\s+PROTO\s+METHOD\s+HOST\s+PATH\s+STATUS\s+LATENCY$/);
  return rows.map((r) => r.split(/\s+/).slice(3).join(' '));
}

describe('tap filters are exact', () => {
  it.each([
    [['--status', '5xx'], ['HTTP/1.1 POST books.local /books/purchase 502 910.0ms', 'HTTP/1.1 POST books.local /books/order 503 880.0ms']],
    [['--status', '404,201'], ['HTTP/1.1 GET books.local /books/42 404 3.0ms', 'HTTP/1.1 POST books.local /books 201 45.0ms']],
    [['--path', '/books'], ['HTTP/1.1 POST books.local /books 201 45.0ms']],
    [['--path', '/books/*', '--method', 'get'], ['HTTP/1.1 GET books.local /books/42 404 3.0ms']],
    [['--method', 'POST', '--min-latency', '800ms'], ['HTTP/1.1 POST books.local /books/purchase 502 910.0ms', 'HTTP/1.1 POST books.local /books/order 503 880.0ms']],
    [['--min-latency', '0.9s'], ['HTTP/1.1 POST books.local /books/purchase 502 910.0ms']],
    [['--min-latency', '340'], ['HTTP/1.1 POST books.local /books/purchase 200 340.0ms', 'HTTP/1.1 POST books.local /books/purchase 502 910.0ms', 'HTTP/1.1 POST books.local /books/order 503 880.0ms']],
  ])('%j', async (filters, want) => {
    // Each traffic round repeats, so the expected rows come twice in order.
    const rows = await tapWith(filters, want.length * 2);
    expect(rows).toEqual([...want, ...want]);
  });

  it('prints SRC and DST per direction: caller → app inbound, app → upstream outbound', async () => {
    const { server, addr } = await admin('bookstore');
    const t = startTap([addr, '--path', '/books/*', '--max-events', '2']);
    await until(() => server.tap.active, 'subscribe');
    server.tap.publish(span(2, 'GET', '/books/1', 200, 5));
    server.tap.publish(span(3, 'GET', '/books/2', 200, 5));
    await t.done;
    const [, inbound, outbound] = t.lines().map((l) => l.split(/\s+/));
    expect(inbound[1]).toMatch(/^10\.0\.0\.7:4\d{4}$/);
    expect(inbound[2]).toBe('books.local:8080');
    expect(outbound.slice(1, 3)).toEqual(['bookstore', '127.0.0.1:9100']);
    expect(inbound[0]).toMatch(/^2026-11-21T12:00:00\.\d{3}Z$/);
  });

  it('filters by the service name each proxy reports, across several proxies', async () => {
    const a = await admin('bookstore');
    const b = await admin('book-orders');
    const t = startTap([a.addr, b.addr, '--service', 'book-orders', '-o', 'json', '--max-events', '1']);
    await until(() => a.server.tap.active && b.server.tap.active, 'both subscriptions');
    a.server.tap.publish(span(2, 'POST', '/books/purchase', 502, 900));
    b.server.tap.publish(span(2, 'POST', '/books/order', 503, 880, {
      'http.request.header.content-type': ['application/json'],
      'http.response.body.content': '{"error":"Book server is on high load!"}',
      'http.request.body.content': new Uint8Array([0, 1, 2, 255]),
    }));
    await t.done;
    const lines = t.lines().map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      service: 'book-orders',
      source: b.addr,
      attributes: {
        'url.path': '/books/order',
        'http.request.header.content-type': ['application/json'],
        'http.response.body.content': '{"error":"Book server is on high load!"}',
        'http.request.body.content': { base64: 'AAEC/w==' },
      },
    });
  });

  it('keeps streaming from live proxies while reporting one that is down', async () => {
    const live = await admin('bookstore');
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadAddr = `127.0.0.1:${(dead.address() as AddressInfo).port}`;
    await new Promise<void>((r) => dead.close(() => r()));
    const t = startTap([deadAddr, live.addr, '--max-events', '1']);
    await until(() => live.server.tap.active, 'subscribe');
    live.server.tap.publish(span(2, 'GET', '/ok', 200, 1));
    await t.done;
    expect(t.lines()[1]).toContain('/ok');
    expect(t.stderr()).toContain(`${deadAddr}: connect ECONNREFUSED`);
  });

  it.each([
    [['127.0.0.1:1', '--status', '6xx'], '--status: "6xx" is not a status code'],
    [['127.0.0.1:1', '--path', 'books'], '--path: "books" must start with /'],
    [['127.0.0.1:1', '--min-latency', 'slow'], '--min-latency: "slow" is not a duration'],
    [['127.0.0.1:1', '-o', 'yaml'], '--output: "yaml" is not table or json'],
    [[], 'give at least one admin address'],
  ])('rejects %j with a clear message', async (args, msg) => {
    const t = startTap(args);
    expect(await t.done).toBe(2);
    expect(t.stderr()).toContain('ST_TAP_FILTER_INVALID');
    expect(t.stderr()).toContain(msg);
  });
});

describe('tap through the API server pod proxy', () => {
  it('asks /api/v1/namespaces/N/pods/P:15000/proxy/tap with the bearer token', async () => {
    const { server, addr } = await admin('checkout');
    const seen: string[] = [];
    // A stand-in for the API server's pod proxy: checks the token and relays to the admin port.
    const apiserver = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      const m = /^\/api\/v1\/namespaces\/shop\/pods\/checkout-7d9:15000\/proxy\/(tap|config)$/.exec(req.url ?? '');
      if (!m || req.headers.authorization !== 'Bearer s3cret') {
        res.writeHead(m ? 401 : 404).end();
        return;
      }
      http.get(`http://${addr}/${m[1]}`, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
    });
    await new Promise<void>((r) => apiserver.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { apiserver.closeAllConnections(); apiserver.close(() => r()); }));
    const url = `http://127.0.0.1:${(apiserver.address() as AddressInfo).port}`;
    const t = startTap(['--apiserver', url, '--token', 's3cret', '--namespace', 'shop', '--pod', 'checkout-7d9', '--service', 'checkout', '--max-events', '1']);
    await until(() => server.tap.active, 'subscribe through the pod proxy');
    server.tap.publish(span(2, 'POST', '/checkout', 200, 12));
    expect(await t.done).toBe(0);
    expect(t.lines()[1]).toContain('/checkout');
    expect(seen).toEqual([
      'GET /api/v1/namespaces/shop/pods/checkout-7d9:15000/proxy/config Bearer s3cret',
      'GET /api/v1/namespaces/shop/pods/checkout-7d9:15000/proxy/tap Bearer s3cret',
    ]);
  });
});
