// The HTTP/1.x protocol handler: forwards each message's bytes verbatim between the downstream
// socket and a pooled upstream connection while a hand-written framer tracks message boundaries
// (node:http would re-serialize heads and re-chunk bodies; this is the product's hot path).
// Capture only hears about what passed, through the Exchange, and can never stall forwarding.

import type net from 'node:net';
import { PASSIVE_EXCHANGE, type Exchange } from '../exchange.js';
import type { ConnInfo, HandlerOptions, ProtocolHandler } from '../handler.js';
import type { ProxyMetrics } from '../proxy-metrics.js';
import { BodyReader, type BodySink } from './body.js';
import { BodyKind, HEAD_DONE, NEED_MORE, newHeadState, parseHead, requestFraming, responseFraming, type H1Error, type HeadLimits, type HeadState } from './head.js';
import { UpstreamPool, type UpstreamConn, type UpstreamOwner } from './pool.js';
import { splice } from '../passthrough.js';

export interface H1Tuning {
  /** Node's --max-http-header-size (default 16 KiB): requests over it get Node's 431. */
  maxHeaderSize?: number;
  /** Upstream response heads may be larger than what we accept from clients. */
  maxResponseHeaderSize?: number;
  maxIdlePerUpstream?: number;
  idleTimeoutMs?: number;
  /** Pipelined request bytes buffered while a response is in flight before reading pauses. */
  maxPipelineBuffer?: number;
  /**
   * A client silent this long between requests is closed; one stuck mid-head gets Node's 408
   * (slowloris). Requests in flight are never timed out here. Default 60 s, Node's headersTimeout.
   */
  clientIdleTimeoutMs?: number;
}

/** Exactly what Node's http server writes before closing on a malformed request. */
const NODE_400 = Buffer.from('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n', 'latin1');
const NODE_431 = Buffer.from('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n', 'latin1');
const NODE_413 = Buffer.from('HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n', 'latin1');
const NODE_408 = Buffer.from('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n', 'latin1');

const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

interface Shared {
  opts: HandlerOptions;
  metrics: ProxyMetrics;
  pool: UpstreamPool;
  reqLimits: HeadLimits;
  resLimits: HeadLimits;
  maxPipelineBuffer: number;
  clientIdleTimeoutMs: number;
}

export function createH1Handler(opts: HandlerOptions, tuning: H1Tuning = {}): ProtocolHandler {
  const maxHeaderSize = tuning.maxHeaderSize ?? 16 * 1024;
  const maxResponseHeaderSize = tuning.maxResponseHeaderSize ?? 64 * 1024;
  const shared: Shared = {
    opts,
    metrics: opts.metrics,
    pool: new UpstreamPool({ maxIdlePerEndpoint: tuning.maxIdlePerUpstream ?? 64, idleTimeoutMs: tuning.idleTimeoutMs ?? 4000 }),
    // Node counts only target, names and values; the raw cap bounds whitespace and line ends too.
    reqLimits: { maxHeaderSize, maxRawHead: maxHeaderSize * 8 },
    resLimits: { maxHeaderSize: maxResponseHeaderSize, maxRawHead: maxResponseHeaderSize * 8 },
    maxPipelineBuffer: tuning.maxPipelineBuffer ?? 64 * 1024,
    clientIdleTimeoutMs: tuning.clientIdleTimeoutMs ?? 60_000,
  };
  let closed = false;
  return {
    handle(socket: net.Socket, initial: Buffer, conn: ConnInfo): void {
      if (closed) {
        socket.destroy();
        return;
      }
      try {
        new H1Connection(shared, socket, conn).start(initial);
      } catch {
        // Defensive: a bug here must cost one connection, never the process.
        shared.metrics.parseErrors.inc();
        socket.destroy();
      }
    },
    async close(): Promise<void> {
      closed = true;
      shared.pool.close();
    },
  };
}

const enum Phase {
  /** Waiting for (the rest of) a request head. */
  Head,
  /** Request head forwarded, request body streaming. */
  Body,
  /** Request complete; waiting for the response to finish before reading the next request. */
  Wait,
  Tunnel,
  Closed,
}

const enum ResPhase {
  Head,
  Body,
  Done,
}

