// The sidecar benchmark: direct vs sidetrace (capture + OTLP export on) vs nginx vs node
// http-proxy, in one run, interleaved per round, then writes bench/RESULTS.md and bench/out/<run>/.
// A fifth target, sidetrace-nospans (policy `spans: false`), splits sidetrace's cost into
// proxying and tracing.
//   npm run bench                 full run (~8 min)
//   node bench/run.js --quick     harness check: 1 short round, results only under bench/out/
// Environment: BENCH_ROUNDS, BENCH_LATENCY_SECONDS, BENCH_SATURATION_SECONDS, BENCH_WARMUP_SECONDS,
// BENCH_TARGETS (comma list), BENCH_NICE (niceness of every bench process), BENCH_PROFILE=1 or
// =TARGET (that sidetrace target, default `sidetrace`, runs under --cpu-prof; its top self-time
// functions go into the results).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFortio, fortioArgs, REQUEST_BYTES, runFortio } from './fortio.js';
import { nginxArgs, proxyConf, RESPONSE_BYTES, upstreamConf } from './nginx.js';
import { cpuSeconds, freePort, peakRssMiB, spawnPinned, stop, waitForPort } from './procs.js';
import { topSelfTime } from './profile-top.js';
import { startReceiver } from './receiver.js';
import { renderResults } from './report.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The proxy under test gets core 0 to itself; load generator, upstream and span receiver share core 1.
const PROXY_CORE = 0;
const LOAD_CORE = 1;
const CONNECTIONS = 16;
const FIXED_QPS = 1000;

const quick = process.argv.includes('--quick');
const envNum = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);
const cfg = {
  rounds: envNum('BENCH_ROUNDS', quick ? 1 : 3),
  latencySeconds: envNum('BENCH_LATENCY_SECONDS', quick ? 3 : 15),
  saturationSeconds: envNum('BENCH_SATURATION_SECONDS', quick ? 2 : 10),
  warmupSeconds: envNum('BENCH_WARMUP_SECONDS', quick ? 1 : 3),
  targets: (process.env.BENCH_TARGETS ?? 'direct,sidetrace,sidetrace-nospans,nginx,http-proxy').split(','),
  profile: process.env.BENCH_PROFILE === '1' ? 'sidetrace' : (process.env.BENCH_PROFILE || undefined),
  connections: CONNECTIONS,
  fixedQps: FIXED_QPS,
  nice: process.env.BENCH_NICE ? Number(process.env.BENCH_NICE) : 0,
  proxyCore: PROXY_CORE,
  loadCore: LOAD_CORE,
  requestBytes: REQUEST_BYTES,
  responseBytes: RESPONSE_BYTES,
};

const runId = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = path.join(ROOT, 'bench/out', runId);
mkdirSync(outDir, { recursive: true });
const log = (msg) => console.log(`bench: ${msg}`);
const children = [];

