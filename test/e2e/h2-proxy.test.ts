// Plain HTTP/2 through the h2 handler, against a real node:http2 origin and real clients
// (node:http2, curl --http2-prior-knowledge, nghttp): heads, bodies, trailers, resets both
// ways, upstream failure, flow control with a slow reader, header bombs, multiplexing.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import type net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resetStream } from '../support/h2-reset.js';
import { closedPort, startH2Proxy, type H2Proxy } from '../support/h2-proxy.js';
import { RecordingExchanges, rawHeader } from '../support/h2-recording-exchange.js';
import { comparable, h2call } from '../support/h2-client.js';
import { startH2Upstream, type H2Upstream } from '../support/h2-upstream.js';

const run = promisify(execFile);
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_PROTOCOL_ERROR } =
  http2.constants;

let upstream: H2Upstream;
let exchanges: RecordingExchanges;
let proxy: H2Proxy;
const clients: http2.ClientHttp2Session[] = [];

function connect(url: string): http2.ClientHttp2Session {
  const c = http2.connect(url);
  c.on('error', () => {});
  clients.push(c);
  return c;
}

beforeAll(async () => {
  upstream = await startH2Upstream();
  exchanges = new RecordingExchanges({ forwardHeaders: [['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']] });
  proxy = await startH2Proxy({ address: '127.0.0.1', port: upstream.port }, exchanges);
});

afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
});

afterAll(async () => {
  await proxy.close();
  await upstream.close();
});

describe('h2 proxy: heads and bodies', () => {
  it('forwards the request head as received, replacing only the trace headers', async () => {
    const c = connect(proxy.url);
    const n = exchanges.all.length;
    const res = await h2call(c, {
      ':path': '/headers?q=1',
      'x-one': 'a',
      'x-dup': ['1', '2'],
      cookie: ['a=1', 'b=2'],
      traceparent: '00-11111111111111111111111111111111-2222222222222222-01',
    });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as string[];
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < seen.length; i += 2) pairs.push([seen[i], seen[i + 1]]);
    expect(pairs).toContainEqual([':path', '/headers?q=1']);
    expect(pairs).toContainEqual([':authority', `127.0.0.1:${proxy.port}`]);
    expect(pairs.filter(([k]) => k === 'x-dup')).toEqual([['x-dup', '1'], ['x-dup', '2']]);
    expect(pairs.filter(([k]) => k === 'cookie')).toEqual([['cookie', 'a=1'], ['cookie', 'b=2']]);
    expect(pairs.filter(([k]) => k === 'traceparent')).toEqual([['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']]);

    const [rec] = (await exchanges.ended(n + 1)).slice(n);
    expect(rec.start).toMatchObject({ method: 'GET', target: '/headers?q=1', authority: `127.0.0.1:${proxy.port}`, protocolVersion: '2', direction: 'inbound' });
    expect(rec.start.server).toEqual({ address: '127.0.0.1', port: upstream.port });
    expect(rec.start.headers.filter((_, i) => i % 2 === 0).some((h) => h.startsWith(':'))).toBe(false);
    expect(rawHeader(rec.start.headers, 'traceparent')).toBe('00-11111111111111111111111111111111-2222222222222222-01');
    expect(rec.status).toBe(200);
    expect(rec.outcome).toBe('end');
  });

  it('echoes a 1 MiB body with trailers both ways, same as direct', async () => {
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const call = (url: string) => h2call(connect(url), { ':method': 'POST', ':path': '/echo' }, { body, trailers: { 'x-checksum': 'abc' } });
    const n = exchanges.all.length;
    const [viaProxy, direct] = await Promise.all([call(proxy.url), call(`http://127.0.0.1:${upstream.port}`)]);
    expect(viaProxy.body.equals(body)).toBe(true);
    expect(comparable(viaProxy.headers)).toEqual(comparable(direct.headers));
    expect(comparable(viaProxy.trailers)).toEqual(comparable(direct.trailers));
    expect(viaProxy.trailers?.['x-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
    expect(viaProxy.trailers?.['x-req-x-checksum']).toBe('abc');
    // The proxy adds no Date the origin did not send... and keeps the one it did.
    expect(viaProxy.headers?.date).toBe(direct.headers?.date === undefined ? undefined : viaProxy.headers?.date);

    const [rec] = (await exchanges.ended(n + 1)).slice(n);
    expect(rec.requestBytes).toBe(body.length);
    expect(Buffer.concat(rec.requestChunks).equals(body)).toBe(true);
    expect(rec.responseBytes).toBe(body.length);
    expect(rawHeader(rec.requestTrailers, 'x-checksum')).toBe('abc');
    expect(rawHeader(rec.responseTrailers, 'x-sha256')).toBe(viaProxy.trailers?.['x-sha256']);
    expect(rec.outcome).toBe('end');
    expect(rec.lateCalls).toBe(0);
  });

  it('passes a trailers-only response as a single HEADERS frame with END_STREAM', async () => {
    const n = exchanges.all.length;
    const res = await h2call(connect(proxy.url), { ':path': '/trailers-only' });
    expect(res.headersEnded).toBe(true);
    expect(res.headers?.['grpc-status']).toBe('5');
    expect(res.headers?.['grpc-message']).toBe('not found');
    expect(res.trailers).toBeUndefined();
    expect(res.body.length).toBe(0);
    const [rec] = (await exchanges.ended(n + 1)).slice(n);
    expect(rec.outcome).toBe('end');
    expect(rawHeader(rec.responseHeaders, 'grpc-status')).toBe('5');
    expect(rec.responseTrailers).toBeUndefined();
  });

  it('multiplexes 200 concurrent streams from several clients over one upstream session', async () => {
    const before = upstream.sessions;
    const sessions = [connect(proxy.url), connect(proxy.url), connect(proxy.url)];
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => h2call(sessions[i % 3], { ':method': 'POST', ':path': '/echo' }, { body: `call ${i}` })),
    );
    results.forEach((r, i) => expect(r.body.toString()).toBe(`call ${i}`));
    expect(upstream.sessions - before).toBeLessThanOrEqual(1);
  });
});

