// Runs one fortio load (pinned to the load generator's core) and reads its JSON result.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { spawnPinned } from './procs.js';

export const REQUEST_BYTES = 1024;

export function findFortio() {
  const cache = process.env.SIDETRACE_CACHE ?? path.join(process.env.HOME ?? '/root', '.cache/sidetrace');
  const cached = path.join(cache, 'bin/fortio');
  if (existsSync(cached)) return cached;
  try {
    return execFileSync('sh', ['-c', 'command -v fortio'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('fortio not found: run scripts/setup.sh (it installs fortio into $SIDETRACE_CACHE/bin)');
  }
}

/** The argv for a POST load of REQUEST_BYTES bodies; qps 0 means as fast as possible. */
export function fortioArgs({ url, qps, seconds, connections, jsonPath }) {
  const args = ['load', '-quiet', '-qps', String(qps), '-c', String(connections), '-t', `${seconds}s`,
    '-p', '50,99', '-payload-size', String(REQUEST_BYTES), '-json', jsonPath];
  // Without -nocatchup a fixed-rate run bursts after a stall and hides the stall from the latencies.
  if (qps > 0) args.push('-nocatchup');
  args.push(url);
  return args;
}

/**
 * @returns {Promise<{count:number, ok:number, actualQps:number, p50Ms:number, p99Ms:number, seconds:number}>}
 */
export async function runFortio(fortio, core, opts, logFile) {
  const child = spawnPinned(core, fortio, fortioArgs(opts), { logFile });
  const { code } = await child.exited;
  if (code !== 0) throw new Error(`fortio exited ${code} for ${opts.url} (see ${logFile})`);
  const r = JSON.parse(readFileSync(opts.jsonPath, 'utf8'));
  const pct = (p) => 1000 * (r.DurationHistogram.Percentiles.find((x) => x.Percentile === p)?.Value ?? NaN);
  return {
    count: r.DurationHistogram.Count,
    ok: r.RetCodes?.['200'] ?? 0,
    actualQps: r.ActualQPS,
    p50Ms: pct(50),
    p99Ms: pct(99),
    seconds: r.ActualDuration / 1e9,
  };
}
