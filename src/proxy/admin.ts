// The admin listener: /healthz, /readyz, /metrics (Prometheus), /config (effective config) and
// /tap, a live NDJSON stream of finished spans for `sidetrace tap`. Kept off the data path: the
// tap serializes once per tick for all clients and drops lines for a client that reads slowly.

import http from 'node:http';
import type net from 'node:net';
import type { Endpoint, TapHub } from './exchange.js';
import type { Counter, Metrics } from '../telemetry/metrics.js';
import { spanToJson } from '../telemetry/span-json.js';
import type { SpanRecord } from '../telemetry/span.js';

export interface AdminOptions {
  /** Where to listen (the lead's config default is 127.0.0.1:15000); port 0 picks one. */
  listen: Endpoint;
  metrics: Metrics;
  /** True once the proxy's listeners are bound; /readyz answers 503 until then. */
  ready: () => boolean;
  /** The effective configuration served on /config, secrets already removed (redactExportConfig). */
  config: () => unknown;
  /** Unsent tap output allowed per client before its lines are dropped. Default 1 MiB. */
  tapBufferBytes?: number;
}

export interface AdminServer {
  tap: TapHub;
  listen(): Promise<Endpoint>;
  /** The bound address; valid after listen(). */
  address(): Endpoint;
  close(): Promise<void>;
}

export class AdminListenError extends Error {
  readonly code = 'ST_ADMIN_LISTEN';
  constructor(addr: Endpoint, cause: Error) {
    super(`admin listener cannot bind ${addr.address}:${addr.port} (--admin): ${cause.message}`, { cause });
    this.name = 'AdminListenError';
  }
}

const DEFAULT_TAP_BUFFER = 1024 * 1024;
// Spans waiting for the next tap flush; a burst beyond it within one tick is dropped.
const MAX_PENDING_TAP_SPANS = 4096;

export function createAdminServer(opts: AdminOptions): AdminServer {
  const tap = new TapBroadcaster(
    opts.tapBufferBytes ?? DEFAULT_TAP_BUFFER,
    opts.metrics.counter('sidetrace_tap_lines_dropped_total', 'Tap lines not sent to a client that reads too slowly (per client).'),
  );
  opts.metrics.gauge('sidetrace_tap_clients', 'Clients connected to /tap.', () => tap.clients);

  const server = http.createServer((req, res) => {
    try {
      route(req, res);
    } catch (err) {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${(err as Error).message}\n`);
      else res.destroy();
    }
  });

  function route(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    // Query strings are the tap client's filters, applied on its side.
    switch (q < 0 ? url : url.slice(0, q)) {
      case '/healthz':
        return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      case '/readyz':
        return opts.ready() ? send(res, 200, 'text/plain; charset=utf-8', 'ready\n') : send(res, 503, 'text/plain; charset=utf-8', 'not ready\n');
      case '/metrics':
        return send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', opts.metrics.render());
      case '/config':
        return send(res, 200, 'application/json', JSON.stringify(opts.config(), null, 2) + '\n');
      case '/tap':
        if (req.method === 'HEAD') return send(res, 200, 'application/x-ndjson', '');
        return tap.attach(res);
      default:
        return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /healthz /readyz /metrics /config /tap\n');
    }
  }

  let bound: Endpoint | undefined;
  return {
    tap,
    listen: () =>
      new Promise<Endpoint>((resolve, reject) => {
        const onError = (err: Error) => reject(new AdminListenError(opts.listen, err));
        server.once('error', onError);
        server.listen(opts.listen.port, opts.listen.address, () => {
          server.off('error', onError);
          const a = server.address() as net.AddressInfo;
          bound = { address: a.address, port: a.port };
          resolve(bound);
        });
      }),
    address: () => {
      if (!bound) throw new Error('admin listener is not listening yet');
      return bound;
    },
    close: () =>
      new Promise<void>((resolve) => {
        tap.endAll();
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: http.ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** TapHub for /tap clients: spans are batched per tick, serialized once, written to every client. */
class TapBroadcaster implements TapHub {
  private readonly streams = new Set<http.ServerResponse>();
  private pending: SpanRecord[] = [];
  private scheduled = false;

  constructor(
    private readonly bufferBytes: number,
    private readonly dropped: Counter,
  ) {}

  get active(): boolean {
    return this.streams.size > 0;
  }

  get clients(): number {
    return this.streams.size;
  }

  publish(span: SpanRecord): void {
    if (this.streams.size === 0) return;
    if (this.pending.length >= MAX_PENDING_TAP_SPANS) {
      this.dropped.inc(this.streams.size);
      return;
    }
    this.pending.push(span);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  attach(res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    // Headers now, so the client knows it is subscribed before the first span.
    res.flushHeaders();
    this.streams.add(res);
    res.on('close', () => this.streams.delete(res));
  }

  endAll(): void {
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  private flush(): void {
    this.scheduled = false;
    const spans = this.pending;
    this.pending = [];
    if (this.streams.size === 0) return;
    let text = '';
    let lines = 0;
    for (const span of spans) {
      try {
        text += spanToJson(span) + '\n';
        lines++;
      } catch {
        this.dropped.inc(this.streams.size);
      }
    }
    if (lines === 0) return;
    const chunk = Buffer.from(text);
    for (const res of this.streams) {
      // writableLength counts what the response and its socket still hold: a client that
      // stopped reading makes it grow, and then it misses lines instead of growing our memory.
      // An idle client always gets the chunk, however large, so a burst is not lost to everyone.
      if (res.writableLength > 0 && res.writableLength + chunk.length > this.bufferBytes) this.dropped.inc(lines);
      else res.write(chunk);
    }
  }
}