describe('h2 proxy: upstream sessions', () => {
  it('opens a new upstream session after the origin sends GOAWAY, without failing a request', async () => {
    const c = connect(proxy.url);
    expect((await h2call(c, { ':path': '/headers' })).status).toBe(200);
    const before = upstream.sessions;
    upstream.goawayAll();
    await new Promise((r) => setTimeout(r, 50));
    const results = await Promise.all(Array.from({ length: 5 }, () => h2call(c, { ':path': '/headers' })));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(upstream.sessions).toBe(before + 1);
  });

  it('opens a new upstream session after the origin drops the connection', async () => {
    const c = connect(proxy.url);
    expect((await h2call(c, { ':path': '/headers' })).status).toBe(200);
    const before = upstream.sessions;
    await upstream.dropAll();
    await new Promise((r) => setTimeout(r, 50));
    expect((await h2call(c, { ':path': '/headers' })).status).toBe(200);
    expect(upstream.sessions).toBe(before + 1);
  });
});

describe('h2 proxy: upstream stream limit', () => {
  it('queues a burst on a fresh upstream session beyond the upstream limit instead of refusing it', async () => {
    // An origin allowing 10 concurrent streams, each answered after 20 ms.
    const app = http2.createServer({ settings: { maxConcurrentStreams: 10 } });
    let open = 0;
    let maxOpen = 0;
    app.on('stream', (s) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      s.on('close', () => open--);
      s.on('error', () => {});
      setTimeout(() => {
        s.respond({ ':status': 200 });
        s.end('ok');
      }, 20);
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const p = await startH2Proxy({ address: '127.0.0.1', port: (app.address() as net.AddressInfo).port }, new RecordingExchanges({ keepChunks: false }));
    try {
      const c = connect(p.url);
      const results = await Promise.all(Array.from({ length: 150 }, () => h2call(c, { ':path': '/' })));
      expect(results.map((r) => r.status ?? `rst ${r.rstCode}`)).toEqual(Array(150).fill(200));
      expect(maxOpen).toBe(10);
    } finally {
      await p.close();
      await new Promise<void>((resolve) => app.close(() => resolve()));
    }
  });
});

describe('h2 proxy: resets and failures', () => {
  for (const code of [NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INTERNAL_ERROR]) {
    it(`passes an upstream RST_STREAM ${code} to the client, before and after the response head`, async () => {
      const c = connect(proxy.url);
      const n = exchanges.all.length;
      const early = await h2call(c, { ':path': `/rst/${code}` });
      expect(early.rstCode).toBe(code);
      expect(early.status).toBeUndefined();
      const mid = await h2call(c, { ':path': `/rst-mid/${code}` });
      expect(mid.status).toBe(200);
      expect(mid.body.toString()).toBe('partial');
      expect(mid.rstCode).toBe(code);
      const recs = (await exchanges.ended(n + 2)).slice(n);
      const name = { 2: 'INTERNAL_ERROR', 7: 'REFUSED_STREAM', 8: 'CANCEL', 11: 'ENHANCE_YOUR_CALM' }[code];
      expect(recs.map((r) => r.errorType)).toEqual([`RST_STREAM:${name}`, `RST_STREAM:${name}`]);
    });
  }

  for (const code of [NGHTTP2_CANCEL, NGHTTP2_PROTOCOL_ERROR]) {
    it(`passes a client RST_STREAM ${code} to the upstream stream`, async () => {
      const c = connect(proxy.url);
      const n = exchanges.all.length;
      const closedBefore = upstream.hangClosed.length;
      const req = c.request({ ':method': 'POST', ':path': '/hang' });
      req.on('error', () => {});
      req.write('some body');
      await until(() => upstream.streams > 0 && upstream.heads.at(-1)?.includes('/hang') === true);
      await new Promise((r) => setTimeout(r, 50));
      resetStream(req, code); // close(code) would send END_STREAM first (see reset.ts)
      await until(() => upstream.hangClosed.length > closedBefore);
      expect(upstream.hangClosed.at(-1)).toBe(code);
      // The cut-off upload must not look complete to the origin.
      expect(upstream.hangSawEnd.at(-1)).toBe(false);
      const [rec] = (await exchanges.ended(n + 1)).slice(n);
      expect(rec.errorType).toBe(code === NGHTTP2_CANCEL ? 'RST_STREAM:CANCEL' : 'RST_STREAM:PROTOCOL_ERROR');
    });
  }

  it('answers 502, or gRPC UNAVAILABLE as trailers-only, when the upstream refuses connections', async () => {
    const dead = new RecordingExchanges();
    const p = await startH2Proxy({ address: '127.0.0.1', port: await closedPort() }, dead);
    try {
      const c = connect(p.url);
      const plain = await h2call(c, { ':method': 'POST', ':path': '/x' }, { body: 'hello' });
      expect(plain.status).toBe(502);
      expect(plain.body.toString()).toMatch(/upstream connect error/);
      const grpc = await h2call(c, { ':method': 'POST', ':path': '/pkg.Svc/M', 'content-type': 'application/grpc', te: 'trailers' }, { body: Buffer.alloc(5) });
      expect(grpc.status).toBe(200);
      expect(grpc.headersEnded).toBe(true);
      expect(grpc.headers?.['grpc-status']).toBe('14');
      expect(grpc.headers?.['content-type']).toBe('application/grpc');
      // Media types are case-insensitive: a client spelling it in capitals is still gRPC.
      const caps = await h2call(c, { ':method': 'POST', ':path': '/pkg.Svc/M', 'content-type': 'Application/GRPC+proto', te: 'trailers' }, { body: Buffer.alloc(5) });
      expect(caps.headers?.['grpc-status']).toBe('14');
      const recs = await dead.ended(3);
      expect(recs.map((r) => r.errorType)).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
      expect(p.metrics.upstreamErrors.value).toBeGreaterThanOrEqual(3);
    } finally {
      await p.close();
    }
  });

  it('keeps forwarding byte-for-byte when every exchange call throws', async () => {
    const broken = new RecordingExchanges({ throwing: true });
    const p = await startH2Proxy({ address: '127.0.0.1', port: upstream.port }, broken);
    try {
      const res = await h2call(connect(p.url), { ':method': 'POST', ':path': '/echo' }, { body: 'still here', trailers: { 'x-t': '1' } });
      expect(res.body.toString()).toBe('still here');
      expect(res.trailers?.['x-req-x-t']).toBe('1');
      expect(p.metrics.captureErrors.value).toBeGreaterThan(0);
    } finally {
      await p.close();
    }
  });
});

describe('h2 proxy: CONNECT', () => {
  it('tunnels bytes both ways and ends the exchange at the handshake', async () => {
    const n = exchanges.all.length;
    const c = connect(proxy.url);
    const req = c.request({ ':method': 'CONNECT', ':authority': 'db.internal:5432' });
    req.on('error', () => {});
    const status = await new Promise<number>((resolve) => req.on('response', (h) => resolve(Number(h[':status']))));
    expect(status).toBe(200);
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.write('ping over the tunnel');
    await until(() => Buffer.concat(chunks).toString() === 'ping over the tunnel');
    req.end();
    await new Promise<void>((resolve) => req.on('close', () => resolve()));
    const [rec] = (await exchanges.ended(n + 1)).slice(n);
    expect(rec.start).toMatchObject({ method: 'CONNECT', target: 'db.internal:5432', authority: 'db.internal:5432' });
    expect(rec.outcome).toBe('tunnel');
    expect(rec.status).toBe(200);
    expect(rec.requestBytes).toBe(0);
    expect(rec.lateCalls).toBe(0);
  });
});

describe('h2 proxy: limits and flow control', () => {
  it('streams 32 MiB to a slow reader without buffering it (backpressure reaches the origin)', async () => {
    const big = new RecordingExchanges({ keepChunks: false });
    const p = await startH2Proxy({ address: '127.0.0.1', port: upstream.port }, big);
    try {
      const total = 32 * 1024 * 1024;
      const c = connect(p.url);
      const req = c.request({ ':path': `/big/${total}` }, { endStream: true });
      const flushedAtStart = upstream.bigFlushed;
      const hash = createHash('sha256');
      let received = 0;
      await new Promise<void>((resolve) => req.once('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        req.pause();
        resolve();
      }));
      await new Promise((r) => setTimeout(r, 700));
      const inFlight = upstream.bigFlushed - flushedAtStart - received;
      // Client window + proxy windows and stream buffers: a few MiB at most, never the body.
      expect(inFlight).toBeLessThan(6 * 1024 * 1024);
      expect(upstream.bigFlushed - flushedAtStart).toBeLessThan(total / 2);
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
      });
      req.resume();
      await new Promise<void>((resolve) => req.on('end', () => resolve()));
      expect(received).toBe(total);
      expect(hash.digest('hex')).toBe(createHash('sha256').update(Buffer.alloc(total, 0x61)).digest('hex'));
      const [rec] = await big.ended(1);
      expect(rec.responseBytes).toBe(total);
    } finally {
      await p.close();
    }
  });

  it('refuses a 100 KiB header block without forwarding it, and keeps serving', async () => {
    const streamsBefore = upstream.streams;
    const c = connect(proxy.url);
    const bomb = await h2call(c, { ':path': '/headers', 'x-bomb': 'b'.repeat(100 * 1024) });
    expect(bomb.status).toBeUndefined();
    expect(bomb.rstCode).not.toBe(0);
    expect(upstream.heads.slice(streamsBefore).some((h) => h.includes('x-bomb'))).toBe(false);
    const ok = await h2call(connect(proxy.url), { ':path': '/headers' });
    expect(ok.status).toBe(200);
  });
});

