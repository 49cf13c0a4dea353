// encodeSpan alone on the node agent's span shape: the spans (both sides of GET → 200 with a
// 1 KiB octet-stream body over 16 keep-alive connections, 27 attributes each) are built once by
// the working tree's replay pipeline, then each revision's OtlpTraceSerializer encodes them over
// and over, releasing its slabs as the exporter does. Deterministic and CPU-only:
//   node bench/encode.js [--time-order] [REV ...]   default: the working tree; REV: a git revision or WORKTREE
//   node --cpu-prof bench/encode.js --child bench/out/encode-<rev> [false|true]   one measured run, to profile
// The spans come as the replay gives them, a connection's in runs of 4; --time-order sorts them
// by start time instead, as a busy agent gets them: each from another connection or side than
// the last.
// Each revision runs in its own child process, alternating over 7 rounds; the figure is the
// process's CPU time (user + system, GC included) per span, median over rounds.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareRevision } from './build-src.js';

const ROUNDS = 7;
const CONNS = 16;
const REQUESTS = 4096;
const WARMUP = 10;
const MEASURED = 60;

if (process.argv[2] === '--child') await child(path.resolve(process.argv[3]), process.argv[4] === 'true', process.argv[5] && path.resolve(process.argv[5]));
else await parent(process.argv.slice(2));

async function parent(argv) {
  const timeOrder = argv.includes('--time-order');
  const revs = argv.filter((a) => a !== '--time-order');
  if (revs.length === 0) revs.push('WORKTREE');
  const worktree = await prepareRevision('WORKTREE', 'encode');
  const dirs = {};
  for (const rev of revs) dirs[rev] = rev === 'WORKTREE' ? worktree : await prepareRevision(rev, 'encode');
  const results = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const rev of revs) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dirs[rev], String(timeOrder), worktree], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${rev}: ${r.stderr}`);
      const m = JSON.parse(r.stdout.trim().split('\n').pop());
      (results[rev] ??= []).push(m);
    }
  }
  for (const rev of revs) {
    const ns = results[rev].map((m) => m.nsPerSpan).sort((a, b) => a - b);
    console.log(`${rev.padEnd(10)} encodeSpan ${ns[(ns.length - 1) >> 1].toFixed(0)} ns/span (median of ${ns.length}: ${ns.map((n) => n.toFixed(0)).join(' ')}), ${results[rev][0].bytesPerSpan} B/span`);
  }
}

/** Both sides of REQUESTS requests from `dir`'s agent replay pipeline. */
async function agentSpans(dir) {
  const imp = (p) => import(path.join(dir, 'src', p));
  const { ConnTable } = await imp('bpf-fallback/conn-table.js');
  const { createAgentMetrics } = await imp('bpf-fallback/agent-metrics.js');
  const { Metrics } = await imp('telemetry/metrics.js');
  const { SpanReplayer } = await imp('bpf-fallback/spans.js');
  const { fixedClock } = await imp('bpf-fallback/clock.js');
  const { compilePolicy } = await imp('policy/parse.js');
  const { createProxyMetrics } = await imp('proxy/proxy-metrics.js');
  const policy = compilePolicy({});
  const spans = [];
  const replayer = new SpanReplayer({
    serviceName: 'agent',
    policy: () => policy,
    sink: { submit: (s) => spans.push(s) },
    metrics: createProxyMetrics(new Metrics()),
    clock: fixedClock(1_700_000_000_000),
    process: () => ({ executableName: 'nginx', cgroup: { path: '/system.slice/nginx.service' } }),
  });
  const table = new ConnTable({ metrics: createAgentMetrics(new Metrics()), onRecord: (c, r) => replayer.replay(c, r) });
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: fortio.org/fortio-1.68.2\r\n\r\n', 'latin1');
  const events = [];
  let ts = 1e12;
  for (let c = 0; c < CONNS; c++) {
    for (const role of ['client', 'server']) {
      const local = { address: '127.0.0.1', port: role === 'server' ? 8080 : 40000 + c };
      const remote = { address: '127.0.0.1', port: role === 'server' ? 40000 + c : 8080 };
      events.push({ kind: 'open', connId: 2 * c + (role === 'server' ? 2 : 1), pid: role === 'server' ? 200 : 100, tid: 1, fd: 5, tsNs: ts++, role, local, remote, comm: role === 'server' ? 'nginx' : 'fortio' });
    }
  }
  const pos = new Map();
  for (let i = 0; i < REQUESTS; i++) {
    const c = i % CONNS;
    // The Date header changes every second, as nginx's does.
    const response = Buffer.from(
      `HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 17:00:${String(i % 60).padStart(2, '0')} GMT\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: 1024\r\nConnection: keep-alive\r\n\r\n${'x'.repeat(1024)}`,
      'latin1',
    );
    for (const [connId, direction, bytes] of [[2 * c + 1, 'egress', request], [2 * c + 2, 'ingress', request], [2 * c + 2, 'egress', response], [2 * c + 1, 'ingress', response]]) {
      const k = connId + direction;
      const p = pos.get(k) ?? 0;
      pos.set(k, p + bytes.length);
      events.push({ kind: 'data', connId, pid: 1, tid: 1, fd: 5, tsNs: (ts += 1000), direction, source: 'syscall', pos: p, size: bytes.length, data: bytes });
    }
  }
  table.handle(events);
  return spans;
}

async function child(dir, timeOrder, spansDir) {
  const spans = await agentSpans(spansDir ?? dir);
  if (timeOrder) spans.sort((a, b) => a.startMs - b.startMs);
  const { OtlpTraceSerializer } = await import(path.join(dir, 'src', 'telemetry/otlp-serializer.js'));
  const ser = new OtlpTraceSerializer({ 'service.name': 'agent' }, { name: 'sidetrace' });
  const encoded = [];
  const run = (rounds) => {
    for (let r = 0; r < rounds; r++) {
      for (const s of spans) encoded.push(ser.encodeSpan(s));
      ser.releaseEncoded(encoded);
      encoded.length = 0;
    }
  };
  run(WARMUP);
  const t0 = process.cpuUsage();
  run(MEASURED);
  const t = process.cpuUsage(t0);
  const one = ser.encodeSpan(spans[5]);
  const bytesPerSpan = Array.isArray(one) ? one.reduce((n, b) => n + b.length, 0) : one.length;
  process.stdout.write(JSON.stringify({ nsPerSpan: ((t.user + t.system) * 1000) / (MEASURED * spans.length), bytesPerSpan }) + '\n');
}
