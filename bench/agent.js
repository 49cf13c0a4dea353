// The node agent's benchmark: nginx (1 worker, 1 KiB answer, plain HTTP and TLS) under wrk with
// the agent off and on, interleaved in one run, plus a fixed 10k rps point (fortio, plain HTTP),
// traced on both sides (2 spans per request) and on the server's side alone (1 span per request).
// Reports throughput on/off, the agent's CPU per 1k rps and peak RSS, and event loss.
//   node bench/agent.js              full run (~8 min), as root; results under bench/out/agent-<run>/
//   node bench/agent.js --quick      harness check: 1 round of 3 s
//   node bench/agent.js --fixed-only the 10k req/s point alone (AGENT_BENCH_FIXED_RUNS times; median)
// Every "agent on" measurement starts after a warm-up: the agent runs the same load for
// AGENT_BENCH_WARMUP_SECONDS (default 5) first, unmeasured, so the figures are of a running agent
// (a DaemonSet runs for days), not of V8 compiling its code: from a cold start the first second of
// 10k req/s costs the agent 3-4x what a later second does (per-second CPU read inside the agent,
// session 6). The warm-up's own CPU is reported beside the fixed point (0 turns the warm-up off).
// Environment: AGENT_BENCH_ROUNDS, AGENT_BENCH_SECONDS, AGENT_BENCH_PROFILE=1 (the agent runs under
// --cpu-prof during the fixed-rate point; its top self-time functions are printed),
// AGENT_BENCH_PROFILE_INTERVAL_US (the profiler's sampling interval; V8's default is 1000),
// AGENT_NODE_ARGS (node flags for the agent's command line, e.g. --trace-gc, which NODE_OPTIONS
// refuses; its log is the run's agent.log).
// The agent gets the chart's agent.nodeOptions in NODE_OPTIONS, as the DaemonSet runs it.
// Modes per round: off, on (the agent unlimited, both wrk's and nginx's sides traced), server
// (nginx's side alone: wrk under a uid the agent skips, as clients on other nodes), and "limited":
// the agent in a CPU cgroup with the chart's agent.resources.limits.cpu as its quota, as a
// DaemonSet runs it (skipped when the chart sets no CPU limit). Every row also has nginx's own CPU per request, the cost the probes
// add inside the traced app whichever core the agent runs on.
// The agent runs from src/ transpiled by esbuild into the run's directory, so the figures are of
// this checkout, not of whatever dist/ holds.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import { transpileSrc } from './build-src.js';
import { findFortio } from './fortio.js';
import { RESPONSE_BYTES, startPlainAndTlsUpstream } from './nginx.js';
import { cpuSeconds, freePort, git, peakRssMiB, spawnPinned, stop, waitForPort } from './procs.js';
import { topSelfTime } from './profile-top.js';
import { startReceiver } from './receiver.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_CORE = 0;
const LOAD_CORE = 1;
const CONNECTIONS = 16;
const FIXED_QPS = 10000;

const quick = process.argv.includes('--quick');
const envNum = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);
const cfg = {
  rounds: envNum('AGENT_BENCH_ROUNDS', quick ? 1 : 3),
  seconds: envNum('AGENT_BENCH_SECONDS', quick ? 3 : 10),
  profile: process.env.AGENT_BENCH_PROFILE === '1',
  fixedRuns: envNum('AGENT_BENCH_FIXED_RUNS', 1),
  fixedOnly: process.argv.includes('--fixed-only'),
  warmupSeconds: envNum('AGENT_BENCH_WARMUP_SECONDS', quick ? 1 : 5),
};