async function main() {
  if (os.cpus().length < 2) throw new Error('needs 2 cores: the proxy and the load generator are pinned apart');
  const fortio = findFortio();
  if (!existsSync(path.join(ROOT, 'dist/cli.js'))) throw new Error('dist/ missing: run scripts/setup.sh (it builds)');
  const loadBefore = os.loadavg()[0];
  log(`run ${runId}: ${cfg.rounds} rounds, targets ${cfg.targets.join(' ')}; out ${path.relative(ROOT, outDir)}`);

  const receiver = await startReceiver(LOAD_CORE, path.join(outDir, 'receiver.log'), children);
  let nospansReceiver;
  const upstream = await startNginx('upstream', LOAD_CORE, (dir, port) => upstreamConf(dir, port));
  const targets = {};
  const commands = {
    upstream: `taskset -c ${LOAD_CORE} nginx ${upstream.argv.join(' ')}   # returns ${RESPONSE_BYTES} bytes`,
    receiver: `taskset -c ${LOAD_CORE} node bench/otlp-receiver.js`,
  };
  for (const name of cfg.targets) {
    if (name === 'direct') {
      targets.direct = { name, port: upstream.port, child: null };
    } else if (name === 'sidetrace') {
      targets.sidetrace = await startSidetrace(name, upstream.port, receiver.port);
      commands.sidetrace = targets.sidetrace.command;
    } else if (name === 'sidetrace-nospans') {
      // Its own receiver, so a span leaking past `spans: false` cannot inflate the main ratio.
      const policy = path.join(outDir, 'policy-nospans.yaml');
      writeFileSync(policy, 'default:\n  spans: false\n');
      nospansReceiver = await startReceiver(LOAD_CORE, path.join(outDir, 'receiver-nospans.log'), children);
      targets[name] = await startSidetrace(name, upstream.port, nospansReceiver.port, ['--policy', policy]);
      commands[name] = `${targets[name].command}   # policy: default: { spans: false }`;
    } else if (name === 'nginx') {
      const ng = await startNginx('nginx-proxy', PROXY_CORE, (dir, port) => proxyConf(dir, port, upstream.port));
      targets.nginx = { name, port: ng.port, child: ng.child };
      commands.nginx = `taskset -c ${PROXY_CORE} nginx ${ng.argv.join(' ')}   # proxy_pass, upstream keepalive 32`;
      commands.nginxConf = ng.conf;
    } else if (name === 'http-proxy') {
      const port = await freePort();
      const args = [path.join(ROOT, 'bench/http-proxy-server.js'), String(port), String(upstream.port)];
      const child = track(spawnPinned(PROXY_CORE, process.execPath, args, { logFile: path.join(outDir, 'http-proxy.log') }));
      await waitForPort(port, 10_000, child);
      targets['http-proxy'] = { name, port, child };
      commands['http-proxy'] = `taskset -c ${PROXY_CORE} node bench/http-proxy-server.js ${port} ${upstream.port}`;
    } else {
      throw new Error(`unknown target ${name} in BENCH_TARGETS`);
    }
  }
  const sent = Object.fromEntries(Object.keys(targets).map((n) => [n, 0]));
  for (const t of Object.values(targets)) {
    await sanityCheck(t.port, t.name);
    sent[t.name]++;
  }

  const load = async (t, kind, round, qps, seconds) => {
    const jsonPath = path.join(outDir, `${kind}-${t.name}-r${round}.json`);
    const res = await runFortio(fortio, LOAD_CORE, { url: `http://127.0.0.1:${t.port}/bench`, qps, seconds, connections: CONNECTIONS, jsonPath },
      path.join(outDir, 'fortio.log'));
    // fortio sends one untimed warm-up request per connection before the timed load.
    sent[t.name] += res.count + CONNECTIONS;
    return res;
  };
  commands.latency = `taskset -c ${LOAD_CORE} fortio ${fortioArgs({ url: 'http://127.0.0.1:PORT/bench', qps: FIXED_QPS, seconds: cfg.latencySeconds, connections: CONNECTIONS, jsonPath: 'OUT.json' }).join(' ')}`;
  commands.saturation = `taskset -c ${LOAD_CORE} fortio ${fortioArgs({ url: 'http://127.0.0.1:PORT/bench', qps: 0, seconds: cfg.saturationSeconds, connections: CONNECTIONS, jsonPath: 'OUT.json' }).join(' ')}`;

  log('warm-up');
  for (const t of Object.values(targets)) await load(t, 'warmup', 0, FIXED_QPS, cfg.warmupSeconds);

  const results = Object.fromEntries(Object.keys(targets).map((n) => [n, { latency: [], saturation: [] }]));
  for (let r = 1; r <= cfg.rounds; r++) {
    for (const t of Object.values(targets)) {
      const cpu0 = t.child ? cpuSeconds(t.child.pid) : 0;
      const t0 = process.hrtime.bigint();
      const res = await load(t, 'latency', r, FIXED_QPS, cfg.latencySeconds);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (t.child) {
        // Per second of fortio's own load duration: its start-up and JSON writing (inside `wall`)
        // leave the proxy idle and would dilute the figure.
        res.cpuCores = (cpuSeconds(t.child.pid) - cpu0) / res.seconds;
        res.cpuPer1kRps = res.cpuCores / (res.actualQps / 1000);
        res.wallSeconds = wall;
      }
      results[t.name].latency.push(res);
      log(`latency r${r} ${t.name.padEnd(10)} p50 ${res.p50Ms.toFixed(3)} ms  p99 ${res.p99Ms.toFixed(3)} ms  ${res.actualQps.toFixed(0)} rps${res.cpuCores !== undefined ? `  ${res.cpuCores.toFixed(3)} cores` : ''}${res.ok !== res.count ? `  NON-200: ${res.count - res.ok}` : ''}`);
    }
  }
  for (let r = 1; r <= cfg.rounds; r++) {
    for (const t of Object.values(targets)) {
      const res = await load(t, 'saturation', r, 0, cfg.saturationSeconds);
      results[t.name].saturation.push(res);
      log(`saturation r${r} ${t.name.padEnd(10)} ${res.actualQps.toFixed(0)} rps${res.ok !== res.count ? `  NON-200: ${res.count - res.ok}` : ''}`);
    }
  }
  for (const t of Object.values(targets)) if (t.child) results[t.name].rssMiB = peakRssMiB(t.child.pid);

  let spans;
  let nospansSpans;
  if (targets.sidetrace) {
    spans = await settleSpans(receiver, sent.sidetrace);
    log(`spans received ${spans.spans} for ${sent.sidetrace} requests (${spans.exportRequests} export calls)`);
  }
  for (const t of Object.values(targets)) {
    if (!t.adminPort) continue;
    try {
      writeFileSync(path.join(outDir, `${t.name}-metrics.txt`), await get(t.adminPort, '/metrics'));
    } catch (err) {
      log(`could not read ${t.name} /metrics: ${err.message}`);
    }
  }
  if (nospansReceiver) {
    const c = await nospansReceiver.count();
    nospansSpans = c.spans;
    log(`sidetrace-nospans: ${c.spans} spans received (expected 0)`);
  }

  let profile;
  const profiled = cfg.profile && targets[cfg.profile];
  if (profiled) {
    // --cpu-prof writes its file when the process exits normally, so ask it to shut down cleanly.
    await stop(profiled.child, 'SIGTERM', 15_000);
    profile = `${profiled.name}: ${topSelfTime(profiled.profileDir, 25)}`;
    writeFileSync(path.join(outDir, `profile-top-${profiled.name}.txt`), profile);
    console.log(profile);
  }

  const summary = {
    runId, date: new Date().toISOString(), commit: gitCommit(), machine: machineInfo(), config: cfg,
    loadAverage: { start: loadBefore, end: os.loadavg()[0] },
    commands, sent, spans, nospansSpans, results,
  };
  writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify(summary, null, 2));
  const resultsPath = quick ? path.join(outDir, 'RESULTS.md') : path.join(ROOT, 'bench/RESULTS.md');
  // RESULTS.md also holds the node agent's section (bench/agent.js): keep it, replace only ours.
  const previous = existsSync(resultsPath) ? readFileSync(resultsPath, 'utf8') : '';
  const agentAt = previous.indexOf('\n## Node agent');
  const md = renderResults(summary, profile) + (agentAt < 0 ? '' : previous.slice(agentAt));
  writeFileSync(resultsPath, md);
  log(`wrote ${path.relative(ROOT, resultsPath)}`);
  console.log(md.slice(md.indexOf('## Results')));
}

