// Malformed requests, upstream failures, client aborts and capture failures: each must end the
// way the app's own Node server (or a well-behaved proxy) would, and never disturb other traffic.

import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cleanupAfterEach, listen, rawRequest, startH1Proxy, startRawServer, startTap, sleep, type Started } from '../support/h1-harness.js';
import { RecordingExchangeFactory } from '../support/h1-recording-exchange.js';

const { track } = cleanupAfterEach();

async function nodeServer(): Promise<Started> {
  const server = http.createServer((req, res) => {
    res.sendDate = false;
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return { port, close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }) };
}

describe('malformed requests get exactly what Node answers, and nothing reaches upstream', () => {
  const cases: Array<[string, string]> = [
    ['CL + TE', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['differing Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['TE not ending in chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n'],
    ['whitespace before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['invalid header name byte', 'GET / HTTP/1.1\r\nHo(st: a\r\n\r\n'],
    ['NUL in header value', 'GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n'],
    ['bad request line', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['unknown method', 'BREW / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['bad version', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n'],
    ['LF line ends', 'GET / HTTP/1.1\nHost: a\n\n'],
    ['header section over 16 KiB', `GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(20000)}\r\n\r\n`],
  ];
  for (const [name, req] of cases) {
    it(name, async () => {
      const up = track(await nodeServer());
      const tap = track(await startTap(up.port));
      const proxy = track(await startH1Proxy(tap.port));
      const fromNode = await rawRequest(up.port, req);
      const fromProxy = await rawRequest(proxy.port, req);
      expect(fromProxy.toString('latin1')).toBe(fromNode.toString('latin1'));
      expect(fromProxy.toString('latin1')).toMatch(/^HTTP\/1\.1 4(00 Bad Request|31 Request Header Fields Too Large)\r\nConnection: close\r\n\r\n$/);
      expect(tap.connections()).toBe(0);
      expect(proxy.metrics.parseErrors.value).toBe(1);
      expect(proxy.factory.exchanges.length).toBe(0);
    });
  }

  it('invalid chunk size mid-body: 400 (as Node), the upstream is reset, the exchange fails', async () => {
    const up = track(await nodeServer());
    const proxy = track(await startH1Proxy(up.port));
    const req = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n';
    const fromNode = await rawRequest(up.port, req);
    const fromProxy = await rawRequest(proxy.port, req);
    expect(fromProxy.toString('latin1')).toBe(fromNode.toString('latin1'));
    expect(proxy.factory.exchanges[0].ended()).toBe('fail');
    expect(proxy.factory.exchanges[0].calls.at(-1)?.[1]).toBe('ST_H1_INVALID_CHUNK');
  });

  it('a malformed request after a good one on a keep-alive connection', async () => {
    const up = track(await nodeServer());
    const proxy = track(await startH1Proxy(up.port));
    const req = ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'];
    const fromNode = await rawRequest(up.port, req, { gapMs: 50 });
    const fromProxy = await rawRequest(proxy.port, req, { gapMs: 50 });
    expect(fromProxy.toString('latin1')).toBe(fromNode.toString('latin1'));
  });
});

describe('upstream failures', () => {
  it('connect refused → 502 with a small body, upstreamErrors counted, exchange failed', async () => {
    const dead = await startRawServer(() => {});
    const port = dead.port;
    await dead.close();
    const proxy = track(await startH1Proxy(port));
    const got = (await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')).toString('latin1');
    expect(got).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    const body = got.slice(got.indexOf('\r\n\r\n') + 4);
    expect(got).toContain(`content-length: ${body.length}\r\n`);
    expect(body).toContain('ECONNREFUSED');
    expect(proxy.metrics.upstreamErrors.value).toBe(1);
    expect(proxy.factory.exchanges[0].calls).toEqual([['requestEnd', undefined], ['fail', 'ECONNREFUSED', expect.any(String)]]);
  });

  it('upstream closes before responding → 502', async () => {
    const up = track(await startRawServer((s) => s.once('data', () => s.destroy())));
    const proxy = track(await startH1Proxy(up.port));
    const got = (await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')).toString('latin1');
    expect(got).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(proxy.factory.exchanges[0].ended()).toBe('fail');
  });

  it('upstream reset mid-response → the client connection is destroyed after the partial bytes', async () => {
    const up = track(
      await startRawServer((s) =>
        s.once('data', () => {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
          setTimeout(() => s.resetAndDestroy(), 50);
        }),
      ),
    );
    const proxy = track(await startH1Proxy(up.port));
    const got = await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(got.toString('latin1')).toBe('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    const ex = proxy.factory.exchanges[0];
    expect(ex.calls.map((c) => c[0])).toEqual(['requestEnd', 'responseHead', 'responseBody', 'fail']);
    expect(ex.calls.at(-1)?.[1]).toBe('ECONNRESET');
    expect(proxy.metrics.upstreamErrors.value).toBe(1);
  });

  /** First connection answers once, then drops the next request unanswered (a keep-alive race). */
  async function dropsSecondRequest() {
    let conns = 0;
    return track(
      await startRawServer((s) => {
        const n = ++conns;
        let served = 0;
        s.on('data', () => {
          if (n === 1 && served === 1) return s.destroy();
          served++;
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc${n}`);
        });
      }),
    );
  }

  it('a pooled connection the server dropped is retried once on a fresh one (bodyless idempotent request)', async () => {
    const up = await dropsSecondRequest();
    const proxy = track(await startH1Proxy(up.port));
    const a = await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { end: true });
    const b = await rawRequest(proxy.port, 'DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n', { end: true });
    expect(a.toString('latin1')).toMatch(/c1$/);
    expect(b.toString('latin1')).toMatch(/c2$/);
    expect(proxy.metrics.upstreamErrors.value).toBe(0);
  });

  it('a non-idempotent request on a dropped pooled connection is not retried: 502', async () => {
    const up = await dropsSecondRequest();
    const proxy = track(await startH1Proxy(up.port));
    await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { end: true });
    const b = await rawRequest(proxy.port, 'POST /x HTTP/1.1\r\nHost: a\r\n\r\n', { end: true });
    expect(b.toString('latin1')).toMatch(/^HTTP\/1\.1 502 Bad Gateway/);
    expect(proxy.metrics.upstreamErrors.value).toBe(1);
  });

  it('a response that says close is not pooled', async () => {
    const up = track(await startRawServer((s) => s.on('data', () => s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'))));
    const tap = track(await startTap(up.port));
    const proxy = track(await startH1Proxy(tap.port));
    await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(tap.connections()).toBe(2);
  });

  it('idle pooled connections close after the idle timeout', async () => {
    const up = track(await nodeServer());
    const tap = track(await startTap(up.port));
    const proxy = track(await startH1Proxy(tap.port, { tuning: { idleTimeoutMs: 100 } }));
    await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { end: true });
    await sleep(300);
    await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { end: true });
    expect(tap.connections()).toBe(2);
  });
});

describe('client abort', () => {
  /** An upstream that starts a long response and, when `stream`, keeps sending a chunk every 20 ms. */
  async function slowUpstream(stream: boolean) {
    const seen = { closedAt: 0, reset: false };
    const up = track(
      await startRawServer((s) => {
        let timer: NodeJS.Timeout | undefined;
        s.on('error', (e: NodeJS.ErrnoException) => (seen.reset ||= e.code === 'ECONNRESET'));
        s.on('close', () => {
          seen.closedAt = performance.now();
          clearInterval(timer);
        });
        s.once('data', () => {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nstart');
          if (stream) timer = setInterval(() => s.write('more'), 20);
        });
      }),
    );
    return { up, seen };
  }

  for (const [how, stream] of [['resets (RST), upstream silent', false], ['closes (FIN + close), upstream streaming', true]] as const) {
    it(`client ${how} mid-response: the upstream is reset well within 1 s, exchange fails with client_abort`, async () => {
      const { up, seen } = await slowUpstream(stream);
      const proxy = track(await startH1Proxy(up.port));
      const client = net.connect(proxy.port, '127.0.0.1');
      client.on('error', () => {});
      client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      await new Promise((r) => client.once('data', r));
      await sleep(30);
      const abortedAt = performance.now();
      if (stream) client.destroy();
      else client.resetAndDestroy();
      while (seen.closedAt === 0 && performance.now() - abortedAt < 2000) await sleep(5);
      const ms = seen.closedAt - abortedAt;
      expect(seen.closedAt).toBeGreaterThan(0);
      expect(ms).toBeLessThan(1000);
      expect(seen.reset).toBe(true);
      expect(proxy.factory.exchanges[0].calls.at(-1)?.slice(0, 2)).toEqual(['fail', 'client_abort']);
      console.log(`client ${how}: upstream reset ${ms.toFixed(1)} ms after the abort`);
    });
  }

  it('mid-request (body incomplete, FIN): the upstream connection is dropped at once', async () => {
    let closed = false;
    // 'end' counts too: Node sends FIN instead of RST when the socket is still connecting.
    const up = track(await startRawServer((s) => s.resume().on('end', () => (closed = true)).on('close', () => (closed = true))));
    const proxy = track(await startH1Proxy(up.port));
    await rawRequest(proxy.port, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc', { end: true, idleMs: 300 });
    for (let i = 0; i < 100 && !closed; i++) await sleep(5);
    expect(closed).toBe(true);
    expect(proxy.factory.exchanges[0].calls.at(-1)?.[1]).toBe('client_abort');
  });
});

describe('capture failures never touch traffic', () => {
  for (const throwIn of ['start', 'all'] as const) {
    it(`exchange throwing in ${throwIn}`, async () => {
      const up = track(await nodeServer());
      const factory = new RecordingExchangeFactory({ throwIn, forwardHeaders: [['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']] });
      const proxy = track(await startH1Proxy(up.port, { factory }));
      const req = 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n';
      const direct = await rawRequest(up.port, req, { end: true });
      const got = await rawRequest(proxy.port, req, { end: true });
      expect(got.toString('latin1')).toBe(direct.toString('latin1'));
      expect(proxy.metrics.captureErrors.value).toBeGreaterThan(0);
    });
  }

  it('incoming trace headers the exchange replaces are dropped, others kept in order', async () => {
    const up = track(await nodeServer());
    const tap = track(await startTap(up.port));
    const factory = new RecordingExchangeFactory({ forwardHeaders: [['traceparent', 'NEW'], ['tracestate', 'k=v']] });
    const proxy = track(await startH1Proxy(tap.port, { factory }));
    await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nTraceparent: OLD\r\nHost: a\r\ntracestate: old\r\nX: y\r\n\r\n', { end: true });
    expect(tap.bytes(0).toString('latin1')).toBe('GET / HTTP/1.1\r\nHost: a\r\nX: y\r\ntraceparent: NEW\r\ntracestate: k=v\r\n\r\n');
    expect(factory.exchanges[0].start.headers).toEqual(['Traceparent', 'OLD', 'Host', 'a', 'tracestate', 'old', 'X', 'y']);
  });
});

describe('arbitrary input', () => {
  it('random and HTTP-shaped bytes, in random pieces: the handler answers or closes, never throws, and keeps serving', async () => {
    const up = track(await nodeServer());
    const proxy = track(await startH1Proxy(up.port, { tuning: { maxHeaderSize: 512 } }));
    const token = fc.constantFrom('GET / HTTP/1.1\r\n', 'POST /x HTTP/1.1\r\n', 'Host: a\r\n', 'Content-Length: 3\r\n', 'Transfer-Encoding: chunked\r\n', 'Connection: close\r\n', 'Upgrade: x\r\nConnection: upgrade\r\n', '\r\n', '3\r\nabc\r\n', '0\r\n\r\n', 'abc', ' ', ':', '\n', '\x00', '\xff');
    const input = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.from(b)), fc.array(token, { minLength: 1, maxLength: 12 }).map((t) => Buffer.from(t.join(''), 'latin1')));
    await fc.assert(
      fc.asyncProperty(input, fc.nat(200), async (bytes, cut) => {
        const at = Math.min(cut, bytes.length);
        await rawRequest(proxy.port, at > 0 && at < bytes.length ? [bytes.subarray(0, at), bytes.subarray(at)] : [bytes], { end: true, idleMs: 200 });
      }),
      { numRuns: 150 },
    );
    const after = await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { end: true });
    expect(after.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*ok$/);
  });
});

describe('client timeouts', () => {
  it('an idle keep-alive client is closed; one stuck mid-head gets the 408 Node sends', async () => {
    const up = track(await nodeServer());
    const proxy = track(await startH1Proxy(up.port, { tuning: { clientIdleTimeoutMs: 150 } }));
    const t0 = performance.now();
    const idle = await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(idle.toString('latin1')).toMatch(/ok$/);
    expect(performance.now() - t0).toBeGreaterThan(140);
    const stuck = await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\nX-Partial');
    expect(stuck.toString('latin1')).toBe('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
  });

  it('a slow response is not timed out by the client idle timer', async () => {
    const up = track(await startRawServer((s) => s.once('data', () => setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow'), 300))));
    const proxy = track(await startH1Proxy(up.port, { tuning: { clientIdleTimeoutMs: 100 } }));
    const got = await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { until: (b) => b.toString().endsWith('slow') });
    expect(got.toString('latin1')).toMatch(/slow$/);
  });
});
