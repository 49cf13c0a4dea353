// `sidetrace tap` against a real running proxy (startProxy): requests sent through its
// inbound listener appear on the tap with the proxy's own service name, filtered exactly.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { startProxy, type RunningProxy } from '../../src/proxy/proxy.js';
import { parseProxyArgs, type ProxyConfig } from '../../src/proxy/config.js';
import { run } from '../../src/commands/tap.js';

let app: http.Server;
let proxy: RunningProxy;

beforeAll(async () => {
  app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const fail = req.url === '/books/order';
      res.writeHead(fail ? 503 : 200, { 'content-type': 'application/json' });
      res.end(fail ? '{"error":"Book server is on high load!"}' : '{"ok":true}');
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const config = parseProxyArgs([
    '--inbound', `127.0.0.1:0=127.0.0.1:${(app.address() as AddressInfo).port}`,
    '--service-name', 'book-orders',
    '--admin', '127.0.0.1:0',
  ]) as ProxyConfig;
  // No backend: spans are dropped and counted, the tap still sees every request.
  proxy = await startProxy(config, { env: { OTEL_TRACES_EXPORTER: 'none' }, log: () => undefined });
});

afterAll(async () => {
  await proxy?.close();
  app?.closeAllConnections();
  await new Promise<void>((r) => app?.close(() => r()));
});

function send(method: string, path: string, body?: string): Promise<number> {
  const at = proxy.listeners[0].address;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: at.address, port: at.port, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('tap on a live proxy', () => {
  it('streams only the matching requests, with headers and bodies, under the proxy service name', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c) => (text += c));
    const admin = `${proxy.admin.address}:${proxy.admin.port}`;
    const done = run([admin, '--service', 'book-orders', '--status', '5xx', '--method', 'POST', '-o', 'json', '--max-events', '1'], out, new PassThrough());
    // Wait until the tap is subscribed: requests before that are not streamed (tap is live only).
    const deadline = Date.now() + 5000;
    while (!(await metricsText()).includes('sidetrace_tap_clients 1')) {
      if (Date.now() > deadline) throw new Error('tap did not subscribe');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await send('POST', '/books/validate', '{"bookId":"b1"}')).toBe(200);
    expect(await send('GET', '/books/order')).toBe(503);
    expect(await send('POST', '/books/order', '{"bookId":"b2","quantity":2}')).toBe(503);
    expect(await done).toBe(0);
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0].service).toBe('book-orders');
    expect(lines[0].attributes).toMatchObject({
      'http.request.method': 'POST',
      'url.path': '/books/order',
      'http.response.status_code': 503,
      'http.request.body.content': '{"bookId":"b2","quantity":2}',
      'http.response.body.content': '{"error":"Book server is on high load!"}',
      'http.request.header.content-type': ['application/json'],
    });
  });
});

function metricsText(): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(`http://${proxy.admin.address}:${proxy.admin.port}/metrics`, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (t += c));
      res.on('end', () => resolve(t));
    }).on('error', reject);
  });
}