const runId = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = path.join(ROOT, 'bench/out', `agent-${runId}`);
mkdirSync(outDir, { recursive: true });
const log = (msg) => console.log(`agent-bench: ${msg}`);
const children = [];

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root: the agent loads BPF programs and uprobes');
  if (os.cpus().length < 2) throw new Error('needs 2 cores: nginx and wrk are pinned apart');
  const fortio = findFortio();
  const runner = await buildAgent();
  const loadBefore = os.loadavg()[0];
  log(`run ${runId}: ${cfg.rounds} rounds × ${cfg.seconds} s; out ${path.relative(ROOT, outDir)}`);

  const receiver = await startReceiver(LOAD_CORE, path.join(outDir, 'receiver.log'), children);
  const nginx = await startPlainAndTlsUpstream(path.join(outDir, 'nginx'), SERVER_CORE, path.join(outDir, 'nginx.log'), children);
  const urls = { plain: `http://127.0.0.1:${nginx.plainPort}/`, tls: `https://127.0.0.1:${nginx.tlsPort}/` };
  // Warm nginx and the TLS session path once, untimed.
  for (const proto of cfg.fixedOnly ? [] : ['plain', 'tls']) await wrk(urls[proto], 1, 'warmup');

  const cpuLimit = chartCpuLimit();
  const cgroup = cpuLimit === undefined ? undefined : makeCpuCgroup(cpuLimit);
  log(cgroup ? `limited mode: agent CPU quota ${cpuLimit} core (chart agent.resources.limits.cpu)` : 'limited mode skipped: the chart sets no agent CPU limit');
  // "server": the agent traces nginx alone, wrk running under a uid it skips, as when the clients
  // run on other nodes (half the spans of "on", where wrk's side is traced too).
  const modes = cgroup ? ['off', 'on', 'server', 'limited'] : ['off', 'on', 'server'];
  const untraced = untracedLoad(fortio);
  const rows = [];
  for (const proto of cfg.fixedOnly ? [] : ['plain', 'tls']) {
    for (let round = 1; round <= cfg.rounds; round++) {
      // Reversed every other round, so a drift in the machine's load does not favour one mode.
      const order = round % 2 === 1 ? modes : [...modes].reverse();
      for (const mode of order) {
        const load = () => withServerCpu(nginx, () => wrk(urls[proto], cfg.seconds, `${proto}-${round}-${mode}`, mode === 'server' ? untraced : undefined));
        const warmup = () => wrk(urls[proto], cfg.warmupSeconds, `${proto}-${round}-${mode}-warmup`, mode === 'server' ? untraced : undefined);
        const opts = { warmup, cgroup: mode === 'limited' ? cgroup : undefined, extraArgs: mode === 'server' ? ['--skip-uid', String(untraced.uid)] : [] };
        const row = { proto, round, mode, sides: mode === 'server' ? 1 : 2, ...(mode === 'off' ? await load() : await measuredOn(runner, receiver, load, opts)) };
        rows.push(row);
        log(`${proto} round ${round} agent ${mode}: ${row.rps.toFixed(0)} req/s, nginx ${row.serverUsPerRequest.toFixed(2)} µs/request` + (mode !== 'off' ? `, agent ${row.agentCores.toFixed(3)} core, ${row.rssMiB.toFixed(0)} MiB, spans ${row.spans}/${row.sides * row.requests}, kernel dropped ${row.kernel.dropped}/${row.kernel.sent}` : ''));
      }
    }
  }
  // The 10k req/s point twice, interleaved: with both sides traced (fortio and nginx on this node:
  // 2 spans per request), and with the server's side alone, as when the clients run on other
  // nodes (fortio under its own uid, which the agent skips: 1 span per request).
  const fixedRuns = { both: [], server: [] };
  for (let i = 0; i < cfg.fixedRuns; i++) {
    for (const sides of ['both', 'server']) {
      const f = sides === 'both'
        ? await measuredOn(runner, receiver, () => withServerCpu(nginx, () => fortioLoad(fortio, urls.plain)), { profile: cfg.profile && i === 0, warmup: () => fortioLoad(fortio, urls.plain, undefined, cfg.warmupSeconds) })
        : await measuredOn(runner, receiver, () => withServerCpu(nginx, () => fortioLoad(untraced.path, urls.plain, untraced)), { profile: cfg.profile && i === 0, profileLabel: 'server', extraArgs: ['--skip-uid', String(untraced.uid)], warmup: () => fortioLoad(untraced.path, urls.plain, untraced, cfg.warmupSeconds) });
      f.sides = sides === 'both' ? 2 : 1;
      fixedRuns[sides].push(f);
      log(`fixed ${FIXED_QPS} rps plain, ${sides === 'both' ? 'both sides' : 'server side'} traced: ${f.rps.toFixed(0)} req/s, agent ${f.agentCores.toFixed(3)} core, ${f.rssMiB.toFixed(0)} MiB, spans ${f.spans}/${f.sides * f.requests}` + (f.warmupCores === undefined ? '' : `; warm-up from a cold start ${f.warmupCores.toFixed(3)} core`));
    }
  }
  // The run with the median agent CPU stands for the point; the others' CPU and RSS are listed.
  const medianRun = (runs) => {
    const f = [...runs].sort((a, b) => a.agentCores - b.agentCores)[(runs.length - 1) >> 1];
    return { ...f, allCores: runs.map((x) => x.agentCores), allRss: runs.map((x) => x.rssMiB), allWarmupCores: runs.map((x) => x.warmupCores) };
  };
  const fixed = medianRun(fixedRuns.both);
  const fixedServer = medianRun(fixedRuns.server);

  const summary = summarize(rows, fixed, fixedServer);
  const result = {
    runId,
    commit: git('rev-parse', '--short', 'HEAD'),
    dirty: git('status', '--porcelain', '--', 'src', 'native').length > 0,
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadBefore,
    loadAfter: os.loadavg()[0],
    config: { ...cfg, connections: CONNECTIONS, fixedQps: FIXED_QPS, responseBytes: RESPONSE_BYTES, cpuLimit },
    rows,
    fixed,
    fixedServer,
    summary,
  };
  writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(result, null, 2));
  process.stdout.write(renderSummary(result));
  for (const f of [fixed, fixedServer]) if (f.profileTop) process.stdout.write(`${f.sides === 2 ? 'both sides' : 'server side'}: ${f.profileTop}`);
}

