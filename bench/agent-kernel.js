// What the node agent's kernel side costs inside the traced processes: nginx (1 worker, core 0,
// 1 KiB `return 200`) under wrk -t1 -c16 (core 1), plain HTTP and TLS, in three interleaved modes:
//   off     no probes;
//   paused  every program attached (syscall tracepoints and the OpenSSL uprobes) but the config
//           flag off, so each returns at once: the floor the hook mechanism itself costs;
//   on      full capture, drained by a consumer that does nothing with the records.
// The consumer loads the addon directly (no decoding, no spans) and runs pinned to core 1 with wrk,
// so it does not take nginx's core. Reported per mode (medians over rounds): nginx and wrk CPU µs
// per request (nginx from /proc/<pid>/task/*/schedstat, wrk from its shell's `times`), req/s, and
// on/off ratios of throughput, plus the kernel's events per request.
//   node bench/agent-kernel.js        as root, under the kernel lock (flock /tmp/st-kernel.lock ...)
// Environment: AGENT_KERNEL_ROUNDS (3), AGENT_KERNEL_SECONDS (4), AGENT_KERNEL_MODES (off,paused,on),
// AGENT_KERNEL_PROTOS (plain,tls); AGENT_KERNEL_BASE_ADDON=<another build's sidetrace_bpf.node> adds
// the modes paused-base and on-base, so a change is compared with its base in the same run.
// Results under bench/out/agent-kernel-<run>/.
import { fork } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESPONSE_BYTES, startPlainAndTlsUpstream } from './nginx.js';
import { git, processTree, spawnPinned, stop } from './procs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// SIDETRACE_NATIVE_ADDON (as native.ts reads it) measures another build, e.g. an older commit's.
const ADDON = process.env.SIDETRACE_NATIVE_ADDON ?? path.join(ROOT, 'native/build/sidetrace_bpf.node');
// Where Debian's nginx and wrk find OpenSSL (the agent pins the same file at start).
const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const SERVER_CORE = 0;
const LOAD_CORE = 1;
const CONNECTIONS = 16;

if (process.argv[2] === '--consumer') {
  runConsumer(process.argv[3]);
} else {
  const envList = (name, dflt) => (process.env[name] ? process.env[name].split(',') : dflt);
  const cfg = {
    rounds: Number(process.env.AGENT_KERNEL_ROUNDS ?? 3),
    seconds: Number(process.env.AGENT_KERNEL_SECONDS ?? 4),
    modes: envList('AGENT_KERNEL_MODES', ['off', 'paused', 'on', ...(process.env.AGENT_KERNEL_BASE_ADDON ? ['paused-base', 'on-base'] : [])]),
    baseAddon: process.env.AGENT_KERNEL_BASE_ADDON,
    protos: envList('AGENT_KERNEL_PROTOS', ['plain', 'tls']),
  };
  const runId = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = path.join(ROOT, 'bench/out', `agent-kernel-${runId}`);
  mkdirSync(outDir, { recursive: true });
  const children = [];
  main(cfg, runId, outDir, children)
    .catch((err) => {
      console.error(`agent-kernel: ${err.stack ?? err}`);
      process.exitCode = 1;
    })
    .finally(async () => {
      for (const child of children.reverse()) await stop(child, 'SIGTERM', 5000).catch(() => {});
    });
}

/** The consumer: opens the capture (skipping itself), attaches the system OpenSSL, then obeys
 * its parent: {enabled} sets the config flag, 'counters' reports the kernel's counters. */
function runConsumer(addonPath) {
  const addon = createRequire(import.meta.url)(addonPath);
  let batches = 0;
  const h = addon.open({ skipPids: [process.pid] }, () => batches++);
  addon.attachTls(h, LIBSSL);
  process.on('message', (msg) => {
    if (msg === 'counters') process.send({ counters: { ...addon.counters(h), batches } });
    else if (typeof msg.enabled === 'boolean') {
      addon.setEnabled(h, msg.enabled);
      process.send({ enabled: msg.enabled });
    }
  });
  process.on('SIGTERM', () => {
    addon.close(h);
    process.exit(0);
  });
  process.send({ ready: true });
}

