import grpc from '@grpc/grpc-js';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, test } from 'vitest';
import { compilePolicy } from '../policy/parse.js';
import { createExchangeFactory } from '../proxy/exchange-impl.js';
import type { ExchangeStart } from '../proxy/exchange.js';
import { createProxyMetrics } from '../proxy/proxy-metrics.js';
import { Metrics } from '../telemetry/metrics.js';
import { SpanKind, StatusCode, type SpanRecord } from '../telemetry/span.js';
import { fixedClock } from './clock.js';
import { parseCgroup, type ProcessInfo } from './process-info.js';
import { SpanReplayer } from './spans.js';
import { recordTraffic } from './test-support/record.js';
import { newRun } from './test-support/run.js';
import { connEvents } from './test-support/synthetic.js';
import { rawUnaryMethod } from '../collector/raw-grpc.js';

const CGROUP = '0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e3d4c_5b6a_7980_a1b2_c3d4e5f60718.slice/cri-containerd-' + 'ab'.repeat(32) + '.scope\n';

const OFFSET_MS = 1_700_000_000_000;

function agentSpans(doc: unknown = {}, opts: { tap?: boolean; copiesBytesBelow?: number } = {}) {
  const spans: SpanRecord[] = [];
  const tapped: SpanRecord[] = [];
  const policy = compilePolicy(doc);
  // One info object per pid, as the agent's ProcessInfoCache gives.
  const infos = new Map<number, ProcessInfo>();
  const replayer = new SpanReplayer({
    policy: () => policy,
    sink: { submit: (s) => spans.push(s), copiesBytesBelow: opts.copiesBytesBelow },
    tap: opts.tap === false ? undefined : { active: true, publish: (s) => tapped.push(s) },
    metrics: createProxyMetrics(new Metrics()),
    clock: fixedClock(OFFSET_MS),
    process: (pid) => {
      let info = infos.get(pid);
      if (info === undefined) infos.set(pid, (info = { executableName: 'python3.11', cgroup: parseCgroup(CGROUP) }));
      return info;
    },
  });
  const run = newRun({ onRecord: (conn, record) => replayer.replay(conn, record) });
  return { spans, tapped, run };
}

const REQUEST = 'POST /orders/7?token=s3cret&x=1 HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: t/1\r\nAuthorization: Bearer abc\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n{"item":"book","password":"hunter2"}';
const RESPONSE = 'HTTP/1.1 503 Unavailable\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"ok":false}\n';