/** Transpiles src/ into the run's dir, with an entry that runs the agent. */
async function buildAgent() {
  const buildDir = path.join(outDir, 'build');
  await transpileSrc(ROOT, buildDir, { sourcemap: true });
  // The same relative layout as dist/: the addon one level above src/.
  symlinkSync(path.join(ROOT, 'native'), path.join(buildDir, 'native'));
  const runner = path.join(buildDir, 'agent-main.js');
  writeFileSync(runner, `import { run } from './src/commands/agent.js';\nprocess.exitCode = await run(process.argv.slice(2));\n`);
  return runner;
}

/** Runs `load` and adds nginx's CPU per request (master + worker, utime + stime) to its result. */
async function withServerCpu(nginx, load) {
  const c0 = cpuSeconds(nginx.child.pid);
  const r = await load();
  return { ...r, serverUsPerRequest: (1e6 * (cpuSeconds(nginx.child.pid) - c0)) / r.requests };
}

const chartAgent = () => YAML.parse(readFileSync(path.join(ROOT, 'charts/sidetrace/values.yaml'), 'utf8'))?.agent;

/** The chart's agent CPU limit in cores (AGENT_BENCH_CPU_LIMIT overrides), or undefined when it sets none. */
function chartCpuLimit() {
  if (process.env.AGENT_BENCH_CPU_LIMIT) return Number(process.env.AGENT_BENCH_CPU_LIMIT);
  const cpu = chartAgent()?.resources?.limits?.cpu;
  if (cpu === undefined || cpu === null) return undefined;
  const s = String(cpu);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

/** A cgroup (v2 if mounted, else v1's cpu controller) whose CPU quota is `cores`; returns its procs file. */
/** Cgroups this run made, removed at exit (empty by then: their only member was the agent). */
const cgroupDirs = [];

function makeCpuCgroup(cores) {
  const period = 100_000;
  const quota = Math.round(cores * period);
  const v2 = '/sys/fs/cgroup/cgroup.controllers';
  let dir;
  try {
    readFileSync(v2);
    dir = '/sys/fs/cgroup/sidetrace-agent-bench';
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'cpu.max'), `${quota} ${period}`);
  } catch {
    dir = '/sys/fs/cgroup/cpu/sidetrace-agent-bench';
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(period));
    writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quota));
  }
  cgroupDirs.push(dir);
  return path.join(dir, 'cgroup.procs');
}

async function wrk(url, seconds, label, untraced) {
  const logFile = path.join(outDir, `wrk-${label}.log`);
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, url];
  const child = untraced
    ? spawnPinned(LOAD_CORE, 'setpriv', [`--reuid=${untraced.uid}`, `--regid=${untraced.uid}`, '--clear-groups', 'wrk', ...args], { logFile })
    : spawnPinned(LOAD_CORE, 'wrk', args, { logFile });
  const { code } = await child.exited;
  const text = readFileSync(logFile, 'utf8');
  if (code !== 0) throw new Error(`wrk exited ${code} (see ${logFile})`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  const errors = /Non-2xx|Socket errors/.test(text);
  if (!Number.isFinite(rps) || errors) throw new Error(`wrk failed for ${url} (see ${logFile})`);
  return { rps, requests };
}