async function main(cfg, runId, outDir, children) {
  if (process.getuid?.() !== 0) throw new Error('run as root: the consumer loads BPF programs and uprobes');
  if (os.cpus().length < 2) throw new Error('needs 2 cores: nginx and wrk are pinned apart');
  const log = (msg) => console.log(`agent-kernel: ${msg}`);
  log(`run ${runId}: ${cfg.rounds} rounds × ${cfg.seconds} s, modes ${cfg.modes.join(',')}; out ${path.relative(ROOT, outDir)}`);
  const nginx = await startPlainAndTlsUpstream(path.join(outDir, 'nginx'), SERVER_CORE, path.join(outDir, 'nginx.log'), children);
  const urls = { plain: `http://127.0.0.1:${nginx.plainPort}/`, tls: `https://127.0.0.1:${nginx.tlsPort}/` };
  for (const proto of cfg.protos) await wrk(outDir, urls[proto], 1, `warmup-${proto}`);

  const rows = [];
  for (const proto of cfg.protos) {
    for (let round = 1; round <= cfg.rounds; round++) {
      // ABC CBA across rounds, so a drift in the machine's load favours no mode.
      const order = round % 2 === 1 ? cfg.modes : [...cfg.modes].reverse();
      for (const mode of order) {
        const consumer = mode === 'off' ? undefined : await startConsumer(children, mode.startsWith('on'), mode.endsWith('-base') ? cfg.baseAddon : ADDON);
        const label = `${proto}-${round}-${mode}`;
        const nginx0 = schedSeconds(nginx.child.pid);
        const consumer0 = consumer ? schedSeconds(consumer.child.pid) : 0;
        const k0 = consumer ? await consumer.counters() : undefined;
        const r = await wrk(outDir, urls[proto], cfg.seconds, label);
        const row = { proto, round, mode, ...r, nginxSeconds: schedSeconds(nginx.child.pid) - nginx0 };
        if (consumer) {
          const k1 = await consumer.counters();
          row.consumerSeconds = schedSeconds(consumer.child.pid) - consumer0;
          row.events = k1.eventsAttempted - k0.eventsAttempted;
          row.dropped = k1.eventsDropped - k0.eventsDropped;
          await stop(consumer.child);
          children.splice(children.indexOf(consumer.child), 1);
        }
        row.nginxUs = (1e6 * row.nginxSeconds) / row.requests;
        row.wrkUs = (1e6 * row.wrkSeconds) / row.requests;
        rows.push(row);
        log(`${label}: ${row.rps.toFixed(0)} req/s, nginx ${row.nginxUs.toFixed(2)} µs/req, wrk ${row.wrkUs.toFixed(2)} µs/req` +
          (consumer ? `, consumer ${((1e6 * row.consumerSeconds) / row.requests).toFixed(2)} µs/req, events ${(row.events / row.requests).toFixed(2)}/req, dropped ${row.dropped}` : ''));
      }
    }
  }
  const result = {
    runId,
    commit: git('rev-parse', '--short', 'HEAD'),
    dirty: git('status', '--porcelain', '--', 'native').length > 0,
    addon: ADDON,
    kernel: os.release(),
    cpuModel: os.cpus()[0]?.model,
    config: { ...cfg, connections: CONNECTIONS, responseBytes: RESPONSE_BYTES },
    rows,
    summary: summarize(cfg, rows),
  };
  writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(result, null, 2));
  process.stdout.write(render(result));
}

