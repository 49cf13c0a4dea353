// The HTTP/2 (h2c prior knowledge) and gRPC handler: node:http2 terminates each downstream
// connection (framing, HPACK, flow control, abuse limits) and every stream is forwarded on a
// pooled upstream session, while the exchange is told what passed.

import http2 from 'node:http2';
import type net from 'node:net';
import { isGrpcContentType, PASSIVE_EXCHANGE, type Exchange, type ExchangeFactory } from '../exchange.js';
import type { ConnInfo, HandlerOptions, ProtocolHandler } from '../handler.js';
import type { ProxyMetrics } from '../proxy-metrics.js';
import { forwardBlock, forwardRequestHeaders, requestHead, sensitiveOf, withoutPseudo } from './headers.js';
import { rstCodeName } from './rst-codes.js';
import { closeSession, UpstreamPool } from './upstream-pool.js';

const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_FLAG_END_STREAM,
} = http2.constants;

/** Limits on both sides; the downstream ones are the abuse protections (header bombs, floods). */
const H2_LIMITS = {
  maxConcurrentStreams: 1000,
  /** Per-stream receive window: bounds what one stream buffers while its reader is slow. */
  streamWindow: 256 * 1024,
  connectionWindow: 1024 * 1024,
  /** Uncompressed header block bytes (SETTINGS_MAX_HEADER_LIST_SIZE); larger blocks are refused. */
  maxHeaderListSize: 64 * 1024,
  maxHeaderListPairs: 256,
  /** MB of nghttp2 session memory before new streams are refused (ENHANCE_YOUR_CALM). */
  maxSessionMemory: 32,
  /** Streams refused (e.g. over maxConcurrentStreams) before the session is closed. */
  maxSessionRejectedStreams: 100,
  maxSessionInvalidFrames: 1000,
  closeGraceMs: 2000,
} as const;

const SETTINGS: http2.Settings = {
  enablePush: false,
  maxConcurrentStreams: H2_LIMITS.maxConcurrentStreams,
  initialWindowSize: H2_LIMITS.streamWindow,
  maxHeaderListSize: H2_LIMITS.maxHeaderListSize,
};

/** Sent like Envoy does when no upstream answers, so gRPC clients see UNAVAILABLE and may retry. */
const UNAVAILABLE_MESSAGE = 'upstream connect error or disconnect/reset before headers. reset reason: connection failure';

// sendDate off: the upstream's head is forwarded as is, never with a Date it did not send.
const RESPOND_END = { endStream: true, sendDate: false } as http2.ServerStreamResponseOptions;
const RESPOND_OPEN = { waitForTrailers: true, sendDate: false } as http2.ServerStreamResponseOptions;

type Listener = (...args: any[]) => void;

