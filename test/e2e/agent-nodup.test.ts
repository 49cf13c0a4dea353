// No double tracing, on the real kernel: a pod-like network namespace runs an app and a real
// `sidetrace proxy` sidecar (as its own uid, 2102, as the chart's agent.skipUid says), and node
// agents on the host trace everything. The promise made precise: every end of every connection
// (trace, span kind, endpoint) is traced exactly once. The sidecar's own sockets (its listener's
// accepted connection, its upstream connection to the app, its span export) produce no agent
// spans, so its SERVER span is the only one for the inbound hop; the ends it cannot see (the
// caller's client socket, the app's accepted socket, the app's own outgoing calls and their
// server) are traced by the agent. A control agent without --skip-uid, on the same traffic,
// shows the duplicate the flag prevents; one with --skip-port instead shows why the chart keys on
// the uid. Needs root, the addon and dist/ (scripts/setup.sh).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPodNetns, type PodNetns } from '../support/kube.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { CLI } from '../support/proxy-process.js';

const run = promisify(execFile);
const PROXY_UID = 2102;
const PROXY_PORT = 8080;
const N = 8;
const RUN = randomBytes(4).toString('hex');
const PREFIX = `/nodup-${RUN}/`;

// The app: answers after calling a backend itself (an outgoing call no sidecar listener sees),
// propagating the trace context it was given, as an instrumented app would.
const APP = `
const http = require('node:http');
const [backendHost, backendPort] = process.argv.slice(1);
const s = http.createServer((req, res) => {
  const out = http.request({ host: backendHost, port: Number(backendPort), path: req.url + '/backend', agent: false,
    headers: { traceparent: req.headers.traceparent || '' } }, (r) => {
    r.resume();
    r.on('end', () => res.end('app ' + req.url + ' backend ' + r.statusCode));
  });
  out.on('error', (e) => { res.statusCode = 502; res.end(e.message); });
  out.end();
});
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

interface Span {
  traceId: string;
  kind: number;
  attributes: Record<string, unknown>;
  /** The agent's spans: the traced process (the console exporter's JSON lines carry it). */
  resource?: { attributes: Record<string, unknown> };
  source: 'proxy' | 'agent';
}

interface Agent {
  child: ChildProcess;
  spans: Span[];
  stderr: () => string;
}

let netns: PodNetns;
let receiver: OtlpReceiver;
let forwarder: net.Server;
let backend: http.Server;
let backendPort: number;
let app: ChildProcess;
let appPort: number;
let proxy: ChildProcess;
let proxyErr = '';
let chart: Agent;
let control: Agent;
let byPort: Agent;
const traces: string[] = [];
const children: ChildProcess[] = [];

function startAgent(flags: string[]): Agent {
  const child = spawn(process.execPath, [CLI, 'agent', '--console', ...flags], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', OTEL_BSP_SCHEDULE_DELAY: '100' } });
  children.push(child);
  const spans: Span[] = [];
  let pending = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const s = JSON.parse(line) as Omit<Span, 'source'>;
      // Only this run's requests: the agent sees every process on the machine.
      if (String(s.attributes['url.path']).startsWith(PREFIX)) spans.push({ ...s, source: 'agent' });
    }
  });
  child.stderr!.on('data', (d) => (err += d));
  return { child, spans, stderr: () => err };
}

async function agentReady(a: Agent): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!/tracing; spans to console/.test(a.stderr())) {
    if (a.child.exitCode !== null) throw new Error(`sidetrace agent exited ${a.child.exitCode}: ${a.stderr()}`);
    if (Date.now() > deadline) throw new Error(`sidetrace agent did not start: ${a.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One end of one hop: the side that traced it and the socket end it names. */
function hop(s: Span): string {
  const a = s.attributes;
  if (s.source === 'proxy') return `server ${netns.podIP}:${PROXY_PORT}`; // the sidecar's listener
  // SERVER: the listening end (local address); CLIENT: the end it called (peer address).
  return s.kind === 2 ? `server ${a['network.local.address']}:${a['network.local.port']}` : `client->${a['network.peer.address']}:${a['network.peer.port']}`;
}

function countByHop(spans: Span[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of spans) {
    const key = `${s.traceId} ${hop(s)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function proxySpans(): Span[] {
  return receiver
    .spans()
    .filter((s) => String(s.attributes['url.path']).startsWith(PREFIX))
    .map((s) => ({ traceId: s.traceId, kind: s.kind, attributes: s.attributes, source: 'proxy' as const }));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the no-duplicates test needs root (eBPF, network namespaces, setpriv)');
  netns = createPodNetns();
  receiver = await startOtlpReceiver();
  // The receiver listens on the host's loopback; the pod reaches the host at the veth address.
  forwarder = net.createServer((c) => {
    const up = net.connect(receiver.port, '127.0.0.1');
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  forwarder.listen(0, netns.hostIP);
  await once(forwarder, 'listening');
  backend = http.createServer((req, res) => res.end('backend ' + req.url));
  backend.listen(0, netns.hostIP);
  await once(backend, 'listening');
  backendPort = (backend.address() as net.AddressInfo).port;

  chart = startAgent(['--skip-uid', String(PROXY_UID)]);
  await agentReady(chart);
  control = startAgent([]);
  await agentReady(control);
  byPort = startAgent(['--skip-port', String(PROXY_PORT)]);
  await agentReady(byPort);

  app = netns.spawn(process.execPath, ['-e', APP, netns.hostIP, String(backendPort)]);
  children.push(app);
  const [line] = (await once(app.stdout!, 'data')) as [Buffer];
  appPort = Number(line.toString().trim());

  // The sidecar as its own uid, like the injected container: what --skip-uid keys on.
  proxy = netns.spawn('setpriv', [`--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', '--', process.execPath, CLI, 'proxy', '--inbound', `${netns.podIP}:${PROXY_PORT}=127.0.0.1:${appPort}`, '--otlp-endpoint', `http://${netns.hostIP}:${(forwarder.address() as net.AddressInfo).port}`], {
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_SERVICE_NAME: 'nodup-sidecar',
  });
  children.push(proxy);
  proxy.stderr!.on('data', (d) => (proxyErr += d));
  await waitFor('the sidecar proxy to listen', () => {
    if (proxy.exitCode !== null) throw new Error(`sidetrace proxy exited ${proxy.exitCode}: ${proxyErr}`);
    return /^ {2}inbound /m.test(proxyErr);
  }, 15_000);

  // N requests from outside the pod, each its own trace and connection.
  for (let i = 0; i < N; i++) {
    const traceId = randomBytes(16).toString('hex');
    traces.push(traceId);
    const { stdout } = await run('curl', ['-sS', '--noproxy', '*', '-m', '5', '-H', `traceparent: 00-${traceId}-${randomBytes(8).toString('hex')}-01`, `http://${netns.podIP}:${PROXY_PORT}${PREFIX}${i}`]);
    expect(stdout).toBe(`app ${PREFIX}${i} backend 200`);
  }
}, 90_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  backend?.close();
  forwarder?.close();
  await receiver?.close();
  netns?.remove();
});

