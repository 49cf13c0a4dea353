import { PassThrough } from 'node:stream';
import { startOtlpReceiver } from '../collector/otlp-server.js';
import type { StoredSpan } from '../collector/model.js';
import { describe, expect, test } from 'vitest';
import { parseAgentArgs, type AgentConfig } from './agent-config.js';
import { startAgent, type CaptureSource } from './agent.js';
import { fixedClock } from './clock.js';
import type { AgentEvent, KernelCounters } from './events.js';
import { encodeBatch } from './test-support/batch.js';
import { connEvents } from './test-support/synthetic.js';

/** A capture source fed by the test, standing where the kernel's would; `raw`: it hands over
 * capture batches (onRawBatch), as native.ts's does, instead of events. */
function source(raw = false) {
  let cb: ((events: AgentEvent[]) => void) | undefined;
  let rawCb: ((batch: Buffer) => void) | undefined;
  const attached: number[] = [];
  /** attachTls and releaseTls calls in the order made. */
  const tlsCalls: [string, number][] = [];
  const counters: KernelCounters = { eventsSent: 10, eventsDropped: 2, bytesCaptured: 300, bytesTruncated: 4 };
  let closed = false;
  const src: CaptureSource = {
    ready: Promise.resolve(),
    onBatch: (f) => (cb = f),
    ...(raw ? { onRawBatch: (f: (batch: Buffer) => void) => (rawCb = f) } : {}),
    counters: () => counters,
    attachTls: (pid) => {
      attached.push(pid);
      tlsCalls.push(['attach', pid]);
    },
    releaseTls: (pid) => void tlsCalls.push(['release', pid]),
    close: () => void (closed = true),
  };
  return { src, push: (events: AgentEvent[]) => (raw ? rawCb!(encodeBatch(events)) : cb!(events)), attached, tlsCalls, closed: () => closed };
}

async function agent(args: string[], ignorePids: number[] = [], raw = false) {
  const s = source(raw);
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d));
  const a = await startAgent(parseAgentArgs(args) as AgentConfig, s.src, { env: { OTEL_TRACES_EXPORTER: 'none' }, out, clock: fixedClock(0), procRoot: '/nonexistent', ignorePids, log: () => {} });
  return { a, s, text: () => text };
}

