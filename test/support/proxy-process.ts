// Runs `sidetrace proxy` as its own process (the built CLI in dist/), as a user would, so tests
// can measure its memory and kill it. scripts/setup.sh builds dist/ before the suite runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import net from 'node:net';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = `${ROOT}bin/sidetrace.js`;

export interface ProxyProcess {
  child: ChildProcess;
  pid: number;
  /** The first line printed on stderr at startup and everything after. */
  stderr(): string;
  stdout(): string;
  /** Current and peak resident set size in bytes, from /proc/<pid>/status. */
  rss(): { now: number; peak: number };
  stop(): Promise<number | null>;
}

export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function startProxyProcess(args: string[], env: Record<string, string> = {}): Promise<ProxyProcess> {
  if (!existsSync(`${ROOT}dist/cli.js`)) throw new Error('dist/ is missing: run scripts/setup.sh (it builds the CLI) before the tests');
  const child = spawn(process.execPath, [CLI, 'proxy', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.on('data', (d) => (out += d));
  const deadline = Date.now() + 15_000;
  while (!/^ {2}(inbound|outbound) /m.test(err)) {
    if (child.exitCode !== null) throw new Error(`sidetrace proxy exited ${child.exitCode}: ${err}`);
    if (Date.now() > deadline) throw new Error(`sidetrace proxy did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    child,
    pid: child.pid!,
    stderr: () => err,
    stdout: () => out,
    rss: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
      return { now: kb('VmRSS'), peak: kb('VmHWM') };
    },
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      return code as number | null;
    },
  };
}
