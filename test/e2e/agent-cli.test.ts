// `sidetrace agent` as a user runs it (as root): the built CLI in its own process with --tail or
// --json, real curl traffic to a real server, /metrics on --admin, stopped with Ctrl-C.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

const SERVER = `
const http = require('node:http');
const s = http.createServer((req, res) => setTimeout(() => res.end('ok ' + req.url), req.url.startsWith('/slow') ? 300 : 0));
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  return { child, out: () => out, err: () => err };
}

async function until<T>(what: string, fn: () => T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function agent(args: string[]) {
  if (process.getuid?.() !== 0) throw new Error('the agent needs root (eBPF)');
  if (!fs.existsSync(`${ROOT}dist/cli.js`)) throw new Error('dist/ is missing: run scripts/setup.sh (it builds the CLI) before the tests');
  const p = start(process.execPath, [`${ROOT}bin/sidetrace.js`, 'agent', ...args], { OTEL_TRACES_EXPORTER: 'none' });
  const line = await until('agent start', () => /sidetrace agent: tracing.*/.exec(p.err())?.[0]);
  const admin = /admin (http:\/\/\S+)/.exec(line)?.[1];
  return { ...p, admin };
}

async function server(): Promise<number> {
  const s = start(process.execPath, ['-e', SERVER]);
  return Number(await until('server port', () => (s.out().includes('\n') ? s.out().trim() : undefined)));
}

async function curl(url: string): Promise<void> {
  const c = start('curl', ['-s', '-o', '/dev/null', url]);
  await once(c.child, 'exit');
}

describe('sidetrace agent CLI', () => {
  test('--tail prints the live table; --admin serves kernel and user-space counters; SIGINT stops it', async () => {
    const a = await agent(['--tail', '--admin', '127.0.0.1:0']);
    const port = await server();
    await curl(`http://127.0.0.1:${port}/cli/tail?x=1`);
    const row = await until('table row', () => a.out().split('\n').find((l) => l.includes('/cli/tail?x=1') && l.startsWith(' ') === false && /\bcurl\b/.test(l)));
    expect(a.out().split('\n')[0]).toMatch(/^TIMESTAMP\s+COMM\s+PID\s+SRC\s+DST\s+PROTO\s+METHOD\s+HOST\s+PATH\s+STATUS\s+LATENCY$/);
    expect(row).toMatch(new RegExp(`curl\\s+\\d+\\s+127\\.0\\.0\\.1:\\d+\\s+127\\.0\\.0\\.1:${port}\\s+HTTP/1\\.1\\s+GET\\s+127\\.0\\.0\\.1:${port}\\s+/cli/tail\\?x=1\\s+200\\s+\\S+`));
    const metrics = await (await fetch(`${a.admin}/metrics`)).text();
    expect(metrics).toMatch(/sidetrace_agent_kernel_events_sent [1-9]/);
    expect(metrics).toMatch(/sidetrace_agent_records_total [1-9]/);
    expect(metrics).toMatch(/sidetrace_agent_gaps_total \d/);
    a.child.kill('SIGINT');
    const [code] = await once(a.child, 'exit');
    expect(code).toBe(0);
  }, 40_000);

  test('--json with --min-latency prints only slow requests, one object each', async () => {
    const a = await agent(['--json', '--min-latency', '200ms']);
    const port = await server();
    await curl(`http://127.0.0.1:${port}/fast`);
    await curl(`http://127.0.0.1:${port}/slow/one`);
    const line = await until('slow row', () => a.out().split('\n').find((l) => l.includes(`"/slow/one"`) && l.includes('"comm":"curl"')));
    const obj = JSON.parse(line) as { method: string; status: string; latencyMs: number; attributes: Record<string, unknown> };
    expect(obj).toMatchObject({ method: 'GET', status: '200' });
    expect(obj.latencyMs).toBeGreaterThanOrEqual(290);
    expect(obj.attributes['http.response.body.content']).toBe('ok /slow/one');
    expect(a.out()).not.toContain('"/fast"');
  }, 40_000);

  test('bad flags are refused naming the flag', async () => {
    const p = start(process.execPath, [`${ROOT}bin/sidetrace.js`, 'agent', '--min-latency', 'soon']);
    const [code] = await once(p.child, 'exit');
    expect(code).toBe(2);
    expect(p.err()).toContain('invalid --min-latency: "soon" is not a duration');
  });
});