/** One downstream connection; handles one request/response exchange at a time, in order. */
class H1Connection implements UpstreamOwner {
  private phase = Phase.Head;
  /** Downstream bytes received but not processed yet (always starting at a message start). */
  private pending: Buffer | null = null;
  private head: HeadState = newHeadState();
  private downEnded = false;
  private waitUpDrain = false;
  private waitDownDrain = false;
  private pipelineFull = false;
  private downPaused = false;

  // The exchange in flight.
  private ex: Exchange | null = null;
  private up: UpstreamConn | null = null;
  private method = '';
  private reqClose = false;
  private reqUpgrade = false;
  private reqDone = false;
  private reqHeadBytes: Buffer | null = null;
  private retried = false;
  private readonly reqBody = new BodyReader();
  private resPhase = ResPhase.Head;
  private resHead: HeadState = newHeadState();
  private resPending: Buffer | null = null;
  private resAnyBytes = false;
  private resClose = false;
  private keepAliveSec = 0;
  private upReusable = true;
  private readonly resBody = new BodyReader();

  private readonly reqSink: BodySink = { bodyData: (c) => this.exRequestBody(c) };
  private readonly resSink: BodySink = { bodyData: (c) => this.exResponseBody(c) };
  private readonly upstreamKey: string;

  constructor(
    private readonly s: Shared,
    private readonly down: net.Socket,
    private readonly conn: ConnInfo,
  ) {
    this.upstreamKey = `${conn.upstream.address}:${conn.upstream.port}`;
  }

  start(initial: Buffer): void {
    const d = this.down;
    // A client's FIN after a complete request must still get the response (RFC 9112 §9.6).
    d.allowHalfOpen = true;
    d.setNoDelay(true);
    d.on('data', this.onDownData);
    d.on('end', this.onDownEnd);
    d.on('close', this.onDownClose);
    d.on('error', this.onDownError);
    d.on('drain', this.onDownDrain);
    // Socket inactivity timers are re-armed by libuv on I/O, with no per-request timer work.
    d.setTimeout(this.s.clientIdleTimeoutMs);
    d.on('timeout', this.onDownTimeout);
    this.onDownData(initial);
    if (this.phase !== Phase.Closed && this.phase !== Phase.Tunnel && !this.downPaused) d.resume();
  }

  // ---- downstream events ----

  private readonly onDownData = (chunk: Buffer): void => {
    switch (this.phase) {
      case Phase.Head:
        this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
        this.processRequests();
        break;
      case Phase.Body:
        this.forwardRequestBody(chunk, 0);
        break;
      case Phase.Wait:
        // Pipelined bytes wait until the response in flight has ended (responses stay in order).
        this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
        if (this.pending.length > this.s.maxPipelineBuffer) {
          this.pipelineFull = true;
          this.syncDownPause();
        }
        break;
      default:
        break;
    }
  };

  private readonly onDownEnd = (): void => {
    this.downEnded = true;
    if (this.phase === Phase.Head) this.closeDown();
    else if (this.phase === Phase.Body) this.clientAbort();
    // Phase.Wait: deliver the response (and any complete pipelined requests), then close.
  };

  private readonly onDownClose = (): void => {
    if (this.phase === Phase.Body || this.phase === Phase.Wait) this.clientAbort();
    this.phase = Phase.Closed;
    this.pending = null;
  };

  private readonly onDownTimeout = (): void => {
    if (this.phase !== Phase.Head) return;
    if (this.pending === null) {
      this.closeDown();
      return;
    }
    this.s.metrics.parseErrors.inc();
    this.pending = null;
    this.phase = Phase.Closed;
    this.down.end(NODE_408);
    this.down.destroySoon();
  };

  private readonly onDownError = (): void => {
    // 'close' follows; the abort is handled there.
  };

  private readonly onDownDrain = (): void => {
    if (!this.waitDownDrain) return;
    this.waitDownDrain = false;
    if (this.up !== null && this.up.socket.isPaused()) this.up.socket.resume();
  };

  private syncDownPause(): void {
    const pause = this.waitUpDrain || this.pipelineFull;
    if (pause === this.downPaused) return;
    this.downPaused = pause;
    if (pause) this.down.pause();
    else this.down.resume();
  }

  // ---- requests ----

