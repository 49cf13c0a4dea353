// The promise that sidetrace never breaks the app's traffic, checked on the real CLI process:
// a span backend that is down, slow or black-holed adds no failures and no latency; a 1 GiB
// body streams through in bounded memory; 10,000 requests leave no leak behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Agent, request } from 'undici';
import { startProxyProcess, freePort, type ProxyProcess } from '../support/proxy-process.js';
import { startBlackHole, startOtlpReceiver, closedPort } from '../support/otlp-receiver.js';

let app: http.Server;
let appPort: number;
const cleanups: Array<() => Promise<unknown> | void> = [];

beforeAll(async () => {
  app = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      res.setHeader('content-type', 'text/plain');
      res.end(`got ${n}`);
    });
  });
  app.keepAliveTimeout = 30_000;
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  appPort = (app.address() as net.AddressInfo).port;
});

afterAll(async () => {
  while (cleanups.length) await cleanups.pop()!();
  app.close();
});

async function proxyTo(otlpEndpoint: string, extraEnv: Record<string, string> = {}): Promise<{ p: ProxyProcess; port: number; admin: number }> {
  const port = await freePort();
  const admin = await freePort();
  const p = await startProxyProcess(
    ['--inbound', `127.0.0.1:${port}=127.0.0.1:${appPort}`, '--admin', `127.0.0.1:${admin}`, '--service-name', 'resilience'],
    { OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint, ...extraEnv },
  );
  cleanups.push(() => p.stop());
  return { p, port, admin };
}

async function metric(admin: number, name: string): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${admin}/metrics`)).body.text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** n sequential-per-connection requests over `conns` keep-alive connections; returns per-request ms. */
async function load(port: number, n: number, conns = 8): Promise<number[]> {
  const agent = new Agent({ connections: conns, pipelining: 1, keepAliveTimeout: 30_000 });
  const lat: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const t = performance.now();
      const res = await request(`http://127.0.0.1:${port}/orders?id=${next}`, { method: 'POST', body: 'x'.repeat(1024), dispatcher: agent });
      expect(await res.body.text()).toBe('got 1024');
      expect(res.statusCode).toBe(200);
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: conns }, worker));
  await agent.close();
  return lat;
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)];

describe('resilience', () => {
  it('adds no failures or latency when the span backend is down, slow or black-holed', { timeout: 120_000 }, async () => {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    const hole = await startBlackHole();
    cleanups.push(() => hole.close());
    const slow = await startOtlpReceiver();
    slow.setDelay(3000);
    cleanups.push(() => slow.close());

    const healthy = await proxyTo(receiver.endpoint);
    const down = await proxyTo(`http://127.0.0.1:${await closedPort()}`);
    const holed = await proxyTo(hole.endpoint);
    const slowed = await proxyTo(slow.endpoint);

    // Interleaved rounds so machine noise hits every variant alike.
    const lat: Record<string, number[]> = { healthy: [], down: [], holed: [], slowed: [] };
    for (let round = 0; round < 3; round++) {
      for (const [name, v] of Object.entries({ healthy, down, holed, slowed })) lat[name].push(...(await load(v.port, 400)));
    }
    for (const name of ['down', 'holed', 'slowed']) {
      expect(lat[name]).toHaveLength(1200);
      // Generous bound for a shared 2-core machine; a blocked exporter would add seconds.
      expect(p99(lat[name])).toBeLessThan(Math.max(p99(lat.healthy) * 3, 25));
    }
    await expect.poll(() => metric(healthy.admin, 'sidetrace_spans_exported_total'), { timeout: 10_000 }).toBe(1200);
    for (const v of [down, holed, slowed]) expect(await metric(v.admin, 'sidetrace_spans_submitted_total')).toBe(1200);
    // Unreachable backends: nothing exported, every span dropped and counted once its export fails.
    for (const v of [down, holed]) {
      expect(await metric(v.admin, 'sidetrace_spans_exported_total')).toBe(0);
      await expect.poll(() => metric(v.admin, 'sidetrace_spans_dropped_total'), { timeout: 20_000 }).toBe(1200);
    }
    // A slow backend: every span ends up exported or dropped, none lost uncounted.
    await expect
      .poll(async () => (await metric(slowed.admin, 'sidetrace_spans_exported_total')) + (await metric(slowed.admin, 'sidetrace_spans_dropped_total')), { timeout: 30_000 })
      .toBe(1200);
  });

  it('streams a 1 GiB request body through with proxy RSS under 150 MB', async () => {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    const { p, port } = await proxyTo(receiver.endpoint);
    const total = 1024 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { 'content-length': total, 'content-type': 'application/octet-stream' } });
    const done = once(req, 'response');
    let sent = 0;
    while (sent < total) {
      if (!req.write(chunk)) await once(req, 'drain');
      sent += chunk.length;
    }
    req.end();
    const [res] = (await done) as [http.IncomingMessage];
    let body = '';
    for await (const c of res) body += c;
    expect(body).toBe(`got ${total}`);
    const rss = p.rss();
    expect(rss.peak).toBeLessThan(150 * 1024 * 1024);
    const [span] = await receiver.waitForSpans(1, 10_000);
    expect(span.attributes['http.request.body.size']).toBe(total);
    expect(span.attributes['http.request.body.truncated']).toBe(true);
    expect((span.attributes['http.request.body.content'] as Buffer).length).toBe(65536);
  }, 180_000);

  it('serves 10,000 requests without leaking memory', async () => {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    const { p, port, admin } = await proxyTo(receiver.endpoint);
    await load(port, 2000);
    const warm = p.rss().now;
    await load(port, 10_000);
    const after = p.rss().now;
    expect(after - warm).toBeLessThan(40 * 1024 * 1024);
    expect(await metric(admin, 'sidetrace_requests_total')).toBe(12_000);
    await expect.poll(() => metric(admin, 'sidetrace_spans_exported_total'), { timeout: 15_000 }).toBe(12_000);
    expect(await metric(admin, 'sidetrace_spans_dropped_total')).toBe(0);
  }, 180_000);
});
