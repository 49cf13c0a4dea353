// Process plumbing for the bench: start pinned children, wait for their ports, read their CPU
// time and peak RSS from /proc (summed over the process tree: nginx runs master + worker), and
// ask git which checkout is measured.
import { spawn, execFileSync } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `git args` in this checkout, trimmed; '' when git fails, so a run still writes its results. */
export function git(...args) {
  try {
    return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

/** A free loopback port (bound to 0, then released for the child to take). */
export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/**
 * Starts `cmd args` pinned to `core` with taskset (which execs, so the child pid is the command's).
 * Output goes to `logFile`; `ipc` adds a Node IPC channel (the command must be node).
 */
export function spawnPinned(core, cmd, args, { logFile, ipc = false, env = process.env } = {}) {
  const fd = openSync(logFile, 'a');
  const stdio = ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd];
  const pinned = ['taskset', '-c', String(core), cmd, ...args];
  // BENCH_NICE (e.g. -10, as root) lets every bench process win the shared cores from unrelated
  // work, so the figures say more about the proxies and less about the neighbours.
  const argv = process.env.BENCH_NICE ? ['nice', '-n', process.env.BENCH_NICE, ...pinned] : pinned;
  const child = spawn(argv[0], argv.slice(1), { stdio, env });
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return child;
}

export async function waitForPort(port, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`process ${child.spawnargs.join(' ')} exited (${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not listening after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** pid and all its descendants. */
export function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const children = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (children) out.push(...children.split(/\s+/).map(Number));
      } catch { /* thread gone */ }
    }
  }
  return out;
}

/** utime+stime of the tree, in seconds. */
export function cpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the parenthesised command name (which may contain spaces): state is field 3,
      // utime field 14, stime field 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* process gone */ }
  }
  return ticks / CLK_TCK;
}

/** Peak resident set (VmHWM) of the tree, in MiB. */
export function peakRssMiB(pid) {
  let kib = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch { /* process gone */ }
  }
  return kib / 1024;
}

export async function stop(child, signal = 'SIGTERM', graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}