  private processRequests(): void {
    while (this.phase === Phase.Head && this.pending !== null) {
      const buf = this.pending;
      const r = parseHead(buf, this.head, true, this.s.reqLimits);
      if (r === NEED_MORE) {
        if (this.downEnded) this.closeDown();
        return;
      }
      if (r !== HEAD_DONE) {
        this.rejectRequest(r);
        return;
      }
      const framing = requestFraming(this.head);
      if ('code' in framing) {
        this.rejectRequest(framing);
        return;
      }
      const headEnd = this.head.blankLine + 2;
      this.pending = null;
      const up = this.beginExchange(buf, headEnd, framing.kind, framing.length, framing.close, framing.upgrade, framing.host);
      if (headEnd === buf.length) continue;
      // beginExchange moved the phase on: Body when a body follows, Wait when the request is complete.
      if ((this.phase as Phase) === Phase.Body) {
        // Head and the body bytes that came with it leave in one write (writev), not two segments.
        up.cork();
        this.forwardRequestBody(buf, headEnd);
        up.uncork();
      } else {
        this.pending = buf.subarray(headEnd);
      }
    }
    if (this.phase === Phase.Head && this.downEnded) this.closeDown();
  }

  /** Starts the exchange and forwards the head; returns the upstream socket. */
  private beginExchange(buf: Buffer, headEnd: number, kind: BodyKind, length: number, close: boolean, upgrade: boolean, host: string | undefined): net.Socket {
    const h = this.head;
    this.s.metrics.requests.inc();
    this.method = h.method;
    this.reqClose = close;
    this.reqUpgrade = upgrade || h.method === 'CONNECT';
    this.reqDone = false;
    this.retried = false;
    this.resPhase = ResPhase.Head;
    this.resHead = newHeadState();
    this.resPending = null;
    this.resAnyBytes = false;
    this.resClose = false;
    this.keepAliveSec = 0;
    this.upReusable = true;
    let ex: Exchange;
    try {
      ex = this.s.opts.exchanges.start({
        direction: this.s.opts.direction,
        protocolVersion: h.version === '1.0' ? '1.0' : '1.1',
        method: h.method,
        target: h.target,
        headers: h.headers,
        authority: host,
        client: this.conn.client,
        server: this.conn.upstream,
      });
    } catch {
      this.s.metrics.captureErrors.inc();
      ex = PASSIVE_EXCHANGE;
    }
    this.ex = ex;
    const headBytes = this.rewriteHead(buf, headEnd, ex);
    // Kept only where a retry is allowed (see upstreamGone): it may pin a whole socket read.
    this.reqHeadBytes = kind === BodyKind.None && IDEMPOTENT.has(h.method) ? headBytes : null;
    const up = this.s.pool.acquire(this.conn.upstream, this.upstreamKey, this);
    this.up = up;
    if (this.waitDownDrain) up.socket.pause();
    this.reqBody.reset(kind, length);
    this.phase = Phase.Body;
    this.writeUp(headBytes);
    if (this.reqBody.done) this.requestComplete();
    return up.socket;
  }

  /** The head as received, minus the lines trace headers replace, plus the trace headers. */
  private rewriteHead(buf: Buffer, headEnd: number, ex: Exchange): Buffer {
    const verbatim = headEnd === buf.length ? buf : buf.subarray(0, headEnd);
    let add: ReadonlyArray<readonly [string, string]>;
    let drop: ReadonlySet<string>;
    try {
      add = ex.forwardHeaders;
      drop = ex.replacesHeaders;
    } catch {
      this.s.metrics.captureErrors.inc();
      return verbatim;
    }
    if (add.length === 0 && drop.size === 0) return verbatim;
    const h = this.head;
    const parts: Buffer[] = [];
    let from = 0;
    if (drop.size > 0) {
      const starts = h.lineStarts;
      const lengths = nameLengths(drop);
      for (let i = 0; i < starts.length; i++) {
        // The length gate skips the lowercase copy for nearly every header of every request.
        const name = h.headers[2 * i];
        if (lengths[name.length] !== true || !drop.has(name.toLowerCase())) continue;
        parts.push(buf.subarray(from, starts[i]));
        from = i + 1 < starts.length ? starts[i + 1] : h.blankLine;
      }
    }
    parts.push(buf.subarray(from, h.blankLine));
    let lines = '';
    for (const [name, value] of add) lines += `${name}: ${value}\r\n`;
    parts.push(Buffer.from(lines + '\r\n', 'latin1'));
    return Buffer.concat(parts);
  }

