// A real node:http2 (h2c) origin for the proxy tests. Routes by :path:
//   /echo            echo the body back, request trailers returned as `x-req-*` trailers,
//                    plus an `x-sha256` trailer of the body
//   /headers         200 with the request head as JSON
//   /header-bomb     a 100 KiB response header
//   /trailers-only   one HEADERS frame with END_STREAM (gRPC trailers-only shape)
//   /rst/<code>      RST_STREAM <code> before any response
//   /rst-mid/<code>  response head and some data, then RST_STREAM <code>
//   /hang            never answers; records how the stream closed
//   /big/<bytes>     a body of <bytes>, written with backpressure; counts flushed bytes
// and answers CONNECT with 200, echoing the tunnelled bytes.

import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import type net from 'node:net';
import { resetStream } from './h2-reset.js';

export interface H2Upstream {
  port: number;
  server: http2.Http2Server;
  /** Sessions accepted (to prove multiplexing over one session). */
  sessions: number;
  /** Streams opened by the peer. */
  streams: number;
  /** Every request head seen, raw. */
  heads: string[][];
  /** rstCode of each /hang stream when it closed. */
  hangClosed: number[];
  /** Whether each closed /hang stream saw its request body end cleanly first. */
  hangSawEnd: boolean[];
  /** Bytes of /big bodies whose write completed (handed to nghttp2). */
  bigFlushed: number;
  /** Graceful GOAWAY on every session (as an origin shutting down or rotating connections). */
  goawayAll(): void;
  /** Destroy every session at once (open streams cut, as when an origin restarts). */
  dropAll(): Promise<void>;
  close(): Promise<void>;
}

export async function startH2Upstream(): Promise<H2Upstream> {
  const server = http2.createServer({ settings: { maxConcurrentStreams: 2000 } });
  const up: H2Upstream = {
    port: 0,
    server,
    sessions: 0,
    streams: 0,
    heads: [],
    hangClosed: [],
    hangSawEnd: [],
    bigFlushed: 0,
    goawayAll: () => {
      for (const s of sessions) s.close();
    },
    dropAll: async () => {
      for (const s of sessions) s.destroy();
      await new Promise((r) => setTimeout(r, 10));
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    up.sessions++;
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', ((stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
    up.streams++;
    up.heads.push(raw);
    stream.on('error', () => {});
    if (headers[':method'] === 'CONNECT') {
      // A tunnel endpoint: echoes the tunnelled bytes.
      stream.respond({ ':status': 200 });
      stream.pipe(stream);
      return;
    }
    const path = String(headers[':path']).split('?')[0];
    if (path === '/echo') return echo(stream);
    if (path === '/headers') {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify(raw));
      return;
    }
    if (path === '/header-bomb') {
      stream.respond({ ':status': 200, 'x-bomb': 'b'.repeat(100 * 1024) });
      stream.end('never seen');
      return;
    }
    if (path === '/trailers-only') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' }, { endStream: true });
      return;
    }
    if (path.startsWith('/rst/')) {
      resetStream(stream, Number(path.slice(5)));
      return;
    }
    if (path.startsWith('/rst-mid/')) {
      stream.respond({ ':status': 200 });
      stream.write('partial', () => setTimeout(() => resetStream(stream, Number(path.slice(9))), 20));
      return;
    }
    if (path === '/hang') {
      let sawEnd = false;
      stream.on('end', () => {
        sawEnd = stream.rstCode === undefined || stream.rstCode === 0;
      });
      stream.resume();
      stream.on('close', () => {
        up.hangSawEnd.push(sawEnd);
        up.hangClosed.push(stream.rstCode ?? -1);
      });
      return;
    }
    if (path.startsWith('/big/')) return big(stream, Number(path.slice(5)), up);
    stream.respond({ ':status': 404 });
    stream.end();
  }) as (...args: any[]) => void);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.port = (server.address() as net.AddressInfo).port;
  return up;
}

function echo(stream: http2.ServerHttp2Stream): void {
  const hash = createHash('sha256');
  let reqTrailers: http2.IncomingHttpHeaders = {};
  stream.on('trailers', (t) => {
    reqTrailers = t;
  });
  stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'x-echo': 'yes' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => {
    const t: http2.OutgoingHttpHeaders = { 'x-sha256': hash.digest('hex') };
    for (const [k, v] of Object.entries(reqTrailers)) t[`x-req-${k}`] = v;
    stream.sendTrailers(t);
  });
  stream.on('data', (c: Buffer) => hash.update(c));
  stream.pipe(stream);
}

function big(stream: http2.ServerHttp2Stream, total: number, up: H2Upstream): void {
  stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  const pump = (): void => {
    while (sent < total && !stream.destroyed) {
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      const ok = stream.write(chunk.subarray(0, n), () => {
        up.bigFlushed += n;
      });
      if (!ok) {
        stream.once('drain', pump);
        return;
      }
    }
    if (sent >= total) stream.end();
  };
  pump();
}
