// What the agent needs from the kernel, proven by taking it away: `sidetrace agent --no-tls` run as
// root with only CAP_BPF + CAP_PERFMON (bounding set, so nothing else survives exec) traces plain
// HTTP; without --no-tls the same capabilities are refused with a message naming CAP_SYS_ADMIN and
// the flag, and without CAP_PERFMON it names that. Needs root, the addon and dist/ (setup.sh).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { CLI } from '../support/proxy-process.js';

const run = promisify(execFile);
const CAP_BPF = 39n;
const CAP_PERFMON = 38n;

const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** `sidetrace agent` as root whose capabilities are limited to `caps` (setpriv's names). */
function agentWith(caps: string[], flags: string[]): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn('setpriv', [`--bounding-set=-all${caps.map((c) => `,+${c}`).join('')}`, '--', process.execPath, CLI, 'agent', ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', OTEL_TRACES_EXPORTER: 'none' },
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return { child, out: () => out, err: () => err };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function capEff(pid: number): bigint {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return BigInt('0x' + /^CapEff:\s+([0-9a-f]+)$/m.exec(status)![1]);
}

describe('agent capabilities (real kernel)', () => {
  test('--no-tls with only CAP_BPF + CAP_PERFMON runs and traces plain HTTP', async () => {
    if (process.getuid?.() !== 0) throw new Error('needs root');
    const path = `/caps-${randomBytes(4).toString('hex')}`;
    const server = http.createServer((req, res) => res.end('ok ' + req.url));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const agent = agentWith(['bpf', 'perfmon'], ['--no-tls', '--json']);
      await waitFor('the agent to start', () => {
        if (agent.child.exitCode !== null) throw new Error(`agent exited ${agent.child.exitCode}: ${agent.err()}`);
        return /tracing;/.test(agent.err());
      });
      // The agent node process is setpriv's exec'd child: same pid. Exactly the two capabilities.
      expect(capEff(agent.child.pid!)).toBe((1n << CAP_BPF) | (1n << CAP_PERFMON));
      const port = (server.address() as AddressInfo).port;
      const { stdout } = await run('curl', ['-sS', '--noproxy', '*', '-m', '5', `http://127.0.0.1:${port}${path}`]);
      expect(stdout).toBe(`ok ${path}`);
      await waitFor('both ends of the request', () => agent.out().split('\n').filter((l) => l.includes(`"path":"${path}"`)).length >= 2);
      const rows = agent
        .out()
        .split('\n')
        .filter((l) => l.includes(`"path":"${path}"`))
        .map((l) => JSON.parse(l) as { kind: string; comm: string; status: string; method: string });
      expect(rows.map((r) => [r.kind, r.method, r.status]).sort()).toEqual([
        ['client', 'GET', '200'],
        ['server', 'GET', '200'],
      ]);
      expect(rows.find((r) => r.kind === 'client')!.comm).toBe('curl');
      agent.child.kill('SIGTERM');
      const [code] = await once(agent.child, 'exit');
      expect(code).toBe(0);
    } finally {
      server.close();
    }
  }, 40_000);

  test('TLS capture without CAP_SYS_ADMIN is refused, naming the capability and --no-tls', async () => {
    const agent = agentWith(['bpf', 'perfmon'], ['--json']);
    const [code] = await once(agent.child, 'exit');
    expect(code).toBe(1);
    expect(agent.err()).toMatch(/ST_AGENT_MISSING_CAPABILITY: TLS capture attaches uprobes, which the kernel allows only with CAP_SYS_ADMIN/);
    expect(agent.err()).toMatch(/run with --no-tls/);
  }, 20_000);

  test('without CAP_PERFMON the agent names it, even with --no-tls', async () => {
    const agent = agentWith(['bpf'], ['--no-tls', '--json']);
    const [code] = await once(agent.child, 'exit');
    expect(code).toBe(1);
    expect(agent.err()).toMatch(/ST_AGENT_MISSING_CAPABILITY: .*CAP_PERFMON missing/);
  }, 20_000);
});