  private forwardRequestBody(buf: Buffer, start: number): void {
    const rb = this.reqBody;
    const n = rb.feed(buf, start, this.reqSink);
    if (n > 0) this.writeUp(start === 0 && n === buf.length ? buf : buf.subarray(start, start + n));
    if (rb.error !== null) {
      this.requestBodyError(rb.error);
      return;
    }
    if (rb.done) {
      if (start + n < buf.length) this.pending = buf.subarray(start + n);
      this.requestComplete();
    }
  }

  private requestComplete(): void {
    this.reqDone = true;
    this.phase = Phase.Wait;
    const ex = this.ex;
    if (ex !== null) {
      try {
        ex.requestEnd(this.reqBody.trailers);
      } catch {
        this.s.metrics.captureErrors.inc();
      }
    }
    if (this.pending !== null && this.pending.length > this.s.maxPipelineBuffer) {
      this.pipelineFull = true;
      this.syncDownPause();
    }
    if (this.resPhase === ResPhase.Done) this.finishExchange();
  }

  private writeUp(b: Buffer): void {
    const up = this.up;
    if (up === null || up.socket.destroyed) return;
    if (!up.socket.write(b) && !this.waitUpDrain) {
      this.waitUpDrain = true;
      this.syncDownPause();
    }
  }

  /** Answers a malformed request exactly as Node's http server would, then closes. */
  private rejectRequest(e: H1Error): void {
    this.s.metrics.parseErrors.inc();
    this.answerLikeNode(e);
  }

  /** Bad chunked framing mid-request: the upstream has a partial request and cannot be reused. */
  private requestBodyError(e: H1Error): void {
    this.s.metrics.parseErrors.inc();
    this.dropUpstream(true);
    this.exFail(e.code, e.message);
    if (this.finalStarted) {
      this.phase = Phase.Closed;
      this.down.destroy();
    } else {
      this.answerLikeNode(e);
    }
  }

  private answerLikeNode(e: H1Error): void {
    this.pending = null;
    this.phase = Phase.Closed;
    this.down.end(e.status === 431 ? NODE_431 : e.status === 413 ? NODE_413 : NODE_400);
    this.down.destroySoon();
  }

  // ---- responses (UpstreamOwner) ----

  /** The final response head went to the client: a failure now must break the message, not replace it. */
  private get finalStarted(): boolean {
    return this.resPhase !== ResPhase.Head;
  }

  upstreamData(chunk: Buffer): void {
    this.resAnyBytes = true;
    switch (this.resPhase) {
      case ResPhase.Head:
        this.resPending = this.resPending === null ? chunk : Buffer.concat([this.resPending, chunk]);
        this.processResponseHead();
        break;
      case ResPhase.Body:
        this.forwardResponseBody(chunk, 0);
        break;
      case ResPhase.Done:
        // Bytes after a complete response while the request still streams: never reuse.
        this.upReusable = false;
        break;
    }
  }

  private processResponseHead(): void {
    for (;;) {
      const buf = this.resPending;
      if (buf === null) return;
      const r = parseHead(buf, this.resHead, false, this.s.resLimits);
      if (r === NEED_MORE) return;
      if (r !== HEAD_DONE) {
        this.upstreamProtocolError(r);
        return;
      }
      const st = this.resHead;
      const headEnd = st.blankLine + 2;
      const status = st.status;
      if ((status === 101 && this.reqUpgrade && this.method !== 'CONNECT') || (this.method === 'CONNECT' && status >= 200 && status < 300)) {
        this.tunnel(buf, st);
        return;
      }
      if (status < 200) {
        if (status === 101) {
          this.upstreamProtocolError({ code: 'ST_H1_UNEXPECTED_101', message: 'upstream switched protocols without an Upgrade request', status: 400 });
          return;
        }
        // Interim (100 Continue, 103 Early Hints): forwarded, not reported as the final response.
        this.writeDown(headEnd === buf.length ? buf : buf.subarray(0, headEnd));
        this.resHead = newHeadState();
        this.resPending = headEnd < buf.length ? buf.subarray(headEnd) : null;
        continue;
      }
      const framing = responseFraming(st, this.method);
      if ('code' in framing) {
        this.upstreamProtocolError(framing);
        return;
      }
      this.resClose = framing.close || framing.both;
      this.keepAliveSec = framing.keepAliveSec;
      this.resBody.reset(framing.kind, framing.length);
      this.resPhase = ResPhase.Body;
      this.resPending = null;
      const ex = this.ex;
      if (ex !== null) {
        try {
          ex.responseHead(status, st.headers);
        } catch {
          this.s.metrics.captureErrors.inc();
        }
      }
      if (headEnd === buf.length) {
        this.writeDown(buf);
        if (this.resBody.done) this.responseComplete();
      } else if (this.resBody.done) {
        this.writeDown(buf.subarray(0, headEnd));
        this.upReusable = false;
        this.responseComplete();
      } else {
        const d = this.down;
        d.cork();
        this.writeDown(buf.subarray(0, headEnd));
        this.forwardResponseBody(buf, headEnd);
        d.uncork();
      }
      return;
    }
  }

