// gRPC through the h2 handler with a real grpc-js client and server: every call is made through
// the proxy and directly, and both must give the same replies, status, message and metadata.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoClient, startGrpcEcho, type EchoReply, type EchoRequest, type GrpcEchoServer } from '../support/grpc-echo.js';
import { closedPort, startH2Proxy, type H2Proxy } from '../support/h2-proxy.js';
import { RecordingExchanges, rawHeader } from '../support/h2-recording-exchange.js';

type Client = ReturnType<typeof echoClient>;

interface Outcome {
  replies: Array<{ text: string; payload: string; index: number }>;
  code: number;
  details: string;
  initial: Record<string, string>;
  trailing: Record<string, string>;
}

let server: GrpcEchoServer;
let exchanges: RecordingExchanges;
let proxy: H2Proxy;
let viaProxy: Client;
let direct: Client;

beforeAll(async () => {
  server = await startGrpcEcho();
  exchanges = new RecordingExchanges({ keepChunks: false });
  proxy = await startH2Proxy({ address: '127.0.0.1', port: server.port }, exchanges);
  viaProxy = echoClient(proxy.port);
  direct = echoClient(server.port);
});

afterAll(async () => {
  viaProxy.close();
  direct.close();
  await proxy.close();
  await server.close();
});

function metadata(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-plain', 'value');
  md.set('x-request-bin', Buffer.from([0, 1, 2, 3, 254, 255]));
  return md;
}

function norm(md: grpc.Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (md === undefined) return out;
  for (const [k, v] of Object.entries(md.getMap())) {
    if (k === 'date') continue; // set per response by the origin's clock
    out[k] = Buffer.isBuffer(v) ? `bin:${v.toString('hex')}` : String(v);
  }
  return out;
}

function reply(r: EchoReply): Outcome['replies'][number] {
  return { text: r.text, payload: r.payload.toString('base64').slice(0, 64) + `#${r.payload.length}`, index: r.index };
}

function newOutcome(): Outcome {
  return { replies: [], code: -1, details: '', initial: {}, trailing: {} };
}

interface Observed {
  on(ev: 'metadata', f: (md: grpc.Metadata) => void): unknown;
  on(ev: 'status', f: (s: grpc.StatusObject) => void): unknown;
}

function observe(call: Observed, out: Outcome, resolve: (o: Outcome) => void): void {
  call.on('metadata', (md) => {
    out.initial = norm(md);
  });
  call.on('status', (s) => {
    out.code = s.code;
    out.details = s.details;
    out.trailing = norm(s.metadata);
    setImmediate(() => resolve(out));
  });
}

function unary(c: Client, req: EchoRequest, opts: grpc.CallOptions = {}, onCall?: (call: grpc.ClientUnaryCall) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const out = newOutcome();
    const call = c.Unary(req, metadata(), opts, (_err: unknown, r?: EchoReply) => {
      if (r) out.replies.push(reply(r));
    }) as grpc.ClientUnaryCall;
    observe(call, out, resolve);
    onCall?.(call);
  });
}

function clientStream(c: Client, reqs: EchoRequest[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const out = newOutcome();
    const call = c.ClientStream(metadata(), (_err: unknown, r?: EchoReply) => {
      if (r) out.replies.push(reply(r));
    }) as grpc.ClientWritableStream<EchoRequest>;
    observe(call, out, resolve);
    for (const r of reqs) call.write(r);
    call.end();
  });
}

function serverStream(c: Client, req: EchoRequest, opts: grpc.CallOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out = newOutcome();
    const call = c.ServerStream(req, metadata(), opts) as grpc.ClientReadableStream<EchoReply>;
    call.on('data', (r: EchoReply) => out.replies.push(reply(r)));
    call.on('error', () => {});
    observe(call, out, resolve);
  });
}

function bidi(c: Client, reqs: EchoRequest[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const out = newOutcome();
    const call = c.Bidi(metadata()) as grpc.ClientDuplexStream<EchoRequest, EchoReply>;
    call.on('error', () => {});
    observe(call, out, resolve);
    let i = 0;
    // Ping-pong: each request goes out after the previous reply came back.
    const send = (): void => {
      if (i < reqs.length) call.write(reqs[i++]);
      else call.end();
    };
    call.on('data', (r: EchoReply) => {
      out.replies.push(reply(r));
      send();
    });
    send();
  });
}

async function same(f: (c: Client) => Promise<Outcome>): Promise<Outcome> {
  const [p, d] = await Promise.all([f(viaProxy), f(direct)]);
  expect(p).toEqual(d);
  return p;
}

