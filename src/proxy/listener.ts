// Accepts connections on one listener, detects the protocol from the first bytes and hands the
// socket to the HTTP/1, HTTP/2 or opaque path. Never waits on a server-first port, and a
// detection timeout falls back to passthrough: the connection is never reset by detection.

import net from 'node:net';
import { detectProtocol } from './detect.js';
import type { Direction, Endpoint } from './exchange.js';
import type { ConnInfo, ProtocolHandler } from './handler.js';
import { relay } from './passthrough.js';
import type { ProxyMetrics } from './proxy-metrics.js';

export interface ListenerSpec {
  direction: Direction;
  listen: Endpoint;
  /**
   * The fixed upstream for explicit listeners. Transparent listeners (iptables REDIRECT) leave
   * it out and pass `resolveUpstream`, which reads SO_ORIGINAL_DST per connection.
   */
  upstream?: Endpoint;
}

export interface ListenerDeps {
  h1: ProtocolHandler;
  h2: ProtocolHandler;
  metrics: ProxyMetrics;
  /** Upstream ports whose protocols speak first (MySQL, PostgreSQL, ...): relayed at once. */
  serverFirstPorts: ReadonlySet<number>;
  detectTimeoutMs: number;
  resolveUpstream?: (socket: net.Socket) => Endpoint | undefined;
}

export interface Listener {
  readonly spec: ListenerSpec;
  /** The bound address (the port is real even when 0 was asked). */
  readonly address: Endpoint;
  close(): Promise<void>;
}

/** A listener could not bind; names the flag that asked for it (the bind error is the cause). */
export class ListenError extends Error {
  readonly code = 'ST_LISTEN';
  constructor(spec: ListenerSpec, cause: Error) {
    super(`--${spec.direction} listener cannot bind ${spec.listen.address}:${spec.listen.port}: ${cause.message}`, { cause });
    this.name = 'ListenError';
  }
}

export async function startListener(spec: ListenerSpec, deps: ListenerDeps): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  // allowHalfOpen: a client's FIN after its request must not close our side before the
  // response is relayed (and tunnels forward FIN as FIN).
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    accept(socket, spec, deps);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new ListenError(spec, err));
    server.once('error', onError);
    server.listen(spec.listen.port, spec.listen.address, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  return {
    spec,
    address: { address: addr.address, port: addr.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

function accept(socket: net.Socket, spec: ListenerSpec, deps: ListenerDeps): void {
  deps.metrics.connections.inc();
  socket.on('error', noop); // handlers add their own; an early RST must not crash the process
  const upstream = spec.upstream ?? deps.resolveUpstream?.(socket);
  if (!upstream) {
    socket.destroy();
    return;
  }
  const conn: ConnInfo = {
    client: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
    upstream,
  };
  if (deps.serverFirstPorts.has(upstream.port)) {
    passthrough(socket, EMPTY, conn, deps);
    return;
  }

  let buffered: Buffer = EMPTY;
  const timer = setTimeout(() => decide('opaque'), deps.detectTimeoutMs);
  const onData = (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const d = detectProtocol(buffered);
    if (d !== 'need-more') decide(d);
  };
  // A client that sends nothing and closes: relay the FIN so the server sees what it would.
  const onEnd = () => decide('opaque');
  const onClose = () => clearTimeout(timer);
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onClose);

  function decide(d: 'h1' | 'h2' | 'opaque'): void {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('close', onClose);
    if (socket.destroyed) return;
    // Handlers attach their 'data' listener synchronously inside handle(), so no chunk is lost
    // between our listener going and theirs arriving.
    try {
      if (d === 'h1') deps.h1.handle(socket, buffered, conn);
      else if (d === 'h2') deps.h2.handle(socket, buffered, conn);
      else passthrough(socket, buffered, conn, deps);
    } catch {
      deps.metrics.parseErrors.inc();
      socket.destroy();
    }
  }
}

function passthrough(socket: net.Socket, initial: Buffer, conn: ConnInfo, deps: ListenerDeps): void {
  deps.metrics.passthroughConnections.inc();
  relay(socket, initial, conn.upstream, () => deps.metrics.upstreamErrors.inc());
}

const EMPTY = Buffer.alloc(0);
function noop(): void {}