  private forwardResponseBody(buf: Buffer, start: number): void {
    const rb = this.resBody;
    const n = rb.feed(buf, start, this.resSink);
    if (n > 0) this.writeDown(start === 0 && n === buf.length ? buf : buf.subarray(start, start + n));
    if (rb.error !== null) {
      this.upstreamProtocolError(rb.error);
      return;
    }
    if (rb.done) {
      if (start + n < buf.length) this.upReusable = false;
      this.responseComplete();
    }
  }

  private writeDown(b: Buffer): void {
    const d = this.down;
    if (d.destroyed) return;
    if (!d.write(b) && !this.waitDownDrain) {
      this.waitDownDrain = true;
      this.up?.socket.pause();
    }
  }

  private responseComplete(): void {
    this.resPhase = ResPhase.Done;
    const ex = this.ex;
    if (ex !== null) {
      try {
        ex.responseEnd(this.resBody.trailers);
      } catch {
        this.s.metrics.captureErrors.inc();
      }
    }
    if (this.reqDone) this.finishExchange();
    // The response ended before the request: the upstream may not have read it all; never reuse.
    else this.upReusable = false;
  }

  /** Both directions complete: release the upstream, then serve the next request or close. */
  private finishExchange(): void {
    this.ex = null;
    this.reqHeadBytes = null;
    const up = this.up;
    this.up = null;
    if (this.waitUpDrain) {
      this.waitUpDrain = false;
      this.syncDownPause();
    }
    if (up !== null) {
      if (this.upReusable && !this.reqClose && !this.resClose && !up.socket.readableEnded) this.s.pool.release(up, this.keepAliveSec);
      else {
        up.owner = null;
        up.socket.destroySoon();
      }
    }
    if (this.reqClose || this.resClose) {
      this.closeDown();
      return;
    }
    this.phase = Phase.Head;
    this.head = newHeadState();
    if (this.pipelineFull) {
      this.pipelineFull = false;
      this.syncDownPause();
    }
    this.processRequests();
  }

  upstreamEnd(): void {
    if (this.resPhase === ResPhase.Body && this.resBody.kind === BodyKind.UntilClose) {
      this.resBody.done = true;
      this.responseComplete();
      return;
    }
    if (this.resPhase === ResPhase.Done) {
      // Response done, request still streaming: the server stopped listening. Close after.
      this.upReusable = false;
      this.reqClose = true;
      this.up?.socket.end();
      return;
    }
    this.upstreamGone(undefined);
  }

  upstreamClose(error: NodeJS.ErrnoException | undefined): void {
    if (this.phase === Phase.Closed || this.phase === Phase.Tunnel) return;
    if (this.resPhase === ResPhase.Done) {
      this.up = null;
      // Response delivered; the remaining request bytes have nowhere to go.
      this.ex = null;
      this.closeDown();
      return;
    }
    this.upstreamGone(error);
  }

  upstreamDrain(): void {
    if (!this.waitUpDrain) return;
    this.waitUpDrain = false;
    this.syncDownPause();
  }

  /** The upstream closed or reset before the response completed. */
  private upstreamGone(error: NodeJS.ErrnoException | undefined): void {
    const up = this.up;
    // A reused keep-alive connection the server closed just as we sent a bodyless idempotent
    // request (RFC 9110 §9.2.2): sending it once more on a fresh connection is safe.
    if (up !== null && up.reused && !this.retried && !this.resAnyBytes && this.reqDone && this.reqHeadBytes !== null) {
      this.retried = true;
      up.owner = null;
      up.socket.destroy();
      this.up = this.s.pool.acquire(this.conn.upstream, this.upstreamKey, this);
      this.up.reused = false;
      if (this.waitDownDrain) this.up.socket.pause();
      this.writeUp(this.reqHeadBytes);
      return;
    }
    const code = error?.code ?? (error ? 'upstream_error' : 'upstream_closed');
    this.s.metrics.upstreamErrors.inc();
    this.dropUpstream(true);
    this.exFail(code, error?.message ?? 'upstream closed the connection before the response completed');
    if (this.finalStarted) {
      // Mid-response: the client must see a broken message, not a short one.
      this.phase = Phase.Closed;
      this.down.destroy();
      return;
    }
    this.respond502(code);
  }

