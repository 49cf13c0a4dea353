// h2spec (HTTP/2 conformance) through the proxy versus the same node:http2 app without it:
// the proxy must add no failure. Cases that fail for bare node:http2 too are Node's own stack
// (the proxy terminates HTTP/2 with it) and are listed with reasons in docs/h2spec.md.

import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runH2spec } from '../support/h2-h2spec.js';
import { startH2Proxy, type H2Proxy } from '../support/h2-proxy.js';
import { RecordingExchanges } from '../support/h2-recording-exchange.js';

const DOC = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../docs/h2spec.md');

let app: http2.Http2Server;
const appSessions = new Set<http2.ServerHttp2Session>();
let appPort: number;
let proxy: H2Proxy;
const ANSWER_DELAY_MS = 50;

beforeAll(async () => {
  // The app h2spec talks to: answers every request with a small body, like a typical service,
  // after ANSWER_DELAY_MS. Answered at once, a stream could close before h2spec's next frame on
  // it arrived, so the half-closed (remote) cases passed or failed by timing (bare and proxied
  // alike; seen in CI); with the delay every run meets the stream still open.
  app = http2.createServer();
  app.on('session', (s) => {
    appSessions.add(s);
    s.on('error', () => {});
    s.on('close', () => appSessions.delete(s));
  });
  app.on('stream', (stream) => {
    stream.on('error', () => {});
    setTimeout(() => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end('x'.repeat(1000));
    }, ANSWER_DELAY_MS);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appPort = (app.address() as net.AddressInfo).port;
  proxy = await startH2Proxy({ address: '127.0.0.1', port: appPort }, new RecordingExchanges({ keepChunks: false }));
});

afterAll(async () => {
  await proxy.close();
  for (const s of appSessions) s.destroy();
  await new Promise<void>((resolve) => app.close(() => resolve()));
});

it('fails, never skips, with a hint to run scripts/setup.sh when h2spec is missing', async () => {
  const saved = process.env.SIDETRACE_CACHE;
  process.env.SIDETRACE_CACHE = path.join(path.dirname(DOC), 'no-such-cache');
  try {
    await expect(runH2spec(proxy.port)).rejects.toThrow(/run scripts\/setup\.sh/);
  } finally {
    if (saved === undefined) delete process.env.SIDETRACE_CACHE;
    else process.env.SIDETRACE_CACHE = saved;
  }
});

it('adds no h2spec failure to bare node:http2, and every remaining one is documented', { timeout: 170_000 }, async () => {
  const [bare, proxied] = await Promise.all([runH2spec(appPort), runH2spec(proxy.port)]);
  expect(proxied.length).toBeGreaterThan(140);
  expect(proxied.map((c) => c.id)).toEqual(bare.map((c) => c.id));
  const bareFailed = new Set(bare.filter((c) => c.outcome === 'failed').map((c) => c.id));
  const added = proxied.filter((c) => c.outcome === 'failed' && !bareFailed.has(c.id));
  expect(added.map((c) => `${c.id}: ${c.detail}`)).toEqual([]);

  const doc = readFileSync(DOC, 'utf8');
  const undocumented = proxied.filter((c) => c.outcome === 'failed' && !doc.includes(c.id));
  expect(undocumented.map((c) => c.id)).toEqual([]);
  // Not vacuous: h2spec really ran its cases through the proxy.
  expect(proxied.filter((c) => c.outcome === 'passed').length).toBeGreaterThan(120);
});