describe('a pod with the sidecar, traced by the node agent', () => {
  // Per request: the sidecar's SERVER span (inbound hop, server end), and from the agent the
  // caller's CLIENT end of that hop, the app's SERVER end of the sidecar→app hop, and both ends of
  // the app's own call to the backend.
  const expectedHops = () => [`server ${netns.podIP}:${PROXY_PORT}`, `client->${netns.podIP}:${PROXY_PORT}`, `server 127.0.0.1:${appPort}`, `client->${netns.hostIP}:${backendPort}`, `server ${netns.hostIP}:${backendPort}`].sort();

  test('with --skip-uid (the chart): every hop end of every request is traced exactly once', async () => {
    await waitFor('the sidecar spans', () => proxySpans().length >= N);
    await waitFor('the agent spans', () => chart.spans.length >= 4 * N);
    // Late duplicates would arrive within the agents' batching delay.
    await new Promise((r) => setTimeout(r, 1500));
    const proxy = proxySpans();
    expect(proxy.map((s) => s.kind)).toEqual(Array(N).fill(2));
    expect(chart.spans.filter((s) => s.resource?.attributes['process.pid'] === undefined)).toEqual([]);
    // Nothing from the sidecar's process: its sockets are its own to trace.
    expect(chart.spans.filter((s) => s.resource?.attributes['process.executable.name'] === 'node' && s.kind === 3 && s.attributes['network.peer.port'] === appPort)).toEqual([]);

    const counts = countByHop([...proxy, ...chart.spans]);
    expect([...counts].filter(([, n]) => n !== 1)).toEqual([]);
    for (const traceId of traces) {
      const hops = [...counts.keys()].filter((k) => k.startsWith(traceId + ' ')).map((k) => k.slice(traceId.length + 1)).sort();
      expect(hops, `trace ${traceId}`).toEqual(expectedHops());
    }
    expect(counts.size).toBe(5 * N);
    // The sidecar traced the inbound hop; the agent traced who called it.
    for (const s of chart.spans.filter((x) => hop(x) === `client->${netns.podIP}:${PROXY_PORT}`)) expect(s.resource?.attributes['process.executable.name']).toBe('curl');
  });

  test('without --skip-uid (control, same traffic): the inbound hop is traced twice, and the sidecar\'s own sockets are traced', async () => {
    await waitFor('the control agent spans', () => control.spans.length >= 6 * N);
    const counts = countByHop([...proxySpans(), ...control.spans]);
    for (const traceId of traces) expect(counts.get(`${traceId} server ${netns.podIP}:${PROXY_PORT}`), `trace ${traceId}`).toBe(2);
    // The sidecar's upstream connection to the app, seen from the sidecar's process.
    const fromSidecar = control.spans.filter((s) => s.kind === 3 && s.attributes['network.peer.port'] === appPort);
    expect(fromSidecar).toHaveLength(N);
    expect(new Set(fromSidecar.map((s) => s.resource?.attributes['process.pid'])).size).toBe(1);
  });

  test('--skip-port of the sidecar listener (not what the chart uses): no duplicate, but it also hides the caller\'s end and still traces the sidecar\'s upstream', async () => {
    await waitFor('the --skip-port agent spans', () => byPort.spans.length >= 4 * N);
    await new Promise((r) => setTimeout(r, 500));
    const counts = countByHop([...proxySpans(), ...byPort.spans]);
    expect([...counts].filter(([, n]) => n !== 1)).toEqual([]);
    // Both ends of any socket on the port are skipped: the caller's client end is traced by nobody.
    expect(byPort.spans.filter((s) => hop(s).endsWith(`${netns.podIP}:${PROXY_PORT}`))).toEqual([]);
    // The sidecar's connection to the app has no port in the list, so it is traced from the sidecar.
    expect(byPort.spans.filter((s) => s.kind === 3 && s.attributes['network.peer.port'] === appPort)).toHaveLength(N);
  });
});