export function createH2Handler(opts: HandlerOptions): ProtocolHandler {
  const { metrics, exchanges } = opts;
  const pool = new UpstreamPool({
    settings: SETTINGS,
    connectionWindow: H2_LIMITS.connectionWindow,
    maxSessionMemory: H2_LIMITS.maxSessionMemory,
    maxHeaderListPairs: H2_LIMITS.maxHeaderListPairs,
    onSessionError: () => metrics.upstreamErrors.inc(),
  });
  const server = http2.createServer({
    settings: SETTINGS,
    maxSessionMemory: H2_LIMITS.maxSessionMemory,
    maxHeaderListPairs: H2_LIMITS.maxHeaderListPairs,
    maxSessionRejectedStreams: H2_LIMITS.maxSessionRejectedStreams,
    maxSessionInvalidFrames: H2_LIMITS.maxSessionInvalidFrames,
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  const connOf = new WeakMap<http2.Http2Session, ConnInfo>();
  // node:http2 creates the session synchronously inside emit('connection'), so this is how the
  // session learns its ConnInfo without reaching into the socket.
  let accepting: ConnInfo | undefined;
  let closed = false;

  server.on('session', (session: http2.ServerHttp2Session) => {
    if (accepting !== undefined) connOf.set(session, accepting);
    sessions.add(session);
    // Protocol errors from the peer end its session, never the process.
    session.on('error', () => metrics.parseErrors.inc());
    session.on('close', () => sessions.delete(session));
    try {
      session.setLocalWindowSize(H2_LIMITS.connectionWindow);
    } catch {
      metrics.parseErrors.inc();
    }
  });
  server.on('stream', ((down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => {
    const conn = down.session === undefined ? undefined : connOf.get(down.session);
    if (conn === undefined) {
      down.on('error', noop);
      down.close(NGHTTP2_INTERNAL_ERROR);
      return;
    }
    metrics.requests.inc();
    new ProxiedStream(down, metrics).start(headers, flags, raw, conn, exchanges, opts.direction, pool);
  }) as Listener);

  return {
    handle(socket: net.Socket, initial: Buffer, conn: ConnInfo): void {
      if (closed) {
        socket.destroy();
        return;
      }
      try {
        // The session reads the socket's handle directly and drains what is buffered first.
        socket.pause();
        socket.unshift(initial);
        socket.setNoDelay(true);
        accepting = conn;
        server.emit('connection', socket);
      } catch {
        metrics.parseErrors.inc();
        socket.destroy();
      } finally {
        accepting = undefined;
      }
    },
    async close(): Promise<void> {
      closed = true;
      await Promise.all([
        ...[...sessions].map((s) => closeSession(s, H2_LIMITS.closeGraceMs)),
        pool.close(H2_LIMITS.closeGraceMs),
      ]);
    },
  };
}

/**
 * One downstream stream and its upstream twin. Bytes flow with backpressure both ways; the
 * exchange hears about each step, guarded so capture can never disturb forwarding.
 */
class ProxiedStream {
  private exchange: Exchange = PASSIVE_EXCHANGE;
  private readonly downSession: http2.Http2Session | undefined;
  private up: http2.ClientHttp2Stream | undefined;
  private upSession: http2.ClientHttp2Session | undefined;
  private upError: Error | undefined;
  private grpc = false;
  private connect = false;
  private responded = false;
  private reqTrailers: string[] | undefined;
  private reqTrailersSensitive: readonly string[] | undefined;
  private respTrailers: string[] | undefined;
  private respTrailersSensitive: readonly string[] | undefined;
  /** Set when the proxy itself resets a side, so that side's close is not read as the peer's. */
  private resetDown = false;
  private resetUp = false;
  private finished = false;

  constructor(
    private readonly down: http2.ServerHttp2Stream,
    private readonly metrics: ProxyMetrics,
  ) {
    this.downSession = down.session;
  }

  start(
    headers: http2.IncomingHttpHeaders,
    flags: number,
    raw: string[],
    conn: ConnInfo,
    exchanges: ExchangeFactory,
    direction: HandlerOptions['direction'],
    pool: UpstreamPool,
  ): void {
    const down = this.down;
    const head = requestHead(raw);
    const contentType = headers['content-type'];
    this.grpc = typeof contentType === 'string' && isGrpcContentType(contentType);
    this.connect = head.method === 'CONNECT';
    try {
      this.exchange = exchanges.start({
        direction,
        protocolVersion: '2',
        method: head.method,
        target: head.target,
        headers: head.headers,
        authority: head.authority,
        client: conn.client,
        server: conn.upstream,
      });
    } catch {
      this.metrics.captureErrors.inc();
    }
    // Stream errors also surface as 'close' with an rstCode, which is where they are handled.
    down.on('error', noop);
    down.on('close', () => this.onDownClose());

    const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    let out: http2.OutgoingHttpHeaders;
    try {
      out = forwardRequestHeaders(raw, this.exchange, sensitiveOf(headers));
    } catch {
      this.metrics.captureErrors.inc();
      out = forwardRequestHeaders(raw, PASSIVE_EXCHANGE, sensitiveOf(headers));
    }
    if (endStream) {
      this.requestEnded();
    } else {
      // Listened for from the start: 'trailers' is emitted whether or not anyone reads the body.
      down.on('trailers', ((h: http2.IncomingHttpHeaders, _f: number, r: string[]) => {
        this.reqTrailers = r;
        this.reqTrailersSensitive = sensitiveOf(h);
      }) as Listener);
    }
    let session: http2.ClientHttp2Session;
    try {
      session = pool.session(conn.upstream);
    } catch (err) {
      this.metrics.upstreamErrors.inc();
      this.upstreamFailed(errorType(err as Error));
      return;
    }
    pool.whenSettled(session, () => this.open(pool, conn, session, out, endStream));
  }

  /** Opens the upstream stream and wires both directions. */
  private open(pool: UpstreamPool, conn: ConnInfo, session: http2.ClientHttp2Session, out: http2.OutgoingHttpHeaders, endStream: boolean): void {
    const down = this.down;
    if (this.finished || down.closed || down.destroyed) return; // the client gave up meanwhile
    let up: http2.ClientHttp2Stream;
    try {
      this.upSession = session;
      try {
        up = session.request(out, { endStream, waitForTrailers: !endStream });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ERR_HTTP2_OUT_OF_STREAMS') throw err;
        pool.retire(session);
        this.upSession = pool.session(conn.upstream);
        up = this.upSession.request(out, { endStream, waitForTrailers: !endStream });
      }
    } catch (err) {
      this.metrics.upstreamErrors.inc();
      this.upstreamFailed(errorType(pool.errorOf(session) ?? (err as Error)));
      return;
    }
    this.up = up;
    up.on('error', (err: Error) => {
      this.upError = err;
    });
    up.on('close', () => this.onUpClose());
    up.on('headers', ((h: http2.IncomingHttpHeaders) => this.onInformational(h)) as Listener);
    up.on('response', ((h: http2.IncomingHttpHeaders, f: number, r: string[]) => this.onResponse(h, f, r)) as Listener);
    up.on('trailers', ((h: http2.IncomingHttpHeaders, _f: number, r: string[]) => {
      this.respTrailers = r;
      this.respTrailersSensitive = sensitiveOf(h);
    }) as Listener);
    // write() with pause/drain rather than pipe(): one listener per direction instead of
    // pipe()'s half dozen, on a path every request takes.
    up.on('data', (chunk: Buffer) => {
      if (!down.destroyed && !down.write(chunk)) up.pause();
      try {
        this.exchange.responseBody(chunk);
      } catch {
        this.metrics.captureErrors.inc();
      }
    });
    down.on('drain', () => up.resume());
    down.on('wantTrailers', () => {
      const t = this.respTrailers;
      down.sendTrailers(t === undefined ? {} : forwardBlock(t, this.respTrailersSensitive));
    });

    if (endStream) return;
    up.on('wantTrailers', () => {
      const t = this.reqTrailers;
      up.sendTrailers(t === undefined ? {} : forwardBlock(t, this.reqTrailersSensitive));
    });
    down.on('data', (chunk: Buffer) => {
      if (!up.destroyed && !up.write(chunk)) down.pause();
      try {
        this.exchange.requestBody(chunk);
      } catch {
        this.metrics.captureErrors.inc();
      }
    });
    up.on('drain', () => down.resume());
    down.on('end', () => {
      if (isReset(down)) return; // a cancelled request must not look complete upstream
      up.end();
      this.requestEnded();
    });
  }

  private requestEnded(): void {
    try {
      this.exchange.requestEnd(this.reqTrailers);
    } catch {
      this.metrics.captureErrors.inc();
    }
  }

  private onInformational(h: http2.IncomingHttpHeaders): void {
    if (this.down.headersSent || this.down.destroyed) return;
    try {
      this.down.additionalHeaders(h);
    } catch {
      // 1xx the downstream stack refuses (e.g. 101 in h2) are dropped: the final response follows.
    }
  }

  private onResponse(h: http2.IncomingHttpHeaders, flags: number, raw: string[]): void {
    const down = this.down;
    const up = this.up!;
    if (down.destroyed || down.closed) return;
    const ended = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    try {
      const out = forwardBlock(raw, sensitiveOf(h));
      down.respond(out, ended ? RESPOND_END : RESPOND_OPEN);
    } catch (err) {
      this.metrics.upstreamErrors.inc();
      this.closeDown(NGHTTP2_INTERNAL_ERROR);
      this.closeUp(NGHTTP2_CANCEL);
      this.fail(errorType(err as Error), 'invalid upstream response head');
      return;
    }
    this.responded = true;
    // A response that ends with its head (gRPC trailers-only) has no trailers: the exchange
    // finds grpc-status in the head it was given here.
    if (!ended) {
      up.on('end', () => {
        // node:http2 also ends the readable side of a reset stream: that must not reach the
        // client as a clean END_STREAM before the reset does.
        if (isReset(up)) return;
        down.end();
      });
    }
    const status = Number(h[':status']);
    try {
      if (this.connect && status >= 200 && status < 300) this.tunnelEstablished(status, raw);
      else this.exchange.responseHead(status, withoutPseudo(raw));
    } catch {
      this.metrics.captureErrors.inc();
    }
  }

  /** A CONNECT tunnel is up: its span ends here and the bytes after it are opaque. */
  private tunnelEstablished(status: number, raw: string[]): void {
    const exchange = this.exchange;
    this.exchange = PASSIVE_EXCHANGE;
    this.finished = true;
    exchange.tunnelEstablished(status, withoutPseudo(raw));
  }

  private onDownClose(): void {
    if (this.resetDown) return;
    const code = this.down.rstCode ?? NGHTTP2_NO_ERROR;
    if (code === NGHTTP2_NO_ERROR && this.responded) {
      this.complete();
      return;
    }
    // The client reset the stream or its connection went away: the upstream hears the same.
    this.closeUp(code === NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : code);
    if (this.downSession?.destroyed !== false) this.fail('client_abort', 'downstream connection closed');
    else this.fail(`RST_STREAM:${rstCodeName(code)}`, 'reset by client');
  }

  private onUpClose(): void {
    if (this.resetUp || this.resetDown || this.down.closed || this.down.destroyed) return;
    const up = this.up!;
    const code = up.rstCode ?? NGHTTP2_NO_ERROR;
    if (code === NGHTTP2_NO_ERROR && this.responded) return; // the forwarded end finishes downstream
    this.metrics.upstreamErrors.inc();
    const err = this.upError;
    if (this.upSession?.destroyed || (err !== undefined && (err as NodeJS.ErrnoException).code !== 'ERR_HTTP2_STREAM_ERROR')) {
      // The upstream connection failed or died under the stream.
      this.upstreamFailed(err === undefined ? 'upstream_disconnect' : errorType(err));
      return;
    }
    this.closeDown(code);
    this.fail(`RST_STREAM:${rstCodeName(code)}`, 'reset by upstream');
  }

  /** No usable upstream: a 502 (gRPC: trailers-only UNAVAILABLE) if nothing was sent yet. */
  private upstreamFailed(errType: string): void {
    const down = this.down;
    if (this.responded || down.headersSent || down.destroyed) {
      this.closeDown(NGHTTP2_INTERNAL_ERROR);
    } else {
      try {
        if (this.grpc) {
          down.respond(
            { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': UNAVAILABLE_MESSAGE },
            { endStream: true },
          );
        } else {
          down.respond({ ':status': 502, 'content-type': 'text/plain' });
          down.end(`${UNAVAILABLE_MESSAGE}\n`);
        }
        // Drop whatever request body is still arriving so the stream can close.
        down.resume();
      } catch {
        this.closeDown(NGHTTP2_INTERNAL_ERROR);
      }
    }
    this.fail(errType, 'upstream unavailable');
  }

  private complete(): void {
    if (this.finished) return;
    this.finished = true;
    try {
      this.exchange.responseEnd(this.respTrailers);
    } catch {
      this.metrics.captureErrors.inc();
    }
  }

  private fail(errType: string, message: string): void {
    if (this.finished) return;
    this.finished = true;
    try {
      this.exchange.fail(errType, message);
    } catch {
      this.metrics.captureErrors.inc();
    }
  }

  // close(code) first ends the writable side; were that to send END_STREAM, a truncated body would
  // look complete and no RST_STREAM would follow. Both sides are opened with waitForTrailers, so
  // ending only asks for trailers and close(code) reaches the peer as RST_STREAM(code).
  private closeDown(code: number): void {
    const down = this.down;
    if (down.closed || down.destroyed) return;
    this.resetDown = true;
    down.close(code);
  }

  private closeUp(code: number): void {
    const up = this.up;
    if (up === undefined || up.closed || up.destroyed) return;
    this.resetUp = true;
    up.close(code);
  }
}

function errorType(err: Error & { code?: string; cause?: unknown }): string {
  const cause = err.cause as { code?: unknown } | undefined;
  if (cause !== undefined && typeof cause.code === 'string') return cause.code;
  return err.code ?? err.name;
}

function isReset(stream: http2.Http2Stream): boolean {
  const code = stream.rstCode;
  return code !== undefined && code !== NGHTTP2_NO_ERROR;
}

function noop(): void {}
