// Runs the h2 handler behind a minimal stand-in for the lead's listener: accept on 127.0.0.1:0,
// read until the h2c preface is in, hand the socket and those bytes to handle().

import net from 'node:net';
import type { ExchangeFactory, Endpoint } from '../../src/proxy/exchange.js';
import type { ProtocolHandler } from '../../src/proxy/handler.js';
import { createH2Handler } from '../../src/proxy/h2/h2-handler.js';
import { createProxyMetrics, type ProxyMetrics } from '../../src/proxy/proxy-metrics.js';
import { Metrics } from '../../src/telemetry/metrics.js';

const PREFACE_LENGTH = 24;

export interface H2Proxy {
  port: number;
  url: string;
  handler: ProtocolHandler;
  metrics: ProxyMetrics;
  close(): Promise<void>;
}

export async function startH2Proxy(upstream: Endpoint, exchanges: ExchangeFactory): Promise<H2Proxy> {
  const metrics = createProxyMetrics(new Metrics());
  const handler = createH2Handler({ direction: 'inbound', exchanges, metrics });
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < PREFACE_LENGTH) return;
      socket.off('data', onData);
      handler.handle(socket, buffered, {
        client: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
        upstream,
      });
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    handler,
    metrics,
    async close() {
      await handler.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, read, released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
