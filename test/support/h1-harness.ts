// Real-socket harness for the HTTP/1 handler tests: a listener that hands sockets to the handler
// the way the proxy's listener does, a recording TCP tap in front of upstream servers, and a raw
// client that returns the exact bytes a client receives.

import net from 'node:net';
import { afterEach } from 'vitest';
import type { AddressInfo } from 'node:net';
import { Metrics } from '../../src/telemetry/metrics.js';
import { createProxyMetrics, type ProxyMetrics } from '../../src/proxy/proxy-metrics.js';
import type { Endpoint, ExchangeFactory } from '../../src/proxy/exchange.js';
import type { ProtocolHandler } from '../../src/proxy/handler.js';
import { createH1Handler, type H1Tuning } from '../../src/proxy/h1/handler.js';
import { RecordingExchangeFactory } from './h1-recording-exchange.js';

export interface Started {
  port: number;
  close(): Promise<void>;
}

export async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

export interface H1Proxy<F extends ExchangeFactory> extends Started {
  handler: ProtocolHandler;
  /** The accepted downstream sockets (the proxy's side), e.g. to read bytesRead. */
  sockets: Set<net.Socket>;
  metrics: ProxyMetrics;
  factory: F;
}

/** Accepts like the proxy listener: reads the first bytes, then hands the socket over. */
export async function startH1Proxy<F extends ExchangeFactory = RecordingExchangeFactory>(
  upstreamPort: number,
  opts: { factory?: F; tuning?: H1Tuning; halfOpenListener?: boolean } = {},
): Promise<H1Proxy<F>> {
  const metrics = createProxyMetrics(new Metrics());
  const factory = (opts.factory ?? new RecordingExchangeFactory()) as F;
  const handler = createH1Handler({ direction: 'inbound', exchanges: factory, metrics }, opts.tuning);
  const upstream: Endpoint = { address: '127.0.0.1', port: upstreamPort };
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: opts.halfOpenListener ?? false }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', (first) => {
      socket.pause();
      handler.handle(socket, first, { client: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }, upstream });
    });
  });
  const port = await listen(server);
  const closeServer = closer(server, sockets);
  return {
    port,
    handler,
    sockets,
    metrics,
    factory,
    close: async () => {
      await handler.close();
      await closeServer();
    },
  };
}

export interface Tap extends Started {
  /** Client→server bytes, one entry per accepted connection. */
  received: Buffer[][];
  connections(): number;
  /** All client→server bytes of connection i. */
  bytes(i?: number): Buffer;
}

/** A transparent TCP relay in front of a server, recording what reaches it (and counting connections). */
export async function startTap(targetPort: number): Promise<Tap> {
  const received: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (a) => {
    const rec: Buffer[] = [];
    received.push(rec);
    const b = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    sockets.add(a);
    sockets.add(b);
    a.on('data', (d) => rec.push(Buffer.from(d)));
    a.pipe(b);
    b.pipe(a);
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.on('close', () => {
      sockets.delete(a);
      if (!a.readableEnded) b.resetAndDestroy();
    });
    b.on('close', () => {
      sockets.delete(b);
      if (!b.readableEnded) a.destroy();
    });
  });
  const port = await listen(server);
  return {
    port,
    received,
    connections: () => received.length,
    bytes: (i = 0) => Buffer.concat(received[i] ?? []),
    close: closer(server, sockets),
  };
}

/** A raw TCP server; `onConn` gets each socket (allowHalfOpen, so tests control FIN). */
export async function startRawServer(onConn: (s: net.Socket) => void): Promise<Started & { sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  const port = await listen(server);
  return { port, sockets, close: closer(server, sockets) };
}

export interface RawOptions {
  /** Half-close after the last write. */
  end?: boolean;
  /** Resolve when this returns true for the bytes so far. */
  until?: (got: Buffer) => boolean;
  /** Resolve after this long without new bytes (default 3000 ms, a safety net). */
  idleMs?: number;
  /** Delay between writes of successive pieces. */
  gapMs?: number;
}

/** Sends pieces on one connection and returns every byte received until close/until/idle. */
export function rawRequest(port: number, pieces: Array<Buffer | string> | Buffer | string, o: RawOptions = {}): Promise<Buffer> {
  const list = Array.isArray(pieces) ? pieces : [pieces];
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(got));
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(finish, o.idleMs ?? 3000);
    };
    s.on('data', (d) => {
      got.push(d);
      arm();
      if (o.until?.(Buffer.concat(got))) finish();
    });
    s.on('error', () => {});
    // The server's FIN ends what this client can receive.
    s.on('end', finish);
    s.on('close', finish);
    s.on('connect', async () => {
      arm();
      for (let i = 0; i < list.length; i++) {
        if (i > 0 && o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
        const p = list[i];
        s.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
      }
      if (o.end) s.end();
    });
  });
}

/** Removes the given header lines (e.g. the added traceparent) from a captured byte stream. */
export function withoutHeaderLines(b: Buffer, names: string[]): string {
  const re = new RegExp(`^(?:${names.join('|')}): [^\\r\\n]*\\r\\n`, 'gim');
  return b.toString('latin1').replace(re, '');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Cleanup for a test file: registers an afterEach that runs, newest first, everything the test
 * handed to `defer`; `track` defers a started server's close and returns the server.
 */
export function cleanupAfterEach(): { track: <T extends Started>(s: T) => T; defer: (fn: () => Promise<void>) => void } {
  const pending: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of pending.splice(0).reverse()) await fn();
  });
  return {
    track: (s) => {
      pending.push(() => s.close());
      return s;
    },
    defer: (fn) => {
      pending.push(fn);
    },
  };
}
