// The contract between the listener (accept + protocol detection) and the protocol handlers.
// Upstream is per connection, not per handler: transparent listeners (iptables REDIRECT +
// SO_ORIGINAL_DST) learn the destination only after accept, and handlers pool by destination.

import type net from 'node:net';
import type { Direction, Endpoint, ExchangeFactory } from './exchange.js';
import type { ProxyMetrics } from './proxy-metrics.js';

export interface ConnInfo {
  /** The downstream peer. */
  client: Endpoint;
  /** Where this connection's traffic goes. */
  upstream: Endpoint;
}

export interface HandlerOptions {
  direction: Direction;
  exchanges: ExchangeFactory;
  metrics: ProxyMetrics;
}

export interface ProtocolHandler {
  /**
   * Take over an accepted socket. `initial` holds the bytes detection already read (never
   * empty for h1/h2); the handler processes them before anything else from the socket.
   * Must never throw: failures are counted and turned into the response the app's own
   * server would give, or a close.
   */
  handle(socket: net.Socket, initial: Buffer, conn: ConnInfo): void;
  /** Close pooled upstream connections and stop taking work. */
  close(): Promise<void>;
}
