// The listener's detection and opaque relay, against real sockets: what isn't HTTP reaches the
// upstream byte for byte, server-first protocols are never stalled, detection never resets.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { once } from 'node:events';
import { ListenError, startListener, type Listener } from '../../src/proxy/listener.js';
import type { ProtocolHandler } from '../../src/proxy/handler.js';
import { createProxyMetrics } from '../../src/proxy/proxy-metrics.js';
import { Metrics } from '../../src/telemetry/metrics.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** An upstream that records every byte per connection and can greet first. */
async function upstreamServer(opts: { greeting?: Buffer; echo?: boolean } = {}) {
  const received: Buffer[][] = [];
  const ended: boolean[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const idx = received.push([]) - 1;
    ended.push(false);
    if (opts.greeting) s.write(opts.greeting);
    s.on('data', (d) => {
      received[idx].push(d);
      if (opts.echo) s.write(d);
    });
    s.on('end', () => {
      ended[idx] = true;
      s.end();
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  return { port, received, ended, bytes: (i: number) => Buffer.concat(received[i] ?? []) };
}

function recordingHandler(): ProtocolHandler & { calls: Array<{ initial: Buffer }> } {
  const calls: Array<{ initial: Buffer }> = [];
  return {
    calls,
    handle(socket, initial) {
      calls.push({ initial });
      socket.destroy();
    },
    close: async () => {},
  };
}

async function proxy(upstreamPort: number, extra: { serverFirst?: number[]; timeoutMs?: number } = {}) {
  const metrics = createProxyMetrics(new Metrics());
  const h1 = recordingHandler();
  const h2 = recordingHandler();
  const l: Listener = await startListener(
    { direction: 'inbound', listen: { address: '127.0.0.1', port: 0 }, upstream: { address: '127.0.0.1', port: upstreamPort } },
    { h1, h2, metrics, serverFirstPorts: new Set(extra.serverFirst ?? []), detectTimeoutMs: extra.timeoutMs ?? 300 },
  );
  cleanups.push(() => l.close());
  return { port: l.address.port, metrics, h1, h2 };
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1' });
  await once(s, 'connect');
  cleanups.push(() => void s.destroy());
  return s;
}

function collect(s: net.Socket): { data: () => Buffer; closed: Promise<unknown> } {
  const chunks: Buffer[] = [];
  s.on('data', (d) => chunks.push(d));
  return { data: () => Buffer.concat(chunks), closed: once(s, 'close') };
}

describe('listener detection and passthrough', () => {
  it('relays a TLS ClientHello and the rest of the stream untouched, both ways', async () => {
    const up = await upstreamServer({ echo: true });
    const p = await proxy(up.port);
    const s = await connect(p.port);
    const got = collect(s);
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    const rest = Buffer.alloc(100_000, 7);
    s.write(hello);
    s.end(rest);
    await got.closed;
    expect(up.bytes(0).equals(Buffer.concat([hello, rest]))).toBe(true);
    expect(got.data().equals(Buffer.concat([hello, rest]))).toBe(true);
    expect(up.ended[0]).toBe(true);
    expect(p.metrics.passthroughConnections.value).toBe(1);
    expect(p.h1.calls.length + p.h2.calls.length).toBe(0);
  });

  it('does not wait on server-first ports: the greeting arrives before the client says anything', async () => {
    const greeting = Buffer.from('J\0\0\0\n5.5.5-MariaDB\0');
    const up = await upstreamServer({ greeting });
    const p = await proxy(up.port, { serverFirst: [up.port], timeoutMs: 10_000 });
    const s = await connect(p.port);
    const started = Date.now();
    const [first] = (await once(s, 'data')) as [Buffer];
    expect(Date.now() - started).toBeLessThan(1000);
    expect(first.equals(greeting)).toBe(true);
  });

  it('falls back to passthrough on detection timeout, without resetting, for a server-first protocol on an unlisted port', async () => {
    const greeting = Buffer.from('+OK ready\r\n');
    const up = await upstreamServer({ greeting, echo: true });
    const p = await proxy(up.port, { timeoutMs: 200 });
    const s = await connect(p.port);
    const got = collect(s);
    await once(s, 'data');
    s.end('QUIT\r\n');
    await got.closed;
    expect(got.data().toString()).toBe('+OK ready\r\nQUIT\r\n');
    expect(p.metrics.passthroughConnections.value).toBe(1);
  });

  it('relays a client FIN that arrives during detection', async () => {
    const up = await upstreamServer();
    const p = await proxy(up.port, { timeoutMs: 5_000 });
    const s = await connect(p.port);
    const got = collect(s);
    s.end('GET');
    await got.closed;
    expect(up.bytes(0).toString()).toBe('GET');
    expect(up.ended[0]).toBe(true);
  });

  it('hands HTTP/1 and h2 connections to their handlers with the bytes already read', async () => {
    const up = await upstreamServer();
    const p = await proxy(up.port);
    const s1 = await connect(p.port);
    const c1 = collect(s1);
    s1.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await c1.closed;
    const s2 = await connect(p.port);
    const c2 = collect(s2);
    s2.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    await c2.closed;
    expect(p.h1.calls[0].initial.toString()).toBe('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(p.h2.calls[0].initial.toString()).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(up.received.length).toBe(0);
  });

  it('resets the client when the upstream refuses, as a direct connection would', async () => {
    const up = await upstreamServer();
    const p = await proxy(up.port);
    await cleanups.shift()!(); // close the upstream server so its port refuses
    const s = await connect(p.port);
    const errs: string[] = [];
    s.on('error', (e: NodeJS.ErrnoException) => errs.push(e.code ?? ''));
    const closed = new Promise((r) => s.on('close', r));
    s.write(Buffer.from([0x16, 3, 1]));
    await closed;
    expect(errs).toContain('ECONNRESET');
    expect(p.metrics.upstreamErrors.value).toBe(1);
  });

  it('a port already in use fails with ST_LISTEN, naming the flag and the address', async () => {
    const taken = await proxy(1);
    const err = await startListener(
      { direction: 'outbound', listen: { address: '127.0.0.1', port: taken.port }, upstream: { address: '127.0.0.1', port: 1 } },
      { h1: recordingHandler(), h2: recordingHandler(), metrics: createProxyMetrics(new Metrics()), serverFirstPorts: new Set(), detectTimeoutMs: 300 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).code).toBe('ST_LISTEN');
    expect((err as Error).message).toBe(`--outbound listener cannot bind 127.0.0.1:${taken.port}: listen EADDRINUSE: address already in use 127.0.0.1:${taken.port}`);
  });
});
