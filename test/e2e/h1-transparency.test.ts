// Each case goes to the same upstream directly and through the proxy: the client must receive
// byte-identical responses and the server byte-identical requests (apart from the added trace
// header line). Upstreams are deterministic (node:http without Date, or raw sockets).

import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, listen, rawRequest, startH1Proxy, startRawServer, startTap, withoutHeaderLines, type RawOptions, type Started } from '../support/h1-harness.js';
import { RecordingExchangeFactory } from '../support/h1-recording-exchange.js';
import type { H1Tuning } from '../../src/proxy/h1/handler.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const { track } = cleanupAfterEach();

/** An echo server whose answer depends only on the request. */
function echoHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.sendDate = false;
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const m = /^\/status\/(\d+)/.exec(req.url ?? '');
    if (m) {
      res.statusCode = Number(m[1]);
      res.setHeader('etag', '"x"');
      res.end();
      return;
    }
    res.setHeader('x-method', req.method ?? '');
    res.setHeader('x-url', req.url ?? '');
    res.setHeader('x-trailers', JSON.stringify(req.trailers));
    res.setHeader('x-sha', createHash('sha256').update(body).digest('hex').slice(0, 16));
    if (req.url === '/chunked') {
      res.setHeader('trailer', 'x-done');
      res.write(body);
      res.write('tail');
      res.addTrailers({ 'x-done': 'yes' });
      res.end();
    } else {
      res.end(body);
    }
  });
}