function track(child) {
  children.push(child);
  return child;
}

async function startNginx(name, core, render) {
  const port = await freePort();
  const dir = path.join(outDir, name);
  const conf = render(dir, port);
  const argv = nginxArgs(dir, conf);
  const child = track(spawnPinned(core, 'nginx', argv, { logFile: path.join(dir, 'stdout.log') }));
  await waitForPort(port, 10_000, child);
  return { port, child, argv, conf };
}

async function startSidetrace(name, upstreamPort, receiverPort, extraArgs = []) {
  const port = await freePort();
  const adminPort = await freePort();
  const profileDir = path.join(outDir, `cpu-prof-${name}`);
  const nodeArgs = cfg.profile === name ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const args = [...nodeArgs, path.join(ROOT, 'bin/sidetrace.js'), 'proxy',
    '--inbound', `127.0.0.1:${port}=127.0.0.1:${upstreamPort}`,
    '--otlp-endpoint', `http://127.0.0.1:${receiverPort}`,
    '--admin', `127.0.0.1:${adminPort}`,
    '--service-name', 'bench', ...extraArgs];
  const child = track(spawnPinned(PROXY_CORE, process.execPath, args, { logFile: path.join(outDir, `${name}.log`) }));
  await waitForPort(port, 20_000, child);
  const command = `taskset -c ${PROXY_CORE} node ${args.map((a) => path.isAbsolute(a) ? path.relative(ROOT, a) : a).join(' ')}`;
  return { name, port, adminPort, child, profileDir, command };
}

/** One POST through the target: a broken setup must stop the bench, not produce numbers. */
async function sanityCheck(port, name) {
  const body = await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/bench', agent: false,
      headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(Buffer.alloc(REQUEST_BYTES, 'a'));
  }).catch((err) => { throw new Error(`sanity POST through ${name} failed: ${err.message}`); });
  if (body.length !== RESPONSE_BYTES) throw new Error(`sanity POST through ${name}: ${body.length} bytes, expected ${RESPONSE_BYTES}`);
}

/** Waits until the span count stops moving (export is batched), at most 20 s. */
async function settleSpans(receiver, expected) {
  let last = -1;
  let stable = 0;
  const deadline = Date.now() + 20_000;
  let c;
  while (Date.now() < deadline) {
    c = await receiver.count();
    if (c.spans >= expected) break;
    stable = c.spans === last ? stable + 1 : 0;
    if (stable >= 6) break;
    last = c.spans;
    await sleep(500);
  }
  return { spans: c.spans, exportRequests: c.requests, decodeErrors: c.decodeErrors, requests: expected, ratio: c.spans / expected };
}

function get(port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (s += c));
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
}

function gitCommit() {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', 'src', 'bin', 'bench'], { cwd: ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

function machineInfo() {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  return { nproc: os.cpus().length, model, kernel: os.release(), node: process.version, fortio: fortioVersion() };
}

function fortioVersion() {
  try {
    return execFileSync(findFortio(), ['version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function shutdown() {
  await Promise.all(children.map((c) => stop(c)));
}

main().then(shutdown, async (err) => {
  console.error(`bench: ${err.stack ?? err}`);
  await shutdown();
  process.exitCode = 1;
});
