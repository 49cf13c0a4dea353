// The node agent on the real kernel: eBPF capture (native addon) → reassembly → spans, printed
// by `--json`. Needs root and the addon (bash scripts/setup.sh); without them this fails.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseAgentArgs, type AgentConfig } from '../../src/bpf-fallback/agent-config.js';
import { startAgent, type RunningAgent } from '../../src/bpf-fallback/agent.js';
import { openAgentCapture, type AgentCapture } from '../../src/bpf-fallback/native.js';

interface Row {
  pid: number;
  comm: string;
  kind: 'server' | 'client';
  method: string;
  path: string;
  status: string;
  proto: string;
  src: string;
  dst: string;
  latencyMs: number;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

const SERVER = `
const http = require('node:http'), https = require('node:https'), fs = require('node:fs');
const handler = (req, res) => { let n = 0; req.on('data', (c) => (n += c.length)); req.on('end', () => {
  res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ path: req.url, got: n })); }); };
const tls = process.argv[1] === 'tls';
const s = tls ? https.createServer({ key: fs.readFileSync(process.argv[2]), cert: fs.readFileSync(process.argv[3]) }, handler) : http.createServer(handler);
s.keepAliveTimeout = 100;
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

// HTTP/2 over TLS: an h2 server (plain responses) and a gRPC server, both node (static OpenSSL).
const H2_SERVER = `
const http2 = require('node:http2'), fs = require('node:fs');
const s = http2.createSecureServer({ key: fs.readFileSync(process.argv[1]), cert: fs.readFileSync(process.argv[2]) });
s.on('stream', (stream, headers) => { stream.respond({ ':status': 200, 'content-type': 'text/plain' }); stream.end('h2 ' + headers[':path']); });
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

const GRPC_PEERS = `
const grpc = require(process.argv[3]), fs = require('node:fs');
const def = { say: { path: '/shop.Cart/AddItem', requestStream: false, responseStream: false,
  requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b } };
if (process.argv[4] === 'server') {
  const server = new grpc.Server();
  server.addService(def, { say: (call, cb) => cb(null, Buffer.from([0x08, 0x07])) });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{ private_key: fs.readFileSync(process.argv[1]), cert_chain: fs.readFileSync(process.argv[2]) }], false), (e, port) => console.log(port));
} else {
  const Client = grpc.makeGenericClientConstructor(def, 'Cart');
  const c = new Client('127.0.0.1:' + process.argv[5], grpc.credentials.createSsl(fs.readFileSync(process.argv[2])), { 'grpc.ssl_target_name_override': 'localhost' });
  setTimeout(() => c.say(Buffer.from([0x12, 0x04, 0x62, 0x6f, 0x6f, 0x6b]), (err, res) => { console.log(err ? 'error ' + err.message : 'ok ' + res.toString('hex')); process.exit(0); }), Number(process.argv[6]));
}
`;

const MANY = `
const http = require('node:http');
const [port, total, concurrency] = process.argv.slice(1).map(Number);
let started = 0, done = 0;
function one() {
  if (started >= total) return;
  const i = ++started;
  const req = http.request({ host: '127.0.0.1', port, path: '/short/' + i, agent: false, headers: { connection: 'close' } }, (res) => {
    res.resume();
    res.on('end', () => { if (++done === total) { console.log('done'); process.exit(0); } one(); });
  });
  req.on('error', (e) => { console.error(e.message); process.exit(1); });
  req.end();
}
for (let i = 0; i < concurrency; i++) one();
`;

let capture: AgentCapture;
let agent: RunningAgent;
const rows: Row[] = [];
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('agent kernel tests need root (eBPF)');
  for (let attempt = 1; ; attempt++) {
    try {
      capture = openAgentCapture({});
      break;
    } catch (err) {
      // EAGAIN while other BPF programs load at the same moment (the command retries the same way).
      if (attempt >= 5 || !/temporarily unavailable/i.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  const out = new PassThrough();
  let pending = '';
  out.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      rows.push(JSON.parse(pending.slice(0, nl)) as Row);
      pending = pending.slice(nl + 1);
    }
  });
  const config = parseAgentArgs(['--json']) as AgentConfig;
  agent = await startAgent(config, capture, { env: { OTEL_TRACES_EXPORTER: 'none' }, out, log: () => {} });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-e2e-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
}, 30_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await agent?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function startServer(tls: boolean, script = SERVER, extra: string[] = []): Promise<{ pid: number; port: number }> {
  const args = script === SERVER ? [tls ? 'tls' : 'plain', path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')] : [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem'), ...extra];
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  // node links OpenSSL statically: its probes attach per process.
  if (tls) await capture.attachTls(child.pid!);
  return { pid: child.pid!, port };
}