describe('spans from captured exchanges', () => {
  test('server role: SERVER span with the proxy\'s attributes, parent from traceparent, redaction, identity', () => {
    const { spans, run } = agentSpans();
    run.table.handle(
      connEvents({ connId: 9, pid: 77, role: 'server', comm: 'python3', local: { address: '10.1.0.5', port: 8080 }, remote: { address: '10.1.0.9', port: 51000 } }, [
        { direction: 'ingress', data: REQUEST.slice(0, -1) },
        { direction: 'ingress', data: '}' },
        { direction: 'egress', data: RESPONSE },
      ]),
    );
    expect(spans).toHaveLength(1);
    const s = spans[0];
    expect(s.kind).toBe(SpanKind.SERVER);
    // Kernel times: the first request byte (write 1 at 1e12 + 1 ms) to the last response byte (write 3).
    expect(s.startMs).toBe(OFFSET_MS + 1e6 + 1);
    expect(s.endMs).toBe(OFFSET_MS + 1e6 + 3);
    expect(s.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(s.parentSpanId).toBe('b7ad6b7169203331');
    expect(s.status.code).toBe(StatusCode.ERROR);
    expect(s.attributes).toMatchObject({
      'http.request.method': 'POST',
      'url.path': '/orders/7',
      'url.query': 'token=REDACTED&x=1',
      'server.address': 'shop',
      'server.port': 8080,
      'client.address': '10.1.0.9',
      'client.port': 51000,
      'http.response.status_code': 503,
      'http.request.header.authorization': ['REDACTED'],
      'http.request.body.content': '{"item":"book","password":"REDACTED"}',
      'http.response.body.content': '{"ok":false}\n',
      'sidetrace.capture.source': 'ebpf',
      'network.local.address': '10.1.0.5',
    });
    // The process is the span's resource (a service of its own), not a span attribute.
    expect(s.resource?.attributes).toEqual({
      'service.name': 'python3.11',
      'process.pid': 77,
      'process.executable.name': 'python3.11',
      'container.id': 'ab'.repeat(32),
      'k8s.pod.uid': '1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718',
      'sidetrace.cgroup': CGROUP.trim().slice(3),
    });
    expect(Object.keys(s.attributes).filter((k) => k.startsWith('process.') || k.startsWith('k8s.') || k.startsWith('container.'))).toEqual([]);
  });

  test('one resource object per process, shared by its connections\' spans; another process gets its own', () => {
    const { spans, run } = agentSpans();
    const exchange = [
      { direction: 'egress' as const, data: 'GET /a HTTP/1.1\r\nHost: a\r\n\r\n' },
      { direction: 'ingress' as const, data: 'HTTP/1.1 204 No Content\r\n\r\n' },
    ];
    run.table.handle(connEvents({ connId: 30, pid: 501, role: 'client' }, exchange));
    run.table.handle(connEvents({ connId: 31, pid: 501, role: 'client' }, exchange));
    run.table.handle(connEvents({ connId: 32, pid: 502, role: 'client' }, exchange));
    expect(spans).toHaveLength(3);
    expect(spans[0].resource).toBe(spans[1].resource);
    expect(spans[2].resource).not.toBe(spans[0].resource);
    expect(spans.map((s) => s.resource?.attributes['process.pid'])).toEqual([501, 501, 502]);
  });

  test('server role over TLS: a Host without a port means 443, not 80', () => {
    const { spans, run } = agentSpans();
    run.table.handle(
      connEvents({ connId: 4, role: 'server', source: 'tls', local: { address: '10.0.0.5', port: 8443 } }, [
        { direction: 'ingress', data: 'GET /secure HTTP/1.1\r\nHost: shop.example\r\n\r\n' },
        { direction: 'egress', data: 'HTTP/1.1 204 No Content\r\n\r\n' },
      ]),
    );
    expect(spans).toHaveLength(1);
    expect(spans[0].kind).toBe(SpanKind.SERVER);
    expect(spans[0].attributes).toMatchObject({ 'server.address': 'shop.example', 'server.port': 443, 'url.scheme': 'https' });
  });

  test('client role: CLIENT span to the remote peer, TLS source marked', () => {
    const { spans, run } = agentSpans();
    run.table.handle(
      connEvents({ connId: 3, role: 'client', source: 'tls', remote: { address: '93.184.216.34', port: 443 } }, [
        { direction: 'egress', data: 'GET /v1/items HTTP/1.1\r\nHost: api.example\r\n\r\n' },
        { direction: 'ingress', data: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]' },
      ]),
    );
    expect(spans).toHaveLength(1);
    expect(spans[0].kind).toBe(SpanKind.CLIENT);
    expect(spans[0].attributes).toMatchObject({
      'server.address': '93.184.216.34',
      'server.port': 443,
      'url.full': 'https://api.example/v1/items',
      'url.scheme': 'https',
      'sidetrace.capture.source': 'ebpf-tls',
      'http.response.status_code': 200,
    });
  });

  test('attributes equal what the proxy\'s exchange makes from the same request', () => {
    const { spans, run } = agentSpans();
    run.table.handle(
      connEvents({ connId: 1, role: 'server', local: { address: '10.1.0.5', port: 8080 }, remote: { address: '10.1.0.9', port: 51000 } }, [
        { direction: 'ingress', data: REQUEST },
        { direction: 'egress', data: RESPONSE },
      ]),
    );
    // The proxy's h1 handler hands the exchange exactly these fields for this request.
    const proxied: SpanRecord[] = [];
    const policy = compilePolicy({});
    const ex = createExchangeFactory({ policy: () => policy, sink: { submit: (s) => proxied.push(s) }, metrics: createProxyMetrics(new Metrics()) });
    const head = REQUEST.slice(0, REQUEST.indexOf('\r\n\r\n')).split('\r\n');
    const headers = head.slice(1).flatMap((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
    const start: ExchangeStart = { direction: 'inbound', protocolVersion: '1.1', method: 'POST', target: '/orders/7?token=s3cret&x=1', headers, authority: 'shop:8080', client: { address: '10.1.0.9', port: 51000 }, server: { address: '10.1.0.5', port: 8080 } };
    const e = ex.start(start);
    e.requestBody(Buffer.from(REQUEST.slice(REQUEST.indexOf('\r\n\r\n') + 4)));
    e.requestEnd();
    const resHead = RESPONSE.slice(0, RESPONSE.indexOf('\r\n\r\n')).split('\r\n').slice(1).flatMap((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
    e.responseHead(503, resHead);
    e.responseBody(Buffer.from(RESPONSE.slice(RESPONSE.indexOf('\r\n\r\n') + 4)));
    e.responseEnd();
    const agentOnly = ['sidetrace.capture.source', 'network.local.address', 'network.local.port'];
    const strip = (a: Record<string, unknown>) => Object.fromEntries(Object.entries(a).filter(([k]) => !agentOnly.includes(k)));
    expect(strip(spans[0].attributes)).toEqual(strip(proxied[0].attributes));
    expect(spans[0].name).toBe(proxied[0].name);
  });

  // The second case is the agent's usual one (OTLP export, no tap): bodies go out uncopied.
  test.each([
    { sink: 'a sink that may keep spans, a live tap', opts: {} },
    { sink: 'a sink that copies small bodies, no tap', opts: { tap: false, copiesBytesBelow: 2048 } },
  ])('an nginx-like GET → 200 with a 1 KiB body, both sides, $sink: the same span as the proxy\'s exchange makes, attribute order included', ({ opts }) => {
    const { spans, run } = agentSpans({}, opts);
    const request = 'GET /index.html?a=1&token=x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nCookie: s=1\r\n\r\n';
    const head = 'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\nConnection: keep-alive\r\n\r\n';
    const body = Buffer.alloc(1024, 0x78);
    const client = { address: '10.1.0.9', port: 51000 };
    const server = { address: '10.1.0.5', port: 8080 };
    // Spans are built twice for the same shape: the second time through the compiled path.
    for (let i = 0; i < 2; i++) {
      for (const role of ['client', 'server'] as const) {
        const local = role === 'client' ? client : server;
        const remote = role === 'client' ? server : client;
        run.table.handle(
          connEvents({ connId: 20 + 2 * i + (role === 'server' ? 1 : 0), role, local, remote }, [
            { direction: role === 'client' ? 'egress' : 'ingress', data: request },
            { direction: role === 'client' ? 'ingress' : 'egress', data: Buffer.concat([Buffer.from(head, 'latin1'), body]) },
          ]),
        );
      }
    }
    expect(spans).toHaveLength(4);

    const policy = compilePolicy({});
    const proxied: SpanRecord[] = [];
    const factory = createExchangeFactory({ policy: () => policy, sink: { submit: (s) => proxied.push(s) }, metrics: createProxyMetrics(new Metrics()) });
    const fields = (text: string) => text.split('\r\n').slice(1, -2).flatMap((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
    for (let i = 0; i < 2; i++) {
      for (const direction of ['outbound', 'inbound'] as const) {
        const e = factory.start({ direction, protocolVersion: '1.1', method: 'GET', target: '/index.html?a=1&token=x', headers: fields(request), authority: '127.0.0.1:8080', client, server });
        e.requestEnd();
        e.responseHead(200, fields(head));
        e.responseBody(body);
        e.responseEnd();
      }
    }
    const agentOnly = ['sidetrace.capture.source', 'network.local.address', 'network.local.port'];
    const strip = (a: Record<string, unknown>) => Object.entries(a).filter(([k]) => !agentOnly.includes(k));
    for (let i = 0; i < 4; i++) {
      const [a, p] = [spans[i], proxied[i]];
      expect(strip(a.attributes)).toEqual(strip(p.attributes));
      expect([a.name, a.kind, a.status, a.events]).toEqual([p.name, p.kind, p.status, p.events]);
    }
    expect(spans[0].attributes).toMatchObject({ 'url.full': 'http://127.0.0.1:8080/index.html?a=1&token=REDACTED', 'http.request.header.cookie': ['REDACTED'], 'http.response.body.size': 1024 });
    expect(Buffer.from(spans[3].attributes['http.response.body.content'] as Uint8Array).equals(body)).toBe(true);
    // The agent's identity comes last, after everything the exchange records.
    expect(Object.keys(spans[1].attributes).slice(-agentOnly.length)).toEqual(agentOnly);
  });

  test('unanswered request at close: error span', () => {
    const { spans, run } = agentSpans();
    run.table.handle(connEvents({ connId: 2, role: 'client' }, [{ direction: 'egress', data: 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n' }]));
    expect(spans).toHaveLength(1);
    expect(spans[0].attributes['error.type']).toBe('connection_closed');
  });

  test('an upgrade ends the span at the 101 handshake; the bytes after it are opaque', () => {
    const { spans, run } = agentSpans();
    run.table.handle(connEvents({ connId: 6, role: 'client' }, [
      { direction: 'egress', data: 'GET /ws HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' },
      { direction: 'ingress', data: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello' },
      { direction: 'egress', data: '\x81\x85abcdGET / HTTP/1.1\r\n\r\n' },
    ]));
    expect(spans).toHaveLength(1);
    expect(spans[0].attributes).toMatchObject({ 'http.response.status_code': 101, 'url.path': '/ws' });
    expect(spans[0].status.code).toBe(StatusCode.UNSET);
  });

  test('a body larger than the capture keeps its full size and says it was truncated', () => {
    const { spans, run } = agentSpans();
    const body = 'z'.repeat(200_000);
    // The kernel copies 64 KiB per call: the rest of each write is lost (size > data).
    run.table.handle(connEvents({ connId: 8, role: 'client', capBytes: 65536 }, [
      { direction: 'egress', data: 'GET /big HTTP/1.1\r\n\r\n' },
      { direction: 'ingress', data: `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n` },
      { direction: 'ingress', data: body },
    ]));
    expect(spans).toHaveLength(1);
    expect(spans[0].attributes).toMatchObject({ 'http.response.body.size': 200_000, 'http.response.body.truncated': true, 'sidetrace.capture.partial': true });
    expect((spans[0].attributes['http.response.body.content'] as string).length).toBe(65536);
  });

  test('sampling sees the kernel latency: slow requests are kept at sample 0, fast ones are not (contract: startMs/atMs)', () => {
    const { spans, tapped, run } = agentSpans({ default: { sample: 0, keepSlowerThanMs: 100 } });
    run.table.handle(connEvents({ connId: 10, role: 'client', stepNs: 150e6 }, [
      { direction: 'egress', data: 'GET /slow HTTP/1.1\r\n\r\n' },
      { direction: 'ingress', data: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' },
    ]));
    run.table.handle(connEvents({ connId: 11, role: 'client', stepNs: 1e6 }, [
      { direction: 'egress', data: 'GET /fast HTTP/1.1\r\n\r\n' },
      { direction: 'ingress', data: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' },
    ]));
    expect(spans.map((s) => s.attributes['url.path'])).toEqual(['/slow']);
    expect(spans[0].endMs - spans[0].startMs).toBeCloseTo(150, 6);
    expect(tapped.map((s) => s.attributes['url.path'])).toEqual(['/slow', '/fast']);
  });

  test('the tap sees the same stamped span as the sink', () => {
    const { spans, tapped, run } = agentSpans();
    run.table.handle(connEvents({ connId: 4, role: 'client' }, [
      { direction: 'egress', data: 'GET /t HTTP/1.1\r\n\r\n' },
      { direction: 'ingress', data: 'HTTP/1.1 204 No Content\r\n\r\n' },
    ]));
    expect(tapped).toEqual(spans);
    expect(tapped[0].resource?.attributes['process.pid']).toBe(4242);
    expect(tapped[0].endMs - tapped[0].startMs).toBe(1);
  });

  test('gRPC over HTTP/2 from real grpc-js peers: rpc attributes and decoded message events', async () => {
    const def = { say: rawUnaryMethod('/shop.Cart/AddItem') };
    const server = new grpc.Server();
    server.addService(def, {
      say: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.NOT_FOUND, details: 'no such item' }),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const rec = await recordTraffic(port);
    const Client = grpc.makeGenericClientConstructor(def, 'Cart');
    const client = new Client(`127.0.0.1:${rec.port}`, grpc.credentials.createInsecure()) as unknown as { say(b: Buffer, cb: (e: Error | null) => void): void; close(): void };
    await new Promise<void>((resolve) => client.say(Buffer.from([0x08, 0x2a, 0x12, 0x04, 0x62, 0x6f, 0x6f, 0x6b]), () => resolve()));
    client.close();
    await rec.settled();
    await rec.close();
    server.forceShutdown();

    const { spans, run } = agentSpans();
    run.table.handle(connEvents({ connId: 5, role: 'client', remote: { address: '127.0.0.1', port } }, rec.connections[0]));
    expect(spans).toHaveLength(1);
    const s = spans[0];
    expect(s.name).toBe('shop.Cart/AddItem');
    expect(s.kind).toBe(SpanKind.CLIENT);
    expect(s.status).toEqual({ code: StatusCode.ERROR, message: 'no such item' });
    expect(s.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'shop.Cart', 'rpc.method': 'AddItem', 'rpc.grpc.status_code': 5, 'network.protocol.version': '2' });
    // A client's first stream is 1 (RFC 9113 §5.1.1); the record's stream id rides on the span.
    expect(s.attributes['sidetrace.http2.stream_id']).toBe(1);
    expect(s.events.map((e) => [e.attributes['message.type'], e.attributes['message.body']])).toEqual([['SENT', '{"1":42,"2":"book"}']]);
    expect(s.events.every((e) => e.timeMs >= s.startMs && e.timeMs <= s.endMs)).toBe(true);
  });

  test('open connections do not keep their large heads alive after their spans (HeadMemo)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { spans, run } = agentSpans({}, { tap: false });
    const cookie = 'c'.repeat(32 * 1024);
    gc();
    const before = process.memoryUsage().heapUsed;
    // 200 keep-alive connections, still open, each with one exchange whose request head is 32 KiB:
    // its header strings are slices of that head's text.
    for (let c = 1; c <= 200; c++) {
      run.table.handle(
        connEvents({ connId: c, role: 'server', close: false }, [
          { direction: 'ingress', data: `GET /a HTTP/1.1\r\nHost: shop-service.internal:8080\r\nUser-Agent: client/1.2.3 (${c})\r\nCookie: ${cookie}${c}\r\n\r\n` },
          { direction: 'egress', data: 'HTTP/1.1 204 No Content\r\nServer: nginx\r\n\r\n' },
        ]),
      );
    }
    spans.length = 0;
    gc();
    const retained = process.memoryUsage().heapUsed - before;
    expect(run.table.size).toBe(200);
    // 6.4 MiB of head text if each connection kept its head's.
    expect(retained).toBeLessThan(2 * 1024 * 1024);
  });
});