/**
 * Load generators runnable as an unprivileged uid the agent is told to skip: a copy of fortio
 * and a result directory that uid can reach (the cached binary lives under root's home); wrk is
 * Debian's.
 */
function untracedLoad(fortio) {
  // Not nobody (65534): nginx's workers run as nobody when started by root.
  const uid = 40999;
  const dir = path.join(outDir, 'untraced');
  mkdirSync(dir, { recursive: true, mode: 0o777 });
  chmodSync(dir, 0o777);
  const copy = path.join(dir, 'fortio');
  copyFileSync(fortio, copy);
  chmodSync(copy, 0o755);
  return { path: copy, uid, dir };
}

async function fortioLoad(fortio, url, untraced, seconds = cfg.seconds) {
  const jsonPath = path.join(untraced?.dir ?? outDir, 'fortio-fixed.json');
  const args = ['load', '-quiet', '-qps', String(FIXED_QPS), '-c', String(CONNECTIONS), '-t', `${seconds}s`, '-json', jsonPath, url];
  const logFile = path.join(outDir, 'fortio.log');
  const child = untraced
    ? spawnPinned(LOAD_CORE, 'setpriv', [`--reuid=${untraced.uid}`, `--regid=${untraced.uid}`, '--clear-groups', fortio, ...args], { logFile })
    : spawnPinned(LOAD_CORE, fortio, args, { logFile });
  const { code } = await child.exited;
  if (code !== 0) throw new Error(`fortio exited ${code}`);
  const r = JSON.parse(readFileSync(jsonPath, 'utf8'));
  return { rps: r.ActualQPS, requests: r.DurationHistogram.Count };
}

/**
 * Starts the agent (unpinned, as on a node), runs `load`, waits for the agent to drain, and reads
 * its CPU, peak RSS, kernel counters and span count. Its own admin and export ports are skipped so
 * the bench's scraping and the receiver's side of the export are not traced.
 */
async function measuredOn(runner, receiver, load, { profile = false, profileLabel = 'both', cgroup, extraArgs = [], warmup } = {}) {
  const adminPort = await freePort();
  const profDir = path.join(outDir, `profile-${profileLabel}`);
  const interval = process.env.AGENT_BENCH_PROFILE_INTERVAL_US;
  const extraNodeArgs = process.env.AGENT_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const nodeArgs = [...extraNodeArgs, ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profDir, ...(interval ? ['--cpu-prof-interval', interval] : [])] : [])];
  const args = [...nodeArgs, runner, '--otlp-endpoint', `http://127.0.0.1:${receiver.port}`, '--admin', `127.0.0.1:${adminPort}`,
    '--skip-port', String(adminPort), '--skip-port', String(receiver.port), ...extraArgs];
  // The agent's own export defaults (queue 8,192 spans / 32 MiB), as a user runs it; OTEL_* in the
  // bench's environment pass through.
  // The node options the chart's DaemonSet sets (V8's young generation size), so the figures are
  // the deployed agent's. In limited mode a shell joins the cgroup, then execs the agent (its
  // threads inherit it).
  const env = { ...process.env, NODE_OPTIONS: [process.env.NODE_OPTIONS, chartAgent()?.nodeOptions].filter(Boolean).join(' ') };
  const logFile = path.join(outDir, 'agent.log');
  const child = cgroup
    ? spawnPinned('0-1', 'sh', ['-c', `echo $$ > ${cgroup} && exec "$0" "$@"`, process.execPath, ...args], { logFile, env })
    : spawnPinned('0-1', process.execPath, args, { logFile, env });
  children.push(child);
  await waitForPort(adminPort, 60_000, child);
  await waitReady(adminPort, child);
  let warmupCores;
  if (warmup && cfg.warmupSeconds > 0) {
    const cpuW = cpuSeconds(child.pid);
    const w = await warmup();
    await drained(adminPort, await scrape(adminPort));
    warmupCores = (cpuSeconds(child.pid) - cpuW) / (w.requests / w.rps);
    await sleep(1500); // the warm-up's last export batches reach the receiver before the count below
  }
  const before = await scrape(adminPort);
  const spansBefore = (await receiver.count()).spans;
  const cpu0 = cpuSeconds(child.pid);
  const t0 = process.hrtime.bigint();
  const r = await load();
  // The agent may still be working through the last batches: its CPU counts until it is idle.
  const after = await drained(adminPort, await scrape(adminPort));
  const cpu = cpuSeconds(child.pid) - cpu0;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const rssMiB = peakRssMiB(child.pid);
  await sleep(1500); // export batches every second or so
  const spans = (await receiver.count()).spans - spansBefore;
  const d = (k) => (after[k] ?? 0) - (before[k] ?? 0);
  await stop(child, 'SIGINT', 10_000);
  children.splice(children.indexOf(child), 1);
  const out = {
    ...r,
    // CPU over the load's own duration: the load generator's rate times its seconds.
    agentCpuSeconds: cpu,
    agentCores: cpu / (r.requests / r.rps),
    wallSeconds: wall,
    warmupCores,
    rssMiB,
    spans,
    records: d('sidetrace_agent_records_total'),
    spansDropped: d('sidetrace_spans_dropped_total'),
    kernel: { sent: d('sidetrace_agent_kernel_events_sent'), dropped: d('sidetrace_agent_kernel_events_dropped') },
    userEvents: d('sidetrace_agent_events_total'),
    gaps: d('sidetrace_agent_gaps_total'),
    parseErrors: d('sidetrace_agent_parse_errors_total'),
  };
  out.cpuMsPer1kRequests = (1000 * cpu) / (r.requests / 1000) / 1000;
  if (profile) out.profileTop = topSelfTime(profDir, 30);
  return out;
}