  private upstreamProtocolError(e: H1Error): void {
    this.s.metrics.parseErrors.inc();
    this.dropUpstream(true);
    this.exFail(e.code, `upstream response: ${e.message}`);
    if (this.finalStarted) {
      this.phase = Phase.Closed;
      this.down.destroy();
    } else {
      this.respond502(e.code);
    }
  }

  private respond502(reason: string): void {
    // Like Envoy: a small plain-text body naming the reset reason.
    const body = `upstream connect error or disconnect/reset before headers. reset reason: ${reason}\n`;
    this.phase = Phase.Closed;
    this.pending = null;
    this.down.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`, 'latin1');
    this.down.destroySoon();
  }

  private clientAbort(): void {
    this.phase = Phase.Closed;
    this.pending = null;
    // RST rather than FIN, so the upstream app sees the abort at once.
    this.dropUpstream(true);
    this.exFail('client_abort', 'client closed the connection before the response completed');
    this.down.destroy();
  }

  private dropUpstream(reset: boolean): void {
    const up = this.up;
    this.up = null;
    if (up === null) return;
    up.owner = null;
    if (reset && !up.socket.destroyed) up.socket.resetAndDestroy();
    else up.socket.destroy();
  }

  private closeDown(): void {
    this.phase = Phase.Closed;
    this.pending = null;
    this.down.destroySoon();
  }

  // ---- tunnels (Upgrade 101, CONNECT 2xx) ----

  private tunnel(buf: Buffer, st: HeadState): void {
    const ex = this.ex;
    this.ex = null;
    if (ex !== null) {
      try {
        ex.tunnelEstablished(st.status, st.headers);
      } catch {
        this.s.metrics.captureErrors.inc();
      }
    }
    const up = this.up!.detach();
    this.up = null;
    this.phase = Phase.Tunnel;
    const d = this.down;
    d.off('data', this.onDownData);
    d.off('end', this.onDownEnd);
    d.off('close', this.onDownClose);
    d.off('drain', this.onDownDrain);
    d.off('timeout', this.onDownTimeout);
    d.setTimeout(0);
    // The 101/2xx head and anything after it, then bytes the client sent early, in order.
    d.write(buf);
    if (this.pending !== null) up.write(this.pending);
    this.pending = null;
    // From here on the tunnel is opaque bytes, relayed like any passthrough connection.
    splice(d, up);
    if (this.downPaused || d.isPaused()) {
      this.downPaused = false;
      d.resume();
    }
    if (up.isPaused()) up.resume();
  }

  // ---- guarded exchange calls: capture failures are counted, never allowed to touch traffic ----

  private exRequestBody(chunk: Buffer): void {
    const ex = this.ex;
    if (ex === null) return;
    try {
      ex.requestBody(chunk);
    } catch {
      this.s.metrics.captureErrors.inc();
    }
  }

  private exResponseBody(chunk: Buffer): void {
    const ex = this.ex;
    if (ex === null) return;
    try {
      ex.responseBody(chunk);
    } catch {
      this.s.metrics.captureErrors.inc();
    }
  }

  private exFail(code: string, message: string): void {
    const ex = this.ex;
    this.ex = null;
    if (ex === null) return;
    try {
      ex.fail(code, message);
    } catch {
      this.s.metrics.captureErrors.inc();
    }
  }
}

/** Per replaced-names set (the exchange hands out a few shared ones): which name lengths occur. */
const NAME_LENGTHS = new WeakMap<ReadonlySet<string>, boolean[]>();
function nameLengths(names: ReadonlySet<string>): readonly boolean[] {
  let lengths = NAME_LENGTHS.get(names);
  if (lengths === undefined) {
    lengths = [];
    for (const n of names) lengths[n.length] = true;
    NAME_LENGTHS.set(names, lengths);
  }
  return lengths;
}
