// encodeSpan alone on the node agent's span shape: the spans (both sides of GET → 200 with a
// 1 KiB octet-stream body over 16 keep-alive connections, ~23 attributes each) are built once by
// the working tree's replay pipeline, then each revision's OtlpTraceSerializer encodes them over
// and over, releasing its slabs as the exporter does. Deterministic and CPU-only:
//   node bench/encode.js [--time-order] [--fresh-ids] [REV ...]   default: the working tree; REV: a git revision or WORKTREE
//   node --cpu-prof bench/encode.js --child bench/out/encode-<rev> [false|true] [spans dir] [false|true]   one measured run, to profile
// Traffic as fortio -c 16 -qps 10000 makes it: each connection sends a request every 1.6 ms, at a
// random point of that period (seeded, so every run has the same spans), nginx answers 100 µs
// later and its Date header changes once per second. The spans come as the replay gives them
// (grouped by connection); --time-order sorts them by end time instead, as a busy agent gets
// them: consecutive spans from different connections, client and server sides interleaved.
// --fresh-ids gives each span new ids from the revision's id pool right before it is encoded, as
// the agent issues a span's ids and encodes it in one go (the serializer copies the bytes of ids
// just issued since s5); the figure then includes issuing them.
// Each revision runs in its own child process, alternating over 7 rounds; the figure is the
// process's CPU time (user + system, GC included) per span, median over rounds.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentPipeline, nginxResponse } from './agent-pipeline.js';
import { prepareRevision } from './build-src.js';

const ROUNDS = 7;
const CONNS = 16;
const REQUESTS = 4096;
const RATE = 10_000; // requests per second
// Kernel time 0 on the epoch clock: 200 ms before a second boundary, so the Date changes once in the run.
const T0_MS = 1_763_744_399_800;
const WARMUP = 10;
const MEASURED = 60;

if (process.argv[2] === '--child') await child(path.resolve(process.argv[3]), process.argv[4] === 'true', process.argv[5] && path.resolve(process.argv[5]), process.argv[6] === 'true');
else await parent(process.argv.slice(2));

async function parent(argv) {
  const timeOrder = argv.includes('--time-order');
  const freshIds = argv.includes('--fresh-ids');
  const revs = argv.filter((a) => a !== '--time-order' && a !== '--fresh-ids');
  if (revs.length === 0) revs.push('WORKTREE');
  const worktree = await prepareRevision('WORKTREE', 'encode');
  const dirs = {};
  for (const rev of revs) dirs[rev] = rev === 'WORKTREE' ? worktree : await prepareRevision(rev, 'encode');
  const results = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const rev of revs) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dirs[rev], String(timeOrder), worktree, String(freshIds)], { encoding: 'utf8' });
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
  const spans = [];
  const { newTable } = await agentPipeline(dir, { sink: { submit: (s) => spans.push(s) }, clockMs: T0_MS });
  const table = newTable();
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: fortio.org/fortio-1.68.2\r\n\r\n', 'latin1');
  const events = [];
  let ts = 1;
  for (let c = 0; c < CONNS; c++) {
    for (const role of ['client', 'server']) {
      const local = { address: '127.0.0.1', port: role === 'server' ? 8080 : 40000 + c };
      const remote = { address: '127.0.0.1', port: role === 'server' ? 40000 + c : 8080 };
      events.push({ kind: 'open', connId: 2 * c + (role === 'server' ? 2 : 1), pid: role === 'server' ? 200 : 100, tid: 1, fd: 5, tsNs: ts++, role, local, remote, comm: role === 'server' ? 'nginx' : 'fortio' });
    }
  }
  const pos = new Map();
  // Request i is connection c's (i % CONNS) in period k (i / CONNS): it starts at a random point of
  // the period, its server side sees it 20 µs later and answers at 100 µs, the client reads that at 120 µs.
  const PERIOD_US = (CONNS * 1e6) / RATE;
  let seed = 1;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < REQUESTS; i++) {
    const c = i % CONNS;
    const startUs = 1000 + Math.floor(i / CONNS) * PERIOD_US + Math.floor(random() * (PERIOD_US - 200));
    const date = new Date(T0_MS + Math.floor((startUs + 100) / 1000)).toUTCString();
    const response = nginxResponse('application/octet-stream', date);
    const steps = [[2 * c + 1, 'egress', request, 0], [2 * c + 2, 'ingress', request, 20], [2 * c + 2, 'egress', response, 100], [2 * c + 1, 'ingress', response, 120]];
    for (const [connId, direction, bytes, atUs] of steps) {
      const k = connId + direction;
      const p = pos.get(k) ?? 0;
      pos.set(k, p + bytes.length);
      events.push({ kind: 'data', connId, pid: 1, tid: 1, fd: 5, tsNs: (startUs + atUs) * 1000, direction, source: 'syscall', pos: p, size: bytes.length, data: bytes });
    }
  }
  table.handle(events);
  return spans;
}

async function child(dir, timeOrder, spansDir, freshIds) {
  const spans = await agentSpans(spansDir ?? dir);
  if (timeOrder) spans.sort((a, b) => a.endMs - b.endMs);
  const { OtlpTraceSerializer } = await import(path.join(dir, 'src', 'telemetry/otlp-serializer.js'));
  const { newTraceId, newSpanId } = await import(path.join(dir, 'src', 'proxy/propagation/ids.js'));
  const ser = new OtlpTraceSerializer({ 'service.name': 'agent' }, { name: 'sidetrace' });
  const encoded = [];
  const run = (rounds) => {
    for (let r = 0; r < rounds; r++) {
      for (const s of spans) {
        if (freshIds) {
          s.traceId = newTraceId();
          s.spanId = newSpanId();
        }
        encoded.push(ser.encodeSpan(s));
      }
      ser.releaseEncoded(encoded);
      encoded.length = 0;
    }
  };
  run(WARMUP);
  const t0 = process.cpuUsage();
  run(MEASURED);
  const t = process.cpuUsage(t0);
  const one = ser.encodeSpan(spans[5]);
  // An encoded span is a handle since 2026-11 (s4), its bytes (or their pieces) before.
  const bytes = typeof one === 'number' ? undefined : one instanceof Uint8Array || Array.isArray(one) ? one : one.bytes;
  const bytesPerSpan = bytes === undefined ? ser.encodedLength(one) : Array.isArray(bytes) ? bytes.reduce((n, b) => n + b.length, 0) : bytes.length;
  process.stdout.write(JSON.stringify({ nsPerSpan: ((t.user + t.system) * 1000) / (MEASURED * spans.length), bytesPerSpan }) + '\n');
}
