import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { Counter } from '../telemetry/metrics.js';
import { SpanKind, StatusCode, type SpanRecord } from '../telemetry/span.js';
import { AgentConfigError, parseAgentArgs, parseBytes, parseDuration } from './agent-config.js';
import { createOutputTap, formatLatency, passesFilters, requestRow, tableHeader } from './output.js';

function span(over: Partial<SpanRecord> & { attributes?: SpanRecord['attributes'] } = {}): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    sampled: true,
    name: 'GET',
    kind: SpanKind.SERVER,
    startMs: Date.UTC(2026, 10, 21, 16, 20, 1, 250),
    endMs: Date.UTC(2026, 10, 21, 16, 20, 1, 250) + 12.5,
    events: [],
    status: { code: StatusCode.UNSET },
    resource: { attributes: { 'service.name': 'nginx', 'process.executable.name': 'nginx', 'process.pid': 812 } },
    ...over,
    attributes: {
      'network.peer.address': '10.0.0.9',
      'network.peer.port': 51000,
      'network.local.address': '10.0.0.5',
      'network.local.port': 8443,
      'network.protocol.version': '1.1',
      'sidetrace.capture.source': 'ebpf-tls',
      'http.request.method': 'GET',
      'server.address': 'shop.local',
      'url.path': '/books/7',
      'url.query': 'q=1',
      'http.response.status_code': 200,
      'http.response.body.size': 100,
      ...over.attributes,
    },
  };
}

describe('--tail / --json rows', () => {
  test('a SERVER span: peer is the source, local the destination', () => {
    expect(requestRow(span())).toEqual({
      timestamp: '16:20:01.250',
      comm: 'nginx',
      pid: 812,
      src: '10.0.0.9:51000',
      dst: '10.0.0.5:8443',
      proto: 'HTTP/1.1+TLS',
      method: 'GET',
      host: 'shop.local',
      path: '/books/7?q=1',
      status: '200',
      latencyMs: 12.5,
    });
  });

  test('a CLIENT gRPC span: local is the source, host from url.full, grpc status', () => {
    const row = requestRow(
      span({ kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'grpc', 'rpc.grpc.status_code': 5, 'url.full': 'http://cart:50051/shop.Cart/Add', 'network.peer.address': '::1', 'sidetrace.capture.source': 'ebpf' } }),
    );
    expect(row).toMatchObject({ src: '10.0.0.5:8443', dst: '[::1]:51000', proto: 'gRPC', host: 'cart:50051', status: 'grpc 5' });
  });

  test('table header and latency units', () => {
    expect(tableHeader().trim().split(/\s+/)).toEqual(['TIMESTAMP', 'COMM', 'PID', 'SRC', 'DST', 'PROTO', 'METHOD', 'HOST', 'PATH', 'STATUS', 'LATENCY']);
    expect([formatLatency(0.25), formatLatency(3.456), formatLatency(250), formatLatency(1500)]).toEqual(['250µs', '3.46ms', '250.0ms', '1.50s']);
  });

  test('filters: --min-latency and --max-body-size', () => {
    expect(passesFilters(span(), { minLatencyMs: 10, maxBodySize: Infinity })).toBe(true);
    expect(passesFilters(span(), { minLatencyMs: 20, maxBodySize: Infinity })).toBe(false);
    expect(passesFilters(span(), { minLatencyMs: 0, maxBodySize: 100 })).toBe(true);
    expect(passesFilters(span(), { minLatencyMs: 0, maxBodySize: 99 })).toBe(false);
  });

  test('the tap prints a header once, then a row per request; JSON carries bytes as base64', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d));
    const table = createOutputTap({ format: 'table', minLatencyMs: 0, maxBodySize: Infinity, out, dropped: new Counter('d', 'd') });
    table.publish(span());
    table.publish(span());
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^TIMESTAMP/);
    expect(lines[1]).toMatch(/^16:20:01\.250\s+nginx\s+812\s+10\.0\.0\.9:51000\s+10\.0\.0\.5:8443\s+HTTP\/1\.1\+TLS\s+GET\s+shop\.local\s+\/books\/7\?q=1\s+200\s+12\.5ms$/);
    text = '';
    const json = createOutputTap({ format: 'json', minLatencyMs: 0, maxBodySize: Infinity, out, dropped: new Counter('d', 'd') });
    json.publish(span({ attributes: { 'http.response.body.content': new Uint8Array([0, 255]) } }));
    const obj = JSON.parse(text);
    expect(obj).toMatchObject({ kind: 'server', path: '/books/7?q=1', traceId: '0af7651916cd43dd8448eb211c80319c' });
    expect(obj.attributes['http.response.body.content']).toEqual({ base64: 'AP8=' });
    expect(obj.resource).toEqual({ 'service.name': 'nginx', 'process.executable.name': 'nginx', 'process.pid': 812 });
  });

  test('a stalled output drops rows and counts them', () => {
    const out = new PassThrough({ highWaterMark: 1 });
    const dropped = new Counter('d', 'd');
    const tap = createOutputTap({ format: 'json', minLatencyMs: 0, maxBodySize: Infinity, out, dropped });
    for (let i = 0; i < 20_000; i++) tap.publish(span({ attributes: { 'http.request.body.content': 'x'.repeat(400) } }));
    expect(dropped.value).toBeGreaterThan(0);
    expect(out.writableLength).toBeLessThan(5 * 1024 * 1024);
  });
});