describe('h2 proxy: upstream header bomb', () => {
  it('does not pass a 100 KiB response header block on (the upstream stack resets it), and keeps serving', async () => {
    const n = exchanges.all.length;
    const c = connect(proxy.url);
    const bomb = await h2call(c, { ':path': '/header-bomb' });
    expect(bomb.headers?.['x-bomb']).toBeUndefined();
    expect(bomb.status === 502 || bomb.rstCode !== 0).toBe(true);
    const [rec] = (await exchanges.ended(n + 1)).slice(n);
    expect(rec.outcome).toBe('fail');
    expect((await h2call(c, { ':path': '/headers' })).status).toBe(200);
  });
});

describe('h2 proxy: other clients', () => {
  it('works for curl --http2-prior-knowledge (POST body, response body)', async () => {
    const { stdout } = await run('curl', ['-sS', '--http2-prior-knowledge', '-X', 'POST', '--data-binary', 'from curl', '-w', '\n%{http_version} %{http_code}', `${proxy.url}/echo`]);
    expect(stdout).toBe('from curl\n2 200');
  });

  it('works for nghttp, which sees the trailers', async () => {
    const { stdout } = await run('nghttp', ['-v', `${proxy.url}/trailers-only`]);
    expect(stdout).toMatch(/grpc-status: 5/);
    expect(stdout).toMatch(/END_STREAM/);
  });
});

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