/** The agent's counters once it has gone idle (nothing new for 200 ms; 10 s at most), from `after`. */
async function drained(port, after) {
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    const next = await scrape(port);
    if (next.sidetrace_agent_events_total === after.sidetrace_agent_events_total && next.sidetrace_spans_submitted_total === after.sidetrace_spans_submitted_total) break;
    after = next;
  }
  return after;
}

async function waitReady(port, child) {
  // The probes are attached once the agent serves /metrics with kernel counters; then a short
  // settle for the initial TLS attach scan.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode} (see ${outDir}/agent.log)`);
    const m = await scrape(port).catch(() => undefined);
    if (m && m.sidetrace_agent_kernel_events_sent !== undefined) break;
    await sleep(100);
  }
  await sleep(1000);
}

function scrape(port) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          const m = {};
          for (const line of text.split('\n')) {
            const hit = /^([a-z_]+)(?:\{[^}]*\})? ([\d.e+-]+)$/.exec(line);
            if (hit) m[hit[1]] = (m[hit[1]] ?? 0) + Number(hit[2]);
          }
          resolve(m);
        });
      })
      .on('error', reject);
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function summarize(rows, fixed, fixedServer) {
  const out = {};
  for (const proto of ['plain', 'tls']) {
    const off = rows.filter((r) => r.proto === proto && r.mode === 'off');
    for (const mode of ['on', 'server', 'limited']) {
      const on = rows.filter((r) => r.proto === proto && r.mode === mode);
      if (on.length === 0) continue;
      const ratios = [];
      for (let round = 1; round <= cfg.rounds; round++) {
        const a = on.find((r) => r.round === round);
        const b = off.find((r) => r.round === round);
        if (a && b) ratios.push(a.rps / b.rps);
      }
      out[`${proto}-${mode}`] = {
        proto,
        mode,
        offRps: median(off.map((r) => r.rps)),
        onRps: median(on.map((r) => r.rps)),
        ratio: median(ratios),
        ratios,
        serverUsOff: median(off.map((r) => r.serverUsPerRequest)),
        serverUsOn: median(on.map((r) => r.serverUsPerRequest)),
        agentCores: median(on.map((r) => r.agentCores)),
        cpuUsPerRequest: median(on.map((r) => (1e6 * r.agentCpuSeconds) / r.requests)),
        rssMiB: Math.max(...on.map((r) => r.rssMiB)),
        kernelDropped: on.reduce((a, r) => a + r.kernel.dropped, 0),
        kernelSent: on.reduce((a, r) => a + r.kernel.sent, 0),
        spans: on.reduce((a, r) => a + r.spans, 0),
        expectedSpans: on.reduce((a, r) => a + r.sides * r.requests, 0),
        records: on.reduce((a, r) => a + r.records, 0),
        spansDropped: on.reduce((a, r) => a + r.spansDropped, 0),
      };
    }
  }
  const point = (fixed) => ({
    sides: fixed.sides,
    allCores: fixed.allCores,
    allRss: fixed.allRss,
    allWarmupCores: fixed.allWarmupCores,
    warmupCores: fixed.warmupCores,
    rps: fixed.rps,
    agentCores: fixed.agentCores,
    cpuUsPerRequest: (1e6 * fixed.agentCpuSeconds) / fixed.requests,
    serverUsOn: fixed.serverUsPerRequest,
    rssMiB: fixed.rssMiB,
    kernelDropped: fixed.kernel.dropped,
    kernelSent: fixed.kernel.sent,
    spans: fixed.spans,
    requests: fixed.requests,
    records: fixed.records,
    spansDropped: fixed.spansDropped,
  });
  out.fixed = point(fixed);
  out.fixedServer = point(fixedServer);
  return out;
}