const EXCHANGE = [
  { direction: 'egress' as const, data: 'GET /from-agent HTTP/1.1\r\nHost: x\r\n\r\n' },
  { direction: 'ingress' as const, data: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' },
];

describe.each([false, true])('agent composition (raw batches: %s)', (raw) => {
  test('batches become printed requests; exec attaches TLS probes; close detaches', async () => {
    const { a, s, text } = await agent(['--json'], [], raw);
    s.push([{ kind: 'exec', pid: 321, tsNs: 1, comm: 'python3' }, ...connEvents({ connId: 1, pid: 321 }, EXCHANGE)]);
    expect(s.attached).toEqual([321]);
    // The old image's libraries are released before the new one is attached; exit only releases.
    expect(s.tlsCalls).toEqual([['release', 321], ['attach', 321]]);
    s.push([{ kind: 'exit', pid: 321, tsNs: 2 }]);
    expect(s.tlsCalls).toEqual([['release', 321], ['attach', 321], ['release', 321]]);
    const row = JSON.parse(text().trim());
    expect(row).toMatchObject({ pid: 321, method: 'GET', path: '/from-agent', status: '200', kind: 'client' });
    expect(a.metrics.spansSubmitted.value).toBe(1);
    await a.close();
    expect(s.closed()).toBe(true);
  });

  test('the agent\'s own process is never traced', async () => {
    const { a, s, text } = await agent(['--json'], [555], raw);
    s.push(connEvents({ connId: 1, pid: 555 }, EXCHANGE));
    s.push(connEvents({ connId: 2, pid: 556 }, EXCHANGE));
    expect(text().trim().split('\n').map((l) => JSON.parse(l).pid)).toEqual([556]);
    await a.close();
  });
});

describe('agent composition', () => {
  test('/metrics carries kernel and user-space counters', async () => {
    const { a, s } = await agent(['--admin', '127.0.0.1:0']);
    s.push(connEvents({ connId: 1 }, EXCHANGE));
    const text = await (await fetch(`http://${a.admin!.address}:${a.admin!.port}/metrics`)).text();
    expect(text).toContain('sidetrace_agent_kernel_events_dropped 2');
    expect(text).toContain('sidetrace_agent_kernel_bytes_truncated 4');
    expect(text).toContain('sidetrace_agent_records_total 1');
    expect(text).toContain('sidetrace_agent_events_total 4');
    await a.close();
  });

  test('--otlp-endpoint: spans reach a real OTLP/gRPC receiver with kernel times and identity', async () => {
    const received: StoredSpan[] = [];
    const receiver = await startOtlpReceiver({ address: '127.0.0.1:0', onSpans: (spans) => received.push(...spans) });
    const s = source();
    const a = await startAgent(parseAgentArgs(['--otlp-endpoint', `http://127.0.0.1:${receiver.port}`]) as AgentConfig, s.src, {
      env: {},
      clock: fixedClock(1_700_000_000_000),
      procRoot: '/nonexistent',
      ignorePids: [],
      log: () => {},
    });
    s.push(connEvents({ connId: 1, pid: 4321, role: 'server', comm: 'nginx' }, [
      { direction: 'ingress', data: 'POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\n{}' },
      { direction: 'egress', data: 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n' },
    ]));
    await a.flush();
    await a.close();
    await receiver.close();
    expect(received).toHaveLength(1);
    const span = received[0];
    // The traced process is the span's service and resource; the agent's own resource is under it.
    expect(span).toMatchObject({ kind: 2, service: 'nginx', name: 'POST' });
    expect(span.resource).toMatchObject({ 'service.name': 'nginx', 'process.pid': 4321, 'process.executable.name': 'nginx', 'telemetry.sdk.language': 'nodejs' });
    expect(span.startMs).toBeCloseTo(1_700_000_000_000 + 1e6 + 1, 3);
    expect(span.durationMs).toBeCloseTo(1, 3);
    expect(span.attributes).toMatchObject({ 'http.response.status_code': 201, 'http.request.body.content': '{}' });
    expect(span.attributes['process.pid']).toBeUndefined();
  });

  test('with the export queue full, records are dropped (counted) before a span is built; live rows still get them', async () => {
    // A backend that never answers keeps the first batch in flight, so the 4-span queue fills.
    const net = await import('node:net');
    const silent = net.createServer((sock) => sock.on('error', () => {}));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const env = { OTEL_BSP_MAX_QUEUE_SIZE: '4', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4', OTEL_BSP_SCHEDULE_DELAY: '60000', OTEL_BSP_EXPORT_TIMEOUT: '300', OTEL_EXPORTER_OTLP_TIMEOUT: '300' };
    const s = source();
    const a = await startAgent(parseAgentArgs(['--otlp-endpoint', `http://127.0.0.1:${port}`]) as AgentConfig, s.src, { env, clock: fixedClock(0), procRoot: '/nonexistent', ignorePids: [], log: () => {} });
    for (let i = 1; i <= 20; i++) s.push(connEvents({ connId: i }, EXCHANGE));
    expect(a.metrics.requests.value).toBe(20);
    // Only what fitted was built and handed over; the other 16 never reached span building.
    expect(a.metrics.spansSubmitted.value).toBe(4);
    expect(a.metrics.spansDropped.value).toBe(16);
    await a.close();

    // With a live tap (--json) every record is still built and printed.
    const t = source();
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d));
    const b = await startAgent(parseAgentArgs(['--json', '--otlp-endpoint', `http://127.0.0.1:${port}`]) as AgentConfig, t.src, { env, out, clock: fixedClock(0), procRoot: '/nonexistent', ignorePids: [], log: () => {} });
    for (let i = 1; i <= 20; i++) t.push(connEvents({ connId: i }, EXCHANGE));
    expect(text.trim().split('\n')).toHaveLength(20);
    expect(b.metrics.spansSubmitted.value).toBe(20);
    await b.close();
    silent.close();
  });

  test('the export queue defaults to a node-sized 8,192 spans; OTEL_BSP_MAX_QUEUE_SIZE still rules', async () => {
    const { a } = await agent([]);
    expect(a.exportConfig.batch.maxQueueSize).toBe(8192);
    await a.close();
    const b = await startAgent(parseAgentArgs([]) as AgentConfig, source().src, { env: { OTEL_TRACES_EXPORTER: 'none', OTEL_BSP_MAX_QUEUE_SIZE: '1000' }, clock: fixedClock(0), procRoot: '/nonexistent', ignorePids: [], log: () => {} });
    expect(b.exportConfig.batch.maxQueueSize).toBe(1000);
    await b.close();
  });
});