describe('gRPC through the proxy gives the same results as direct', () => {
  it('unary, with metadata including -bin both ways', async () => {
    const n = exchanges.all.length;
    const o = await same((c) => unary(c, { text: 'hello' }));
    expect(o.code).toBe(grpc.status.OK);
    expect(o.replies).toEqual([{ text: 'hello', payload: '#0', index: 0 }]);
    expect(o.initial['echo-x-request-bin']).toBe('bin:00010203feff');
    expect(o.trailing['x-trailer-bin']).toBe('bin:000102ff');
    expect(o.trailing['x-echo-bin']).toBe('bin:00010203feff');

    const recs = (await exchanges.ended(n + 1)).slice(n);
    const rec = recs.find((r) => r.start.target === '/sidetrace.test.Echo/Unary')!;
    expect(rec.start.method).toBe('POST');
    expect(rawHeader(rec.start.headers, 'content-type')).toBe('application/grpc');
    expect(rawHeader(rec.start.headers, 'x-request-bin')).toBe(Buffer.from([0, 1, 2, 3, 254, 255]).toString('base64').replace(/=+$/, ''));
    expect(rec.requestBytes).toBeGreaterThan(5);
    expect(rec.outcome).toBe('end');
    expect(rawHeader(rec.responseTrailers, 'grpc-status')).toBe('0');
  });

  it('client streaming', async () => {
    const o = await same((c) => clientStream(c, [{ text: 'a' }, { text: 'b', payload: Buffer.alloc(1000, 1) }, { text: 'c' }]));
    expect(o.replies).toEqual([{ text: 'a|b|c', payload: '#0', index: 1000 }]);
  });

  it('server streaming', async () => {
    const o = await same((c) => serverStream(c, { text: 'item', count: 20 }));
    expect(o.replies).toHaveLength(20);
    expect(o.code).toBe(grpc.status.OK);
  });

  it('bidi streaming', async () => {
    const o = await same((c) => bidi(c, Array.from({ length: 10 }, (_, i) => ({ text: `m${i}` }))));
    expect(o.replies.map((r) => r.text)).toEqual(Array.from({ length: 10 }, (_, i) => `echo m${i}`));
    expect(o.code).toBe(grpc.status.OK);
  });

  it('an error status with grpc-message (percent-encoded text) and trailing metadata', async () => {
    const o = await same((c) => unary(c, { text: 'no such book: «Ω» 100%', failCode: grpc.status.NOT_FOUND }));
    expect(o.code).toBe(grpc.status.NOT_FOUND);
    expect(o.details).toBe('no such book: «Ω» 100%');
    expect(o.trailing['x-trailer']).toBe('bye');
  });

  it('a trailers-only error response (no initial metadata)', async () => {
    const n = exchanges.all.length;
    const o = await same((c) => clientStream(c, [{ text: 'denied', failCode: grpc.status.PERMISSION_DENIED }]));
    expect(o.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(o.details).toBe('denied');
    const rec = (await exchanges.ended(n + 1)).slice(n).find((r) => r.start.target.endsWith('/ClientStream'))!;
    expect(rawHeader(rec.responseHeaders, 'grpc-status')).toBe(String(grpc.status.PERMISSION_DENIED));
    expect(rec.responseTrailers).toBeUndefined();
  });

  it('deadline exceeded, and the server sees the call cancelled', async () => {
    const before = server.cancelled.length;
    const call = (c: Client) => unary(c, { text: 'slow', delayMs: 3000 }, { deadline: Date.now() + 300 });
    const [p, d] = await Promise.all([call(viaProxy), call(direct)]);
    // The details are the client's own timing text; everything else must match.
    expect({ ...p, details: '' }).toEqual({ ...d, details: '' });
    expect(p.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(p.details).toMatch(/^Deadline exceeded/);
    await until(() => server.cancelled.length >= before + 2);
  });

  it('a client cancel reaches the server as a cancelled call', async () => {
    const before = { calls: server.calls, cancelled: server.cancelled.length };
    const n = exchanges.all.length;
    const o = await unary(viaProxy, { text: 'wait', hang: true }, {}, (call) => {
      void until(() => server.calls > before.calls).then(() => call.cancel());
    });
    expect(o.code).toBe(grpc.status.CANCELLED);
    await until(() => server.cancelled.length > before.cancelled);
    expect(server.cancelled.at(-1)).toBe('Unary');
    const rec = (await exchanges.ended(n + 1)).slice(n).find((r) => r.start.target.endsWith('/Unary'))!;
    expect(rec.errorType).toBe('RST_STREAM:CANCEL');
  });

  it('4 MiB messages both ways', async () => {
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = i & 0xff;
    const o = await same((c) => unary(c, { text: 'big', payload }));
    expect(o.code).toBe(grpc.status.OK);
    expect(o.replies[0].payload).toBe(payload.toString('base64').slice(0, 64) + `#${payload.length}`);
    const b = await same((c) => bidi(c, [{ text: 'x', payload }, { text: 'y', payload }]));
    expect(b.replies).toHaveLength(2);
  });

  it('300 concurrent calls over one client connection', async () => {
    const calls = (c: Client) =>
      Promise.all(Array.from({ length: 300 }, (_, i) => unary(c, { text: `c${i}`, payload: Buffer.alloc(i * 10, i & 0xff) })));
    const [p, d] = await Promise.all([calls(viaProxy), calls(direct)]);
    expect(p).toEqual(d);
    expect(p.every((o) => o.code === grpc.status.OK)).toBe(true);
  });
});

describe('gRPC upstream failure', () => {
  it('answers UNAVAILABLE like Envoy when the upstream refuses connections', async () => {
    const dead = new RecordingExchanges();
    const p = await startH2Proxy({ address: '127.0.0.1', port: await closedPort() }, dead);
    const c = echoClient(p.port);
    try {
      const o = await unary(c, { text: 'anyone?' });
      expect(o.code).toBe(grpc.status.UNAVAILABLE);
      expect(o.details).toMatch(/upstream connect error/);
      const [rec] = await dead.ended(1);
      expect(rec.errorType).toBe('ECONNREFUSED');
    } finally {
      c.close();
      await p.close();
    }
  });
});

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
