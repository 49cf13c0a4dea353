// The admin listener over real HTTP: health, readiness, Prometheus metrics, effective config,
// and the /tap NDJSON stream with real clients, including one that stops reading.

import http from 'node:http';
import net from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createAdminServer, AdminListenError, type AdminServer } from '../../src/proxy/admin.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { exportConfigFromEnv, redactExportConfig } from '../../src/telemetry/otel-env.js';
import { spanFromJson } from '../../src/telemetry/span-json.js';
import { SpanKind, StatusCode, type SpanRecord } from '../../src/telemetry/span.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(overrides: Partial<Parameters<typeof createAdminServer>[0]> = {}) {
  const metrics = new Metrics();
  let ready = false;
  const admin = createAdminServer({
    listen: { address: '127.0.0.1', port: 0 },
    metrics,
    ready: () => ready,
    config: () => ({ hello: 'world' }),
    ...overrides,
  });
  const addr = await admin.listen();
  cleanups.push(() => admin.close());
  return { admin, metrics, base: `http://127.0.0.1:${addr.port}`, setReady: (r: boolean) => (ready = r) };
}

let seq = 0;
function span(bodyBytes = 16): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: (++seq).toString(16).padStart(16, '0'),
    sampled: false,
    name: 'GET /x',
    kind: SpanKind.SERVER,
    startMs: 1_763_700_000_000.5,
    endMs: 1_763_700_000_001.5,
    attributes: { 'http.request.method': 'GET', 'http.response.body': Buffer.alloc(bodyBytes, 0xfe) },
    events: [],
    status: { code: StatusCode.UNSET },
  };
}

async function get(url: string) {
  const r = await request(url);
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

describe('admin endpoints', () => {
  it('/healthz answers 200 ok', async () => {
    const { base } = await start();
    const r = await get(`${base}/healthz`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok\n');
  });

  it('/readyz is 503 until the readiness callback says ready', async () => {
    const { base, setReady } = await start();
    expect((await get(`${base}/readyz`)).status).toBe(503);
    setReady(true);
    const r = await get(`${base}/readyz`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('ready\n');
  });

  it('/metrics renders the registry as Prometheus text 0.0.4, live values', async () => {
    const { base, metrics } = await start();
    const c = metrics.counter('sidetrace_requests_total', 'HTTP requests and gRPC calls proxied.');
    c.inc(41);
    c.inc();
    const r = await get(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toContain('# TYPE sidetrace_requests_total counter\nsidetrace_requests_total 42\n');
    expect(r.body).toContain('# TYPE sidetrace_tap_clients gauge\nsidetrace_tap_clients 0\n');
  });

  it('/config serves the effective config as JSON, export headers redacted', async () => {
    const exportConfig = exportConfigFromEnv({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20topsecret' });
    const { base } = await start({ config: () => ({ listeners: [{ listen: '127.0.0.1:8080' }], export: redactExportConfig(exportConfig) }) });
    const r = await get(`${base}/config`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const body = JSON.parse(r.body);
    expect(body.listeners).toEqual([{ listen: '127.0.0.1:8080' }]);
    expect(body.export.endpoint).toBe('http://localhost:4317');
    expect(body.export.headers).toEqual({ authorization: '[redacted]' });
    expect(r.body).not.toContain('topsecret');
  });

  it('unknown paths are 404, other methods 405, query strings ignored, HEAD has no body', async () => {
    const { base } = await start();
    expect((await get(`${base}/nope`)).status).toBe(404);
    const post = await request(`${base}/healthz`, { method: 'POST', body: 'x' });
    await post.body.text();
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect((await get(`${base}/healthz?verbose=1`)).status).toBe(200);
    const head = await request(`${base}/metrics`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(await head.body.text()).toBe('');
  });

  it('a port already in use fails listen() with ST_ADMIN_LISTEN naming the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const port = (blocker.address() as net.AddressInfo).port;
    const admin = createAdminServer({ listen: { address: '127.0.0.1', port }, metrics: new Metrics(), ready: () => true, config: () => ({}) });
    const err = await admin.listen().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AdminListenError);
    expect((err as AdminListenError).code).toBe('ST_ADMIN_LISTEN');
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).toContain('EADDRINUSE');
    await admin.close();
  });
});

/** A streaming /tap client on node:http; counts and keeps lines. */
function tapClient(base: string): Promise<{ lines: string[]; res: http.IncomingMessage; req: http.ClientRequest; waitFor(n: number, ms?: number): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let partial = '';
    const req = http.get(`${base}/tap?service=ignored-here`, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        const parts = (partial + d).split('\n');
        partial = parts.pop()!;
        lines.push(...parts);
      });
      const waitFor = (n: number, ms = 10_000) =>
        new Promise<void>((ok, fail) => {
          const t0 = Date.now();
          const check = () => (lines.length >= n ? ok() : Date.now() - t0 > ms ? fail(new Error(`tap client: ${lines.length} lines, wanted ${n}`)) : setTimeout(check, 10));
          check();
        });
      resolve({ lines, res, req, waitFor });
    });
    req.on('error', reject);
  });
}

