// Renders bench/RESULTS.md from a run's summary: medians over rounds, latency added over direct
// (per round, against that round's direct run), saturation relative to nginx, and the targets.

const TARGETS = { addedP50Ms: 0.3, addedP99Ms: 1.5, cpuPer1kRps: 0.15, rssMiB: 80, saturationVsNginx: 0.5 };

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const f = (x, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

export function aggregate(summary) {
  const { results } = summary;
  const direct = results.direct;
  const nginxSat = results.nginx ? median(results.nginx.saturation.map((s) => s.actualQps)) : NaN;
  const rows = {};
  for (const [name, r] of Object.entries(results)) {
    const added = (key) => (direct && name !== 'direct'
      ? median(r.latency.map((l, i) => l[key] - (direct.latency[i]?.[key] ?? NaN)))
      : NaN);
    const sat = median(r.saturation.map((s) => s.actualQps));
    const all = [...r.latency, ...r.saturation];
    rows[name] = {
      p50Ms: median(r.latency.map((l) => l.p50Ms)),
      p99Ms: median(r.latency.map((l) => l.p99Ms)),
      addedP50Ms: added('p50Ms'),
      addedP99Ms: added('p99Ms'),
      fixedRps: median(r.latency.map((l) => l.actualQps)),
      cpuPer1kRps: median(r.latency.map((l) => l.cpuPer1kRps)),
      rssMiB: r.rssMiB ?? NaN,
      saturationRps: sat,
      saturationVsNginx: sat / nginxSat,
      non200: all.reduce((n, l) => n + (l.count - l.ok), 0),
    };
  }
  return rows;
}

export function renderResults(summary, profile) {
  const { machine: m, config: c, commands } = summary;
  const rows = aggregate(summary);
  const out = [];
  out.push('# sidetrace proxy benchmark', '');
  out.push(`- date: ${summary.date}`);
  out.push(`- commit: ${summary.commit}`);
  out.push(`- machine: ${m.nproc} cores, ${m.model}, kernel ${m.kernel}, node ${m.node}, fortio ${m.fortio}`);
  out.push(`- the machine is shared with other work (1-min load average ${f(summary.loadAverage.start, 1)} at the start, ` +
    `${f(summary.loadAverage.end, 1)} at the end, on ${m.nproc} cores): compare ratios and medians, not absolute figures across runs`);
  out.push(`- pinning: the proxy under test on core ${c.proxyCore} (taskset); fortio, the upstream and the OTLP receiver on core ${c.loadCore}` +
    (c.nice ? `; every bench process at niceness ${c.nice} (BENCH_NICE) to keep unrelated work from preempting it` : ''));
  out.push(`- workload: POST ${c.requestBytes} B bodies, ${c.responseBytes} B responses, ${c.connections} keep-alive connections; ` +
    `upstream = nginx \`return 200\` with a fixed ${c.responseBytes} B body, 1 worker`);
  out.push(`- rounds: ${c.rounds}, interleaved (${Object.keys(summary.results).join(' → ')} per round); latency ${c.latencySeconds} s at ${c.fixedQps} rps ` +
    `(-nocatchup) per target per round; saturation ${c.saturationSeconds} s at max rate per target per round; ${c.warmupSeconds} s warm-up each`);
  out.push('- sidetrace: default capture policy (request and response bodies, all headers, sample 1.0), spans exported over OTLP gRPC to bench/otlp-receiver.js');
  if (summary.results['sidetrace-nospans']) {
    out.push('- sidetrace-nospans: the same proxy with policy `default: { spans: false }` (no capture, no export): what proxying alone costs');
  }
  out.push('');
  out.push('## Results', '');
  out.push('Medians over rounds. "added" = median over rounds of (target − direct in the same round). CPU is the proxy process tree\'s utime+stime ' +
    'during the fixed-rate phase, in cores per 1,000 rps. RSS is the tree\'s peak (VmHWM) at the end of the run.', '');
  out.push('| target | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU cores / 1k rps | RSS max MiB | saturation rps | vs nginx | non-200 |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, r] of Object.entries(rows)) {
    out.push(`| ${name} | ${f(r.p50Ms)} | ${f(r.p99Ms)} | ${f(r.addedP50Ms)} | ${f(r.addedP99Ms)} | ${f(r.cpuPer1kRps)} | ${f(r.rssMiB, 1)} | ` +
      `${f(r.saturationRps, 0)} | ${f(r.saturationVsNginx, 2)} | ${r.non200} |`);
  }
  out.push('');
  if (summary.spans) {
    const s = summary.spans;
    out.push(`Spans: the receiver got ${s.spans} spans for ${s.requests} requests sent through sidetrace (fortio's ` +
      'per-connection warm-up requests and the sanity request included): ' +
      `ratio ${f(s.ratio, 4)} (${s.exportRequests} OTLP export calls${s.decodeErrors ? `, ${s.decodeErrors} undecodable` : ''}).`, '');
  }
  if (summary.nospansSpans !== undefined) {
    out.push(`sidetrace-nospans exported ${summary.nospansSpans} spans (expected 0).`, '');
  }
  const st = rows.sidetrace;
  if (st) {
    out.push('## Targets (sidetrace)', '');
    out.push('| target | goal | measured | met |', '|---|---:|---:|---|');
    const line = (label, goal, val, ok) => out.push(`| ${label} | ${goal} | ${val} | ${ok ? 'yes' : '**no**'} |`);
    line('added p50', `≤ ${TARGETS.addedP50Ms} ms`, `${f(st.addedP50Ms)} ms`, st.addedP50Ms <= TARGETS.addedP50Ms);
    line('added p99', `≤ ${TARGETS.addedP99Ms} ms`, `${f(st.addedP99Ms)} ms`, st.addedP99Ms <= TARGETS.addedP99Ms);
    line('CPU per 1k rps', `≤ ${TARGETS.cpuPer1kRps} cores`, `${f(st.cpuPer1kRps)} cores`, st.cpuPer1kRps <= TARGETS.cpuPer1kRps);
    line('RSS max', `≤ ${TARGETS.rssMiB} MiB`, `${f(st.rssMiB, 1)} MiB`, st.rssMiB <= TARGETS.rssMiB);
    if (rows.nginx) line('saturation vs nginx', `≥ ${TARGETS.saturationVsNginx * 100}%`, `${f(st.saturationVsNginx * 100, 0)}%`, st.saturationVsNginx >= TARGETS.saturationVsNginx);
    if (summary.spans) line('spans / requests', '1.0', f(summary.spans.ratio, 4), Math.abs(summary.spans.ratio - 1) <= 0.001);
    out.push('');
  }
  if (profile) out.push('## CPU profile (top self time, `node --cpu-prof` over the whole run)', '', '```', profile.trimEnd(), '```', '');
  out.push('## Per round', '');
  out.push('| phase | round | target | p50 ms | p99 ms | rps | CPU cores |', '|---|---:|---|---:|---:|---:|---:|');
  for (const [name, r] of Object.entries(summary.results)) {
    r.latency.forEach((l, i) => out.push(`| latency | ${i + 1} | ${name} | ${f(l.p50Ms)} | ${f(l.p99Ms)} | ${f(l.actualQps, 0)} | ${f(l.cpuCores)} |`));
    r.saturation.forEach((s, i) => out.push(`| saturation | ${i + 1} | ${name} | ${f(s.p50Ms)} | ${f(s.p99Ms)} | ${f(s.actualQps, 0)} | |`));
  }
  out.push('');
  out.push('## Commands', '', '```');
  out.push('npm run bench    # = node bench/run.js; raw fortio JSON and logs under bench/out/<run>/');
  for (const [k, v] of Object.entries(commands)) if (k !== 'nginxConf') out.push(`# ${k}`, v);
  out.push('```', '');
  if (commands.nginxConf) out.push('nginx proxy config:', '', '```nginx', commands.nginxConf.trimEnd(), '```', '');
  return out.join('\n');
}
