// Export cost per span, all-in: the node agent's spans (built by its own replay pipeline from
// nginx-like traffic: GET → 200 with a 1 KiB body, both sides) serialized alone, and sent through
// createSpanExporter with the revision's OTLP/gRPC transport (node:http2 since ed30b48, the official
// grpc-js one before) to bench/otlp-receiver.js (a grpc-js server in a separate
// process that counts spans on the wire) at a steady rate. The figure is the CPU time (user +
// system, all threads: process.cpuUsage) of the exporting process divided by the spans received.
//   node bench/export.js [--text] [--fresh] [--rate N] [--seconds S] [REV ...]
// REV: git revisions whose src/telemetry is measured (default: the working tree); the spans are
// always built by the working tree, so revisions differ only in export. --text gives the body a
// text/plain type (a string attribute instead of bytes). --fresh submits a new copy of a span each
// time (record, attributes, body), as the agent does, so what the queue keeps alive shows in GC;
// the copying alone is measured too (into a sink that keeps nothing) and subtracted (net figure).
// Each revision runs in its own child
// process, alternating over 3 rounds; the receiver is pinned to core 1, the exporter to core 0.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentPipeline, keepAliveTraffic, nginxResponse } from './agent-pipeline.js';
import { prepareRevision } from './build-src.js';
import { startReceiver } from './receiver.js';

const HERE = fileURLToPath(import.meta.url);
const ROUNDS = 3;
const DISTINCT_SPANS = 4096;
const SERIALIZE_BATCH = 512;
const CLOCK_TICKS = 100; // USER_HZ, the unit of /proc/<pid>/task/<tid>/stat times

if (process.argv[2] === '--child') await child(JSON.parse(process.argv[3]));
else await parent(process.argv.slice(2));