describe('agent flags', () => {
  test('defaults and values', () => {
    expect(parseAgentArgs([])).toMatchObject({ console: false, minLatencyMs: 0, maxBodySize: Infinity, skipUids: [], skipPorts: [], captureBytes: 65536 });
    expect(parseAgentArgs(['--tail', '--min-latency', '1.5s', '--max-body-size', '64k', '--skip-uid', '1337', '--skip-port', '15001', '--skip-port', '15006', '--admin', '[::1]:9'])).toMatchObject({
      output: 'table',
      minLatencyMs: 1500,
      maxBodySize: 65536,
      skipUids: [1337],
      skipPorts: [15001, 15006],
      admin: { address: '::1', port: 9 },
    });
    // The same listen-address rules as the proxy's: a bare port binds loopback only.
    expect(parseAgentArgs(['--admin', '15090'])).toMatchObject({ admin: { address: '127.0.0.1', port: 15090 } });
    expect(parseAgentArgs(['--admin', '0.0.0.0:15090'])).toMatchObject({ admin: { address: '0.0.0.0', port: 15090 } });
    expect(parseDuration('x', '800us')).toBe(0.8);
    expect(parseBytes('x', '1m')).toBe(1048576);
  });

  const bad: Array<[string[], RegExp]> = [
    [['--tail', '--json'], /--tail\/--json/],
    [['--console', '--json'], /--console/],
    [['--min-latency', 'soon'], /--min-latency: "soon" is not a duration/],
    [['--max-body-size', 'big'], /--max-body-size: "big" is not a byte size/],
    [['--skip-port', '70000'], /--skip-port: "70000"/],
    [['--admin', 'nohost'], /--admin: "nohost" is not HOST:PORT/],
    [['--admin', 'h:99999'], /--admin: port 99999 is above 65535/],
    [['--capture-bytes', '0'], /--capture-bytes: 0 is outside 1\.\.1m/],
    [['--capture-bytes', '2m'], /--capture-bytes: 2097152 is outside 1\.\.1m/],
    [['--bogus'], /invalid flags/],
  ];
  for (const [args, msg] of bad) {
    test(`refuses ${args.join(' ')}`, () => {
      expect(() => parseAgentArgs(args)).toThrow(AgentConfigError);
      expect(() => parseAgentArgs(args)).toThrow(msg);
    });
  }
});