function renderSummary(r) {
  const s = r.summary;
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  const lines = [
    `commit ${r.commit}${r.dirty ? ' (+ uncommitted src/native changes)' : ''}, kernel ${r.kernel}, ${r.cpus} × ${r.cpuModel}, load ${r.loadBefore.toFixed(2)} → ${r.loadAfter.toFixed(2)}`,
    '| load | agent | off req/s | on req/s | on/off (median; per round) | nginx CPU µs/request off → on | agent cores | agent CPU µs/request | peak RSS | kernel events dropped/sent | records/spans expected | spans received/expected | dropped by the export queue |',
    '|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const key of ['plain-on', 'plain-server', 'plain-limited', 'tls-on', 'tls-server', 'tls-limited']) {
    const p = s[key];
    if (!p) continue;
    const agent = p.mode === 'on' ? 'unlimited' : p.mode === 'server' ? 'unlimited; nginx side only (wrk skipped by uid)' : `CPU limit ${r.config.cpuLimit} core`;
    lines.push(`| ${p.proto === 'plain' ? 'HTTP' : 'HTTPS'}, wrk saturation | ${agent} | ${p.offRps.toFixed(0)} | ${p.onRps.toFixed(0)} | ${p.ratio.toFixed(3)} (${p.ratios.map((x) => x.toFixed(3)).join(', ')}) | ${p.serverUsOff.toFixed(2)} → ${p.serverUsOn.toFixed(2)} | ${p.agentCores.toFixed(3)} | ${p.cpuUsPerRequest.toFixed(1)} | ${p.rssMiB.toFixed(0)} MiB | ${p.kernelDropped}/${p.kernelSent} | ${p.records}/${p.expectedSpans} | ${p.spans}/${p.expectedSpans} (${pct(p.spans / p.expectedSpans)}) | ${p.spansDropped} |`);
  }
  for (const f of [s.fixed, s.fixedServer]) {
    const runs = f.allCores.length > 1 ? ` (runs: ${f.allCores.map((c) => c.toFixed(3)).join(', ')}; ${f.allRss.map((m) => m.toFixed(0)).join(', ')} MiB)` : '';
    const sides = f.sides === 2 ? 'both sides traced' : 'server side traced (fortio skipped by uid)';
    const expected = f.sides * f.requests;
    const warm = f.warmupCores === undefined ? '' : `; after a ${r.config.warmupSeconds} s warm-up (the warm-up itself, from a cold start: ${f.allWarmupCores.map((c) => c.toFixed(3)).join(', ')} core)`;
    lines.push(`| HTTP, fortio ${FIXED_QPS} req/s, ${sides}${runs} | unlimited${warm} | – | ${f.rps.toFixed(0)} | – | – → ${f.serverUsOn.toFixed(2)} | **${f.agentCores.toFixed(3)}** | ${f.cpuUsPerRequest.toFixed(1)} | **${f.rssMiB.toFixed(0)} MiB** | ${f.kernelDropped}/${f.kernelSent} | ${f.records}/${expected} | ${f.spans}/${expected} (${pct(f.spans / expected)}) | ${f.spansDropped} |`);
  }
  return lines.join('\n') + '\n';
}

main()
  .catch((err) => {
    console.error(`agent-bench: ${err.stack ?? err}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const child of children.reverse()) await stop(child, 'SIGTERM', 5000).catch(() => {});
    for (const dir of cgroupDirs) {
      try {
        rmdirSync(dir);
      } catch { /* still busy or already gone: harmless */ }
    }
  });