describe('admin /tap', () => {
  it('streams published spans as NDJSON to a real client; active only while someone listens', async () => {
    const { admin, base, metrics } = await start();
    expect(admin.tap.active).toBe(false);
    admin.tap.publish(span()); // nobody listening: nothing kept

    const client = await tapClient(base);
    expect(client.res.statusCode).toBe(200);
    expect(client.res.headers['content-type']).toBe('application/x-ndjson');
    expect(admin.tap.active).toBe(true);
    expect((await get(`${base}/metrics`)).body).toContain('sidetrace_tap_clients 1\n');

    const sent = [span(5), span(0), span(70_000)];
    for (const s of sent) admin.tap.publish(s);
    await client.waitFor(3);
    const got = client.lines.map(spanFromJson);
    expect(got.map((s) => s.spanId)).toEqual(sent.map((s) => s.spanId));
    expect(got[0].attributes['http.response.body']).toEqual(Buffer.alloc(5, 0xfe));
    expect((got[2].attributes['http.response.body'] as Buffer).length).toBe(70_000);
    expect(metrics.get('sidetrace_tap_lines_dropped_total')).toBe(0);

    client.req.destroy();
    const t0 = Date.now();
    while (admin.tap.active && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    expect(admin.tap.active).toBe(false);
  });

  it('a slow client loses lines (counted) while a fast one gets them all, and the proxy never waits', async () => {
    const { admin, base, metrics } = await start({ tapBufferBytes: 256 * 1024 });
    const fast = await tapClient(base);
    const slow = await tapClient(base);
    slow.res.pause(); // stops reading: its socket and then our buffer for it fill up
    const N = 600;
    // CPU time, not wall time: preemption on the shared box would stretch wall time.
    let publishCpuUs = 0;
    for (let i = 0; i < N; i += 20) {
      const spans = Array.from({ length: 20 }, () => span(32 * 1024));
      const c0 = process.cpuUsage();
      for (const s of spans) admin.tap.publish(s);
      const c = process.cpuUsage(c0);
      publishCpuUs += c.user + c.system;
      await new Promise((r) => setImmediate(r));
    }
    await fast.waitFor(N);
    expect(fast.lines).toHaveLength(N);
    const dropped = metrics.get('sidetrace_tap_lines_dropped_total');
    // ~26 MB was published; far more than loopback socket buffers plus 256 KiB hold.
    expect(dropped).toBeGreaterThan(0);
    expect(dropped).toBeLessThan(N);
    expect(publishCpuUs / 1000).toBeLessThan(50);
    slow.res.resume();
    await slow.waitFor(N - dropped);
    await new Promise((r) => setTimeout(r, 100));
    expect(slow.lines).toHaveLength(N - dropped);
    // Whatever arrived is whole lines, in order.
    const ids = slow.lines.map((l) => parseInt(spanFromJson(l).spanId, 16));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
    fast.req.destroy();
    slow.req.destroy();
  });

  it('close() ends tap streams so clients see the end', async () => {
    const { admin, base } = await start();
    const client = await tapClient(base);
    const ended = new Promise<void>((r) => client.res.on('end', () => r()));
    await admin.close();
    await ended;
    expect(admin.tap.active).toBe(false);
  });
});