/** Seconds on CPU of pid's whole tree (all threads), from the scheduler's nanosecond counter. */
function schedSeconds(pid) {
  let ns = 0;
  for (const p of processTree(pid)) {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        ns += Number(readFileSync(`/proc/${p}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch { /* thread gone */ }
    }
  }
  return ns / 1e9;
}

async function startConsumer(children, enabled, addonPath) {
  const child = fork(fileURLToPath(import.meta.url), ['--consumer', addonPath], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execPath: 'taskset',
    execArgv: ['-c', String(LOAD_CORE), process.execPath],
  });
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  children.push(child);
  const next = (key) =>
    new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (m[key] === undefined) return;
        child.off('message', onMsg);
        resolve(m[key]);
      };
      child.on('message', onMsg);
      child.once('exit', (code) => reject(new Error(`consumer exited ${code}`)));
    });
  await next('ready');
  child.send({ enabled });
  await next('enabled');
  return {
    child,
    counters: () => {
      const p = next('counters');
      child.send('counters');
      return p;
    },
  };
}

/** wrk under a shell whose `times` reports wrk's user+system CPU once it has exited. */
async function wrk(outDir, url, seconds, label) {
  const logFile = path.join(outDir, `wrk-${label}.log`);
  const script = `wrk -t1 -c${CONNECTIONS} -d${seconds}s ${url}; rc=$?; times; exit $rc`;
  const child = spawnPinned(LOAD_CORE, 'bash', ['-c', script], { logFile });
  const { code } = await child.exited;
  const text = readFileSync(logFile, 'utf8');
  if (code !== 0) throw new Error(`wrk exited ${code} (see ${logFile})`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  // `times`: the shell's user/system, then its children's, as e.g. "0m1.234s 0m0.567s".
  const t = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(text);
  if (!Number.isFinite(rps) || !t || /Non-2xx|Socket errors/.test(text)) throw new Error(`wrk failed for ${url} (see ${logFile})`);
  const wrkSeconds = 60 * Number(t[1]) + Number(t[2]) + 60 * Number(t[3]) + Number(t[4]);
  return { rps, requests, wrkSeconds };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function summarize(cfg, rows) {
  const out = {};
  for (const proto of cfg.protos) {
    out[proto] = {};
    for (const mode of cfg.modes) {
      const rs = rows.filter((r) => r.proto === proto && r.mode === mode);
      // Throughput against the same round's off run, the interleaved pair.
      const ratios = rs
        .map((r) => [r, rows.find((o) => o.proto === proto && o.round === r.round && o.mode === 'off')])
        .filter(([, off]) => off)
        .map(([r, off]) => r.rps / off.rps);
      out[proto][mode] = {
        rps: median(rs.map((r) => r.rps)),
        ratio: median(ratios),
        nginxUs: median(rs.map((r) => r.nginxUs)),
        wrkUs: median(rs.map((r) => r.wrkUs)),
        consumerUs: mode === 'off' ? undefined : median(rs.map((r) => (1e6 * r.consumerSeconds) / r.requests)),
        eventsPerRequest: mode === 'off' ? undefined : median(rs.map((r) => r.events / r.requests)),
        dropped: rs.reduce((a, r) => a + (r.dropped ?? 0), 0),
      };
    }
  }
  return out;
}

function render(r) {
  const lines = [
    `commit ${r.commit}${r.dirty ? ' (+ uncommitted native changes)' : ''}, addon ${r.addon}, kernel ${r.kernel}, ${r.cpuModel}; medians of ${r.config.rounds} rounds × ${r.config.seconds} s`,
    '| load | mode | req/s | vs off | nginx µs/req | Δ nginx | wrk µs/req | Δ wrk | consumer µs/req | events/req | dropped |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const f = (x, d = 2) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
  for (const proto of r.config.protos) {
    const s = r.summary[proto];
    const off = s.off;
    for (const mode of r.config.modes) {
      const m = s[mode];
      lines.push(`| ${proto === 'plain' ? 'HTTP' : 'HTTPS'} | ${mode} | ${f(m.rps, 0)} | ${f(m.ratio, 3)} | ${f(m.nginxUs)} | ${off ? f(m.nginxUs - off.nginxUs) : '–'} | ${f(m.wrkUs)} | ${off ? f(m.wrkUs - off.wrkUs) : '–'} | ${f(m.consumerUs)} | ${f(m.eventsPerRequest)} | ${m.dropped} |`);
    }
  }
  return lines.join('\n') + '\n';
}