function run(cmd: string, args: string[]): Promise<{ pid: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => (code === 0 ? resolve({ pid: child.pid!, stdout }) : reject(new Error(`${cmd} exited ${code}: ${stderr}`))));
  });
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('agent on the real kernel', () => {
  test('plain HTTP: curl → node server gives a CLIENT span (curl) and a SERVER span (node) with bodies', async () => {
    const server = await startServer(false);
    const curl = await run('curl', ['-s', '-X', 'POST', '-H', 'content-type: application/json', '--data', '{"q":"plain"}', `http://127.0.0.1:${server.port}/plain/items?x=1`]);
    expect(JSON.parse(curl.stdout)).toEqual({ path: '/plain/items?x=1', got: 13 });
    const client = await waitFor('curl span', () => rows.find((r) => r.pid === curl.pid && r.path === '/plain/items?x=1'));
    const srv = await waitFor('server span', () => rows.find((r) => r.pid === server.pid && r.path === '/plain/items?x=1'));
    expect(client).toMatchObject({ kind: 'client', comm: 'curl', method: 'POST', status: '200', proto: 'HTTP/1.1', dst: `127.0.0.1:${server.port}` });
    expect(client.attributes).toMatchObject({ 'http.request.body.content': '{"q":"plain"}', 'http.response.body.content': '{"path":"/plain/items?x=1","got":13}', 'sidetrace.capture.source': 'ebpf' });
    expect(srv).toMatchObject({ kind: 'server', method: 'POST', status: '200', src: client.src });
    expect(srv.resource['process.executable.name']).toBe('node');
  }, 60_000);

  test('TLS: curl and python3 clients to a node HTTPS server → plaintext spans from both sides', async () => {
    const server = await startServer(true);
    const url = `https://127.0.0.1:${server.port}/tls/curl`;
    const curl = await run('curl', ['-sk', '--http1.1', '--data', 'secret-body', url]);
    expect(JSON.parse(curl.stdout)).toEqual({ path: '/tls/curl', got: 11 });
    const py = await run('python3', ['-c', `import ssl, urllib.request; print(urllib.request.urlopen("https://127.0.0.1:${server.port}/tls/python", context=ssl._create_unverified_context()).read().decode())`]);
    expect(JSON.parse(py.stdout)).toEqual({ path: '/tls/python', got: 0 });
    const c1 = await waitFor('curl TLS span', () => rows.find((r) => r.pid === curl.pid && r.path === '/tls/curl'));
    expect(c1).toMatchObject({ kind: 'client', method: 'POST', status: '200', proto: 'HTTP/1.1+TLS' });
    expect(c1.attributes).toMatchObject({ 'http.request.body.content': 'secret-body', 'http.response.body.content': '{"path":"/tls/curl","got":11}', 'url.scheme': 'https' });
    const p1 = await waitFor('python TLS span', () => rows.find((r) => r.pid === py.pid && r.path === '/tls/python'));
    expect(p1).toMatchObject({ kind: 'client', method: 'GET', status: '200', proto: 'HTTP/1.1+TLS' });
    const s1 = await waitFor('node TLS server spans', () => {
      const mine = rows.filter((r) => r.pid === server.pid && r.kind === 'server');
      return mine.length >= 2 ? mine : undefined;
    });
    expect(s1.map((r) => r.path).sort()).toEqual(['/tls/curl', '/tls/python']);
    expect(s1.every((r) => r.proto === 'HTTP/1.1+TLS')).toBe(true);
  }, 60_000);

  test('HTTP/2 over TLS: curl --http2 → node h2 server, spans from both sides', async () => {
    const server = await startServer(true, H2_SERVER);
    const curl = await run('curl', ['-sk', '--http2', `https://127.0.0.1:${server.port}/h2/tls`]);
    expect(curl.stdout).toBe('h2 /h2/tls');
    const c = await waitFor('curl h2 span', () => rows.find((r) => r.pid === curl.pid && r.path === '/h2/tls'));
    expect(c).toMatchObject({ kind: 'client', method: 'GET', status: '200', proto: 'HTTP/2+TLS' });
    expect(c.attributes['http.response.body.content']).toBe('h2 /h2/tls');
    const s = await waitFor('node h2 span', () => rows.find((r) => r.pid === server.pid && r.path === '/h2/tls'));
    expect(s).toMatchObject({ kind: 'server', status: '200', proto: 'HTTP/2+TLS' });
  }, 60_000);

  test('gRPC over TLS: grpc-js client and server processes → rpc spans with decoded messages', async () => {
    const grpcPath = createRequire(import.meta.url).resolve('@grpc/grpc-js');
    const server = await startServer(true, GRPC_PEERS, [grpcPath, 'server']);
    const clientChild = spawn(process.execPath, ['-e', GRPC_PEERS, path.join(dir, 'key.pem'), path.join(dir, 'cert.pem'), grpcPath, 'client', String(server.port), '700'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(clientChild);
    // The client's OpenSSL is inside node: attach before its first call (it waits 700 ms).
    await capture.attachTls(clientChild.pid!);
    let out = '';
    clientChild.stdout!.on('data', (d: Buffer) => (out += d));
    await new Promise((r) => clientChild.once('exit', r));
    expect(out.trim()).toBe('ok 0807');
    const c = await waitFor('grpc client span', () => rows.find((r) => r.pid === clientChild.pid && r.path === '/shop.Cart/AddItem'));
    expect(c).toMatchObject({ kind: 'client', proto: 'gRPC+TLS', status: 'grpc 0' });
    expect(c.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'shop.Cart', 'rpc.method': 'AddItem' });
    const s = await waitFor('grpc server span', () => rows.find((r) => r.pid === server.pid && r.path === '/shop.Cart/AddItem'));
    expect(s).toMatchObject({ kind: 'server', proto: 'gRPC+TLS', status: 'grpc 0' });
  }, 60_000);

  test('10,000 short connections, one request each → exactly 10,000 spans per side', async () => {
    const server = await startServer(false);
    const client = await run(process.execPath, ['-e', MANY, String(server.port), '10000', '16']);
    const count = (pid: number) => rows.filter((r) => r.pid === pid && r.path.startsWith('/short/')).length;
    await waitFor('10,000 spans per side', () => (count(client.pid) >= 10_000 && count(server.pid) >= 10_000 ? true : undefined), 60_000).catch(() => undefined);
    const counters = capture.counters();
    expect({ client: count(client.pid), server: count(server.pid), dropped: counters.eventsDropped }).toEqual({ client: 10_000, server: 10_000, dropped: 0 });
    const paths = new Set(rows.filter((r) => r.pid === server.pid).map((r) => r.path));
    expect(paths.size).toBe(10_000);
  }, 120_000);

  test('a process started after the agent is traced, and its exit frees its connections', async () => {
    const server = await startServer(false);
    const before = agent.connections.size;
    const curl = await run('curl', ['-s', '--keepalive-time', '60', `http://127.0.0.1:${server.port}/late`]);
    await waitFor('late span', () => rows.find((r) => r.pid === curl.pid && r.path === '/late'));
    await waitFor('connections freed', () => (agent.connections.size <= before + 1 ? true : undefined));
  }, 60_000);
});