async function startHttp(handler: http.RequestListener = echoHandler): Promise<Started & { server: http.Server }> {
  const server = http.createServer(handler);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    port,
    server,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** upstream ← tapDirect ← client, and upstream ← tapProxy ← proxy ← client. */
async function rig(upstreamPort: number, tuning?: H1Tuning) {
  const tapDirect = track(await startTap(upstreamPort));
  const tapProxy = track(await startTap(upstreamPort));
  const factory = new RecordingExchangeFactory({ forwardHeaders: [['traceparent', TRACEPARENT]] });
  const proxy = track(await startH1Proxy(tapProxy.port, { factory, tuning }));
  return { tapDirect, tapProxy, proxy, factory };
}

async function sameBothWays(r: Awaited<ReturnType<typeof rig>>, pieces: Array<string | Buffer> | string, o: RawOptions = { end: true }) {
  const direct = await rawRequest(r.tapDirect.port, pieces, o);
  const proxied = await rawRequest(r.proxy.port, pieces, o);
  expect(proxied.toString('latin1')).toBe(direct.toString('latin1'));
  const atServerDirect = Buffer.concat(r.tapDirect.received.flat()).toString('latin1');
  const atServerProxied = Buffer.concat(r.tapProxy.received.flat());
  expect(withoutHeaderLines(atServerProxied, ['traceparent'])).toBe(atServerDirect);
  return { direct, proxied, atServerProxied: atServerProxied.toString('latin1') };
}

describe('h1 transparency (raw client, node:http upstream)', () => {
  it('GET, POST with Content-Length, HTTP/1.0, Connection: close', async () => {
    const up = track(await startHttp());
    for (const req of [
      'GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n',
      'POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world',
      'GET /old HTTP/1.0\r\n\r\n',
      'GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]) {
      const r = await rig(up.port);
      const { proxied, atServerProxied } = await sameBothWays(r, req);
      expect(proxied.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      // The trace header goes just before the blank line.
      expect(atServerProxied).toContain(`traceparent: ${TRACEPARENT}\r\n\r\n`);
    }
  });

  it('chunked request with extensions and trailers; chunked response with trailers', async () => {
    const up = track(await startHttp());
    const r = await rig(up.port);
    const req = 'POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n' + '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: v\r\n\r\n';
    const { proxied } = await sameBothWays(r, req);
    expect(proxied.toString('latin1')).toContain('x-done: yes');
    const ex = r.factory.exchanges[0];
    expect(ex.requestBody().toString()).toBe('hello world');
    expect(ex.calls.find((c) => c[0] === 'requestEnd')?.[1]).toEqual(['x-t', 'v']);
    expect(ex.responseBody().toString()).toBe('hello worldtail');
    expect(ex.calls[ex.calls.length - 1]).toEqual(['responseEnd', ['x-done', 'yes']]);
  });

  it('keep-alive: sequential requests on one connection reuse one upstream connection', async () => {
    const up = track(await startHttp());
    const r = await rig(up.port);
    const reqs = ['GET /1 HTTP/1.1\r\nHost: x\r\n\r\n', 'POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab', 'GET /3 HTTP/1.1\r\nHost: x\r\n\r\n'];
    await sameBothWays(r, reqs, { end: true, gapMs: 30 });
    expect(r.tapProxy.connections()).toBe(1);
    expect(r.factory.exchanges.map((e) => e.start.target)).toEqual(['/1', '/2', '/3']);
    expect(r.factory.exchanges.every((e) => e.ended() === 'responseEnd')).toBe(true);
  });

  it('an idle upstream connection is reused by the next downstream connection', async () => {
    const up = track(await startHttp());
    const r = await rig(up.port);
    for (let i = 0; i < 3; i++) {
      const got = await rawRequest(r.proxy.port, `GET /n${i} HTTP/1.1\r\nHost: x\r\n\r\n`, { end: true });
      expect(got.toString('latin1')).toContain(`x-url: /n${i}`);
    }
    expect(r.tapProxy.connections()).toBe(1);
  });

  it('pipelining: 3 requests in one write, responses in order', async () => {
    const up = track(await startHttp());
    const r = await rig(up.port);
    const reqs = 'GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /p3 HTTP/1.1\r\nHost: x\r\n\r\n';
    const { proxied } = await sameBothWays(r, reqs);
    const urls = [...proxied.toString('latin1').matchAll(/x-url: (\S+)/g)].map((m) => m[1]);
    expect(urls).toEqual(['/p1', '/p2', '/p3']);
    expect(r.factory.exchanges.length).toBe(3);
  });

  it('HEAD, 204 and 304 have no body and keep the connection usable', async () => {
    const up = track(await startHttp());
    const r = await rig(up.port);
    const reqs = 'HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/304 HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n';
    const { proxied } = await sameBothWays(r, reqs);
    const text = proxied.toString('latin1');
    expect(text).toContain('HTTP/1.1 204 No Content');
    expect(text).toContain('HTTP/1.1 304 Not Modified');
    expect(text).toContain('x-url: /after');
    expect(r.factory.exchanges.map((e) => e.calls.find((c) => c[0] === 'responseHead')?.[1])).toEqual([200, 204, 304, 200]);
  });

  it('a refused upgrade (no upgrade handler, normal response) continues as HTTP', async () => {
    const up = track(await startHttp());
    const r = await rig(up.port);
    // Sent apart: Node itself drops bytes pipelined behind an upgrade request it does not handle.
    const reqs = ['GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'GET /next HTTP/1.1\r\nHost: x\r\n\r\n'];
    const { proxied } = await sameBothWays(r, reqs, { end: true, gapMs: 50 });
    expect(proxied.toString('latin1')).toContain('x-url: /next');
  });

  it('split points: the same pipelined stream cut at every byte gives the same bytes and exchange calls', async () => {
    const up = track(await startHttp());
    const r = await rig(up.port);
    const stream = Buffer.from(
      'POST /s1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n' + 'GET /s2 HTTP/1.1\r\nHost: x\r\n\r\n' + 'PUT /s3 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz',
      'latin1',
    );
    const norm = (f: RecordingExchangeFactory) =>
      f.exchanges.map((e) => ({ target: e.start.target, headers: e.start.headers, reqBody: e.requestBody().toString(), resBody: e.responseBody().toString(), kinds: [...new Set(e.calls.map((c) => c[0]))] }));
    const reference = await rawRequest(r.proxy.port, stream, { end: true });
    const refServer = r.tapProxy.bytes(0).toString('latin1');
    const refCalls = norm(r.factory);
    expect(refCalls.map((c) => c.target)).toEqual(['/s1', '/s2', '/s3']);
    for (let cut = 1; cut < stream.length; cut++) {
      r.factory.exchanges.length = 0;
      const before = r.tapProxy.received.length;
      const pieces = [stream.subarray(0, cut), stream.subarray(cut)];
      const got = await rawRequest(r.proxy.port, pieces, { end: true, gapMs: 2 });
      expect(got.toString('latin1'), `cut ${cut}`).toBe(reference.toString('latin1'));
      expect(norm(r.factory), `cut ${cut}`).toEqual(refCalls);
      // The pooled upstream connection is reused, so compare what reached the server this round.
      const atServer = Buffer.concat(r.tapProxy.received.slice(0, Math.max(before, 1)).flat()).toString('latin1');
      expect(atServer.endsWith(refServer), `cut ${cut}`).toBe(true);
    }
    expect(r.tapProxy.connections()).toBe(1);
  });
});

describe('h1 transparency with raw upstreams', () => {
  it('a response delimited by close', async () => {
    const up = track(
      await startRawServer((s) => {
        s.once('data', () => s.end('HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nbody until close, no framing'));
      }),
    );
    const r = await rig(up.port);
    const { proxied } = await sameBothWays(r, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', {});
    expect(proxied.toString('latin1')).toMatch(/no framing$/);
    expect(r.factory.exchanges[0].responseBody().toString()).toBe('body until close, no framing');
    expect(r.factory.exchanges[0].ended()).toBe('responseEnd');
  });

  it('interim 1xx responses are forwarded and not reported as final', async () => {
    const up = track(
      await startRawServer((s) => {
        s.once('data', () => s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
      }),
    );
    const r = await rig(up.port);
    await sameBothWays(r, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { until: (b) => b.toString().endsWith('ok') });
    const ex = r.factory.exchanges[0];
    expect(ex.calls.filter((c) => c[0] === 'responseHead').map((c) => c[1])).toEqual([200]);
  });

  it('websocket-style upgrade: 101, then raw bytes both ways with half-close', async () => {
    const up = track(
      await startRawServer((s) => {
        let head = '';
        const onData = (d: Buffer): void => {
          head += d.toString('latin1');
          const i = head.indexOf('\r\n\r\n');
          if (i < 0) return;
          s.off('data', onData);
          s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
          const early = head.slice(i + 4);
          if (early) s.write(early.toUpperCase(), 'latin1');
          s.on('data', (f: Buffer) => s.write(f.toString('latin1').toUpperCase(), 'latin1'));
          s.on('end', () => s.end('bye'));
        };
        s.on('data', onData);
      }),
    );
    const r = await rig(up.port);
    const handshake = 'GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const pieces = [handshake, '\x81\x05hello', '\x81\x05world'];
    const { proxied } = await sameBothWays(r, pieces, { end: true, gapMs: 30 });
    expect(proxied.toString('latin1')).toMatch(/\r\n\r\n\x81\x05HELLO\x81\x05WORLDbye$/);
    expect(r.factory.exchanges[0].ended()).toBe('tunnelEstablished');
    expect(r.factory.exchanges[0].calls.at(-1)?.[1]).toBe(101);
  });

  it('CONNECT: 200, then an opaque tunnel; the upstream connection never returns to the pool', async () => {
    const up = track(
      await startRawServer((s) => {
        s.once('data', () => {
          s.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          s.on('data', (d: Buffer) => s.write(Buffer.from(d).reverse()));
          s.on('end', () => s.end());
        });
      }),
    );
    const r = await rig(up.port);
    const { proxied } = await sameBothWays(r, ['CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n', 'abc', 'GET / HTTP/1.1\r\n\r\n'], { end: true, gapMs: 30 });
    expect(proxied.toString('latin1')).toBe('HTTP/1.1 200 Connection Established\r\n\r\ncba\n\r\n\r1.1/PTTH / TEG');
    expect(r.factory.exchanges.length).toBe(1);
    expect(r.factory.exchanges[0].calls).toEqual([['requestEnd', undefined], ['tunnelEstablished', 200, []]]);
  });
});