async function parent(argv) {
  const opts = { text: false, fresh: false, rate: 20_000, seconds: 10 };
  const revs = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--text') opts.text = true;
    else if (argv[i] === '--fresh') opts.fresh = true;
    else if (argv[i] === '--rate') opts.rate = Number(argv[++i]);
    else if (argv[i] === '--seconds') opts.seconds = Number(argv[++i]);
    else revs.push(argv[i]);
  }
  if (revs.length === 0) revs.push('WORKTREE');
  const worktree = await prepareRevision('WORKTREE', 'export');
  const dirs = {};
  for (const rev of revs) dirs[rev] = rev === 'WORKTREE' ? worktree : await prepareRevision(rev, 'export');
  const results = {};
  console.log(`node ${process.version}, ${opts.text ? 'text' : 'octet-stream'} bodies, ${opts.fresh ? 'fresh' : 'the same'} span objects, ${opts.rate} spans/s for ${opts.seconds} s, ${ROUNDS} rounds`);
  for (let round = 0; round < ROUNDS; round++) {
    for (const rev of revs) {
      const args = JSON.stringify({ ...opts, spansDir: worktree, exportDir: dirs[rev] });
      const r = spawnSync('taskset', ['-c', '0', process.execPath, HERE, '--child', args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${rev}: ${r.stderr}`);
      const m = JSON.parse(r.stdout.trim().split('\n').pop());
      console.log(`  round ${round + 1} ${rev}: ${JSON.stringify(m)}`);
      for (const [k, v] of Object.entries(m)) if (typeof v === 'number') (results[`${rev} ${k}`] ??= []).push(v);
    }
  }
  for (const rev of revs) {
    const med = (k) => {
      const xs = [...results[`${rev} ${k}`]].sort((a, b) => a - b);
      return xs[(xs.length - 1) >> 1];
    };
    console.log(
      `${rev.padEnd(10)} serialize ${med('serializeUs').toFixed(2)} µs/span (${med('bytesPerSpan').toFixed(0)} B/span); ` +
        `export all-in ${med('exportCpuUs').toFixed(2)} µs CPU/span (user ${med('exportUserUs').toFixed(2)}, system ${med('exportSystemUs').toFixed(2)}, main thread ${med('mainThreadUs').toFixed(2)}); ` +
        (opts.fresh ? `net of copying ${med('netCpuUs').toFixed(2)} µs/span offered; ` : '') +
        `received ${med('receivedRatio').toFixed(4)} of submitted, ${med('requests')} requests`,
    );
  }
}

/** DISTINCT_SPANS spans (both sides of DISTINCT_SPANS / 2 requests) from the agent's replay pipeline. */
async function agentSpans(dir, text) {
  const spans = [];
  const { newTable } = await agentPipeline(dir, { sink: { submit: (s) => spans.push(s) } });
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n', 'latin1');
  const response = nginxResponse(text ? 'text/plain' : 'application/octet-stream');
  const conns = 16;
  newTable().handle(keepAliveTraffic({ conns, requestsPerConn: DISTINCT_SPANS / 2 / conns, request, response, address: '10.0.0.7', startNs: Number(process.hrtime.bigint()) }));
  if (spans.length !== DISTINCT_SPANS) throw new Error(`expected ${DISTINCT_SPANS} spans, got ${spans.length}`);
  return spans;
}

async function child({ text, fresh, rate, seconds, spansDir, exportDir }) {
  const spans = await agentSpans(spansDir, text);
  const imp = (p) => import(path.join(exportDir, 'src', p));
  const { OtlpTraceSerializer } = await imp('telemetry/otlp-serializer.js');
  const { createSpanExporter } = await imp('telemetry/export.js');
  const { exportConfigFromEnv } = await imp('telemetry/otel-env.js');
  const { Counter } = await imp('telemetry/metrics.js');
  const resource = {
    'service.name': 'sidetrace-agent',
    'telemetry.sdk.name': 'sidetrace',
    'telemetry.sdk.language': 'nodejs',
    'telemetry.sdk.version': '0.1.0',
    'host.name': 'node-a',
    'k8s.node.name': 'node-a',
    'process.pid': String(process.pid),
  };

  // Serializer alone: CPU per span over 512-span batches, after a warm-up, the way the revision's
  // exporter uses it: spans encoded one by one and joined per batch (buffers released as the
  // transport releases them) where the serializer has encodeSpan, whole batches otherwise.
  const ser = new OtlpTraceSerializer(resource, { name: 'sidetrace', version: '0.1.0' });
  const batches = [];
  for (let i = 0; i < spans.length; i += SERIALIZE_BATCH) batches.push(spans.slice(i, i + SERIALIZE_BATCH));
  const serialize = ser.encodeSpan
    ? (batch) => {
        const encoded = batch.map((s) => ser.encodeSpan(s));
        const request = ser.encodedSpans.serializeRequest(encoded);
        const buffer = ser.takeLastRequest();
        ser.releaseEncoded(encoded);
        ser.releaseRequest(buffer);
        return request.length;
      }
    : (batch) => ser.serializeRequest(batch).length;
  let bytes = 0;
  for (let r = 0; r < 20; r++) for (const b of batches) serialize(b);
  const c0 = process.cpuUsage();
  const reps = 40;
  for (let r = 0; r < reps; r++) for (const b of batches) bytes += serialize(b);
  const c1 = process.cpuUsage(c0);
  const serializeUs = (c1.user + c1.system) / (reps * spans.length);
  const bytesPerSpan = bytes / (reps * spans.length);

  // The full exporter at a steady rate, to a receiver in its own process on the other core.
  const { child: receiver, port, count } = await startReceiver(1, path.join(exportDir, 'receiver.log'), []);
  const counters = { submitted: new Counter('s', ''), exported: new Counter('e', ''), dropped: new Counter('d', '') };
  const exporter = createSpanExporter({
    config: exportConfigFromEnv({ ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }),
    resource,
    counters,
  });
  const copy = fresh ? copySpan : (s) => s;
  // The copying alone, into a sink that keeps nothing (and a warm-up of it).
  let copyUs = 0;
  if (fresh) {
    await pace({ submit() {} }, spans, copy, rate, 1);
    const c = process.cpuUsage();
    await pace({ submit() {} }, spans, copy, rate, Math.min(seconds, 4));
    const cu = process.cpuUsage(c);
    copyUs = (cu.user + cu.system) / (rate * Math.min(seconds, 4));
  }
  // Warm-up second: JIT, the channel's connection.
  await pace(exporter, spans, copy, rate, 1);
  await exporter.flush();
  const before = await count();
  const s0 = counters.submitted.value;
  const d0 = counters.dropped.value;
  const r0 = processTicks(receiver.pid);
  const t0 = threadTimes();
  const u0 = process.cpuUsage();
  await pace(exporter, spans, copy, rate, seconds);
  await exporter.flush();
  const u = process.cpuUsage(u0);
  const t1 = threadTimes();
  const r1 = processTicks(receiver.pid);
  const after = await count();
  const submitted = counters.submitted.value - s0;
  const received = after.spans - before.spans;
  await exporter.shutdown();
  receiver.disconnect();
  process.stdout.write(
    JSON.stringify({
      serializeUs,
      bytesPerSpan,
      exportCpuUs: (u.user + u.system) / received,
      // Per span offered to submit(), dropped ones included: the floor when the exporter keeps up.
      offeredCpuUs: (u.user + u.system) / (rate * seconds),
      netCpuUs: (u.user + u.system) / (rate * seconds) - copyUs,
      exportUserUs: u.user / received,
      exportSystemUs: u.system / received,
      // The main thread's share; the rest is V8's GC helpers and libuv's threads.
      mainThreadUs: ((t1.get(process.pid) - t0.get(process.pid)) * 1e6) / CLOCK_TICKS / received,
      receiverUs: ((r1 - r0) * 1e6) / CLOCK_TICKS / received,
      receivedRatio: received / submitted,
      dropped: counters.dropped.value - d0,
      requests: after.requests - before.requests,
      decodeErrors: after.decodeErrors,
    }) + '\n',
  );
}

/** utime + stime in clock ticks per thread id, from /proc. */
function threadTimes() {
  const out = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(fields[11]) + Number(fields[12]));
  }
  return out;
}

function processTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** A new span like `s`, built as the agent builds one: attributes by keyed stores, a body of its own. */
function copySpan(s) {
  const attributes = {};
  for (const k in s.attributes) {
    const v = s.attributes[k];
    attributes[k] = Array.isArray(v) ? v.slice() : v instanceof Uint8Array ? Buffer.from(v) : v;
  }
  return { ...s, attributes, events: [], status: { ...s.status } };
}

/** Submits `rate` spans a second for `seconds`, in 5 ms steps, cycling through `spans` (each through `copy`). */
function pace(exporter, spans, copy, rate, seconds) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let sent = 0;
    let next = 0;
    const total = rate * seconds;
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
      for (; sent < due; sent++) {
        exporter.submit(copy(spans[next]));
        if (++next === spans.length) next = 0;
      }
      if (sent === total) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
}
