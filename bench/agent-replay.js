// The agent's user-space pipeline without the kernel: synthetic nginx-like keep-alive traffic
// (16 connections, GET → 200 with 1 KiB, both the client's and the server's side) replayed through
// the connection table, the HTTP/1 parser and stitcher, and span building into a counting sink
// (no export). Deterministic and CPU-only, so two revisions can be compared on a noisy machine:
//   node bench/agent-replay.js [REV ...]     default: the working tree; REV: a git revision
//   node --cpu-prof bench/agent-replay.js --child bench/out/replay-<rev> spans|parse|decode
//                                            one measured run of a tree that a run above prepared
// Each revision's src/ is transpiled with esbuild into bench/out/replay-<rev>/ and run in its own
// child process, alternating revisions over 5 rounds. Times are the process's CPU time (user +
// system, all threads: GC included) during the measured run, not wall time, so other load on the
// machine inflates them less. Prints per revision the median µs per request (both sides) for
// parse + stitch, for parse + stitch + span built, and their difference (span building alone);
// and for decode + parse + stitch, where the same traffic is encoded once into the addon's batches
// (native/bpf/abi.h records, [u32 length][record] back to back) and each batch goes through
// native.ts's decodeBatch into the connection table, as in the agent.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentPipeline, keepAliveTraffic, nginxResponse } from './agent-pipeline.js';
import { prepareRevision } from './build-src.js';

const CONNS = 16;
const REQUESTS_PER_CONN = 2000;
const BATCH_EVENTS = 256;
const ROUNDS = 5;

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4]);
} else {
  await parent(process.argv.slice(2));
}

async function parent(revs) {
  if (revs.length === 0) revs = ['WORKTREE'];
  const dirs = {};
  for (const rev of revs) dirs[rev] = await prepareRevision(rev, 'replay');
  const results = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const rev of revs) {
      for (const mode of ['parse', 'spans', 'decode']) {
        const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dirs[rev], mode], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`${rev} ${mode}: ${r.stderr}`);
        (results[`${rev} ${mode}`] ??= []).push(Number(r.stdout.trim()));
      }
    }
  }
  const median = (v) => [...v].sort((a, b) => a - b)[(v.length - 1) >> 1];
  const fmt = (v) => `median ${median(v).toFixed(1).padStart(5)} [${v.map((x) => x.toFixed(1)).join(' ')}]`;
  console.log('CPU µs per request (both sides = 2 records/spans)');
  for (const rev of revs) {
    const parse = results[`${rev} parse`];
    const spans = results[`${rev} spans`];
    console.log(`${rev.padEnd(10)} parse+stitch  ${fmt(parse)}`);
    console.log(`${rev.padEnd(10)} + span built  ${fmt(spans)}`);
    // Rounds pair up (same round, back to back), so the per-round difference is less noisy.
    console.log(`${rev.padEnd(10)} span building ${fmt(spans.map((x, i) => x - parse[i]))}`);
    console.log(`${rev.padEnd(10)} decode+parse+stitch ${fmt(results[`${rev} decode`])}`);
  }
}

/** Events of both sides of CONNS connections, interleaved by request like a busy node's ring.
 * nginx's Date changes once a second: every 10,000 requests, as at the agent's 10k req/s point. */
function traffic() {
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n', 'latin1');
  const responses = [];
  const response = (n) => (responses[Math.floor(n / 10000)] ??= nginxResponse(undefined, `Sat, 21 Nov 2026 17:00:${String(Math.floor(n / 10000)).padStart(2, '0')} GMT`));
  return keepAliveTraffic({ conns: CONNS, requestsPerConn: REQUESTS_PER_CONN, request, response });
}

/** The events as the addon hands them over: batches of BATCH_EVENTS ring records (abi.h layout). */
function encodeBatches(events) {
  const record = (ev) => {
    const head = (type, size) => {
      const r = Buffer.alloc(size);
      r.writeUInt32LE(type, 0);
      r.writeUInt32LE(ev.pid, 4);
      r.writeUInt32LE(ev.tid, 8);
      r.writeInt32LE(ev.fd, 12);
      r.writeBigUInt64LE(BigInt(ev.tsNs), 16);
      r.writeBigUInt64LE(BigInt(ev.connId), 24);
      return r;
    };
    if (ev.kind === 'open') {
      const r = head(1, 88);
      r[32] = ev.role === 'client' ? 1 : 2;
      r[33] = 2;
      r.writeUInt16LE(ev.local.port, 34);
      r.writeUInt16LE(ev.remote.port, 36);
      Buffer.from(ev.local.address.split('.').map(Number)).copy(r, 40);
      Buffer.from(ev.remote.address.split('.').map(Number)).copy(r, 56);
      r.write(ev.comm, 72, 'latin1');
      return r;
    }
    const r = head(2, 56 + ev.data.length);
    r.writeBigUInt64LE(BigInt(ev.pos), 32);
    r.writeBigUInt64LE(BigInt(ev.size), 40);
    r.writeUInt32LE(ev.data.length, 48);
    r[52] = ev.direction === 'egress' ? 0 : 1;
    r[53] = ev.source === 'syscall' ? 0 : 1;
    ev.data.copy(r, 56);
    return r;
  };
  const batches = [];
  for (let i = 0; i < events.length; i += BATCH_EVENTS) {
    const parts = [];
    for (const ev of events.slice(i, i + BATCH_EVENTS)) {
      const r = record(ev);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(r.length);
      parts.push(len, r);
    }
    batches.push(Buffer.concat(parts));
  }
  return batches;
}

async function child(dir, mode) {
  const spans = mode === 'spans';
  const imp = (p) => import(path.resolve(dir, 'src', p));
  let built = 0;
  let records = 0;
  const { newTable } = await agentPipeline(dir, {
    // As the agent's OTLP exporter declares: it copies bodies under 2 KiB when it encodes in submit.
    sink: { submit: () => built++, copiesBytesBelow: 2048 },
    clockMs: 1_700_000_000_000,
    onRecord: (replay, conn, rec) => {
      records++;
      if (spans) replay(conn, rec);
    },
  });
  const events = traffic();
  const { decodeBatch } = mode === 'decode' ? await imp('bpf-fallback/native.js') : {};
  const batches = mode === 'decode' ? encodeBatches(events) : [];
  const batchOptions = { ignorePids: new Set([process.pid]), onProcessEvent: () => {} };
  const run = () => {
    const table = newTable();
    // As the agent feeds the table: raw batches where the table reads them in place (handleBatch),
    // with the agent's options (its own pid ignored, exec and exit seen), decoded events in
    // revisions before it.
    if (mode === 'decode') for (const b of batches) table.handleBatch ? table.handleBatch(b, batchOptions) : table.handle(decodeBatch(b));
    else for (let i = 0; i < events.length; i += BATCH_EVENTS) table.handle(events.slice(i, i + BATCH_EVENTS));
  };
  run(); // warm-up: JIT and caches
  records = 0;
  built = 0;
  const cpu0 = process.cpuUsage();
  run();
  const cpu = process.cpuUsage(cpu0);
  const us = cpu.user + cpu.system;
  const requests = CONNS * REQUESTS_PER_CONN;
  if (records !== 2 * requests || (spans && built !== 2 * requests)) throw new Error(`expected ${2 * requests} records/spans, got ${records}/${built}`);
  process.stdout.write(`${us / requests}\n`);
}
