// Kernel-level tests of the agent's capture (native/bpf + native/addon + native.ts) on the real
// kernel, as root: real servers and clients (node:http, curl, python3, openssl s_server, node
// https) and the events the programs emit for them.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEvent, ConnOpenEvent, DataEvent } from '../../src/bpf-fallback/events.js';
import { openAgentCapture, type AgentCapture } from '../../src/bpf-fallback/native.js';

const run = promisify(execFile);
const ADDON = new URL('../../native/build/sidetrace_bpf.node', import.meta.url).pathname;

/** Keeps the events of watched pids and of connections touching watched ports (the capture sees
 * the whole machine), copying payloads so batches are not pinned. */
class Recorder {
  readonly events: AgentEvent[] = [];
  /** When each watched pid's exec reached this thread (performance.now()). */
  readonly execSeenAt = new Map<number, number>();
  readonly pids = new Set<number>();
  readonly ports = new Set<number>();
  private readonly conns = new Map<number, AgentEvent[]>();

  constructor(capture: AgentCapture) {
    capture.onBatch((batch) => {
      for (const ev of batch) {
        if (ev.kind === 'exec' || ev.kind === 'exit') {
          if (!this.pids.has(ev.pid)) continue;
          this.events.push(ev);
          if (ev.kind === 'exec') this.execSeenAt.set(ev.pid, performance.now());
          continue;
        }
        if (ev.kind === 'open' && (this.pids.has(ev.pid) || this.ports.has(ev.local.port) || this.ports.has(ev.remote.port))) {
          this.conns.set(ev.connId, []);
        }
        const conn = this.conns.get(ev.connId);
        if (!conn) continue;
        const kept = ev.kind === 'data' ? { ...ev, data: Buffer.from(ev.data) } : ev;
        this.events.push(kept);
        conn.push(kept);
      }
    });
  }

  async waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = probe();
      if (got) return got;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  opens(pred: (e: ConnOpenEvent) => boolean): ConnOpenEvent[] {
    return this.events.filter((e): e is ConnOpenEvent => e.kind === 'open' && pred(e));
  }

  ofConn(connId: number): AgentEvent[] {
    return this.conns.get(connId) ?? [];
  }

  closed(connId: number): boolean {
    return this.ofConn(connId).at(-1)?.kind === 'close';
  }
}

/** The stream of one (direction, source), checking that positions are continuous from 0. */
function stream(events: AgentEvent[], direction: 'egress' | 'ingress', source: 'syscall' | 'tls'): { bytes: Buffer; size: number } {
  const data = events.filter((e): e is DataEvent => e.kind === 'data' && e.direction === direction && e.source === source);
  let pos = 0;
  const parts: Buffer[] = [];
  for (const d of data) {
    expect(d.pos).toBe(pos);
    expect(d.data.length).toBeLessThanOrEqual(Math.min(d.size, 16384));
    pos += d.size;
    parts.push(d.data);
  }
  return { bytes: Buffer.concat(parts), size: pos };
}

function listen(handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function portOf(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

function startChild(cmd: string, args: string[], env?: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<string> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const done = new Promise<string>((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`)))),
  );
  return { child, done };
}

let capture: AgentCapture;
let rec: Recorder;
let tmp: string;

beforeAll(async () => {
  if (!existsSync(ADDON)) throw new Error(`${ADDON} is missing: run bash scripts/setup.sh (it builds the native addon)`);
  tmp = mkdtempSync(join(tmpdir(), 'st-bpf-'));
  // 32 MiB: the 10,000-connection run must fit even if this thread is briefly descheduled.
  capture = openAgentCapture({ ringBytes: 32 << 20 });
  rec = new Recorder(capture);
  await capture.ready;
  // The node binary's own OpenSSL (the test runner is node): attached through our own pid.
  expect(await capture.attachTls(process.pid)).toBeGreaterThanOrEqual(1);
});

afterAll(() => {
  capture?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('preflight', () => {
  /** Opens the addon in a node child with some capabilities dropped; prints the error or "ok". */
  async function openWithout(drop: string, tls: boolean): Promise<string> {
    const script = `const a = require(${JSON.stringify(ADDON)}); try { const h = a.open({ tls: ${tls ? 1 : 0} }, () => {}); a.close(h); console.log('ok'); } catch (e) { console.log(e.code + ' ' + e.message); }`;
    const { stdout } = await run('setpriv', ['--inh-caps=-all', `--bounding-set=${drop}`, process.execPath, '-e', script]);
    return stdout.trim();
  }

  it('names missing capabilities instead of failing inside libbpf', async () => {
    expect(await openWithout('-bpf,-perfmon,-sys_admin', false)).toMatch(/^ST_AGENT_MISSING_CAPABILITY .*CAP_BPF missing, CAP_PERFMON missing/);
    // Uprobes need CAP_SYS_ADMIN on current kernels; without TLS, CAP_BPF + CAP_PERFMON suffice.
    expect(await openWithout('-sys_admin', true)).toMatch(/^ST_AGENT_MISSING_CAPABILITY .*CAP_SYS_ADMIN/);
    expect(await openWithout('-sys_admin', false)).toBe('ok');
  });
});

describe('plain HTTP over syscalls', () => {
  it('curl → node:http: open/data/close with 4-tuple, role, payload bytes and continuous positions', async () => {
    const server = await listen((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(`ok:${n}`));
    });
    const port = portOf(server);
    rec.ports.add(port);
    const body = Buffer.alloc(100_000);
    for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
    const file = join(tmp, 'body.bin');
    writeFileSync(file, body);
    const { child, done } = startChild('curl', ['-s', '-H', 'Expect:', '--data-binary', `@${file}`, `http://127.0.0.1:${port}/upload`]);
    expect(await done).toBe('ok:100000');
    server.close();

    const client = await rec.waitFor('curl connection closed', () => {
      const o = rec.opens((e) => e.pid === child.pid && e.remote.port === port)[0];
      return o && rec.closed(o.connId) && o;
    });
    const srv = await rec.waitFor('server connection closed', () => {
      const o = rec.opens((e) => e.pid === process.pid && e.local.port === port)[0];
      return o && rec.closed(o.connId) && o;
    });
    expect(client).toMatchObject({ role: 'client', comm: 'curl', local: { address: '127.0.0.1' }, remote: { address: '127.0.0.1', port } });
    expect(srv).toMatchObject({ role: 'server', local: { address: '127.0.0.1', port }, remote: { address: '127.0.0.1', port: client.local.port } });

    for (const open of [client, srv]) {
      const evs = rec.ofConn(open.connId);
      expect(evs[0]).toBe(open);
      expect(evs.at(-1)!.kind).toBe('close');
      expect(evs.slice(1, -1).every((e) => e.kind === 'data')).toBe(true);
    }
    const cEv = rec.ofConn(client.connId);
    const sEv = rec.ofConn(srv.connId);
    const request = stream(cEv, 'egress', 'syscall');
    expect(request.bytes.subarray(0, 23).toString()).toBe('POST /upload HTTP/1.1\r\n');
    expect(request.bytes.subarray(-body.length).equals(body)).toBe(true);
    expect(request.size).toBe(request.bytes.length); // within the per-call budget: nothing truncated
    expect(stream(sEv, 'ingress', 'syscall').bytes.equals(request.bytes)).toBe(true);
    const response = stream(sEv, 'egress', 'syscall');
    expect(response.bytes.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*ok:100000$/);
    expect(stream(cEv, 'ingress', 'syscall').bytes.equals(response.bytes)).toBe(true);
    // A 100 kB body is more than one 16 KiB event.
    expect(cEv.filter((e) => e.kind === 'data' && e.direction === 'egress').length).toBeGreaterThan(6);
    const close = cEv.at(-1)!;
    expect(close).toMatchObject({ kind: 'close', bytesSent: request.size, bytesReceived: response.bytes.length });
  });

  it('sees sub-millisecond one-request connections whole (python sendto/recvfrom)', async () => {
    const script = `
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
port = srv.getsockname()[1]
for i in range(20):
    c = socket.create_connection(("127.0.0.1", port)); s, _ = srv.accept()
    c.sendall(b"GET /short/%d HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % i); s.recv(4096)
    s.sendall(b"HTTP/1.1 204 No Content\\r\\n\\r\\n"); c.recv(4096)
    c.close(); s.close()
print(port)
`;
    const { child, done } = startChild('python3', ['-c', script]);
    rec.pids.add(child.pid!);
    const port = Number(await done);
    const clients = await rec.waitFor('20 client connections closed', () => {
      const o = rec.opens((e) => e.pid === child.pid && e.role === 'client' && e.remote.port === port);
      return o.length === 20 && o.every((c) => rec.closed(c.connId)) && o;
    });
    const lifetimes: number[] = [];
    clients.forEach((open, i) => {
      const evs = rec.ofConn(open.connId);
      expect(evs.map((e) => (e.kind === 'data' ? `${e.kind}:${e.direction}` : e.kind))).toEqual(['open', 'data:egress', 'data:ingress', 'close']);
      expect((evs[1] as DataEvent).data.toString()).toBe(`GET /short/${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect((evs[2] as DataEvent).data.toString()).toBe('HTTP/1.1 204 No Content\r\n\r\n');
      lifetimes.push(evs[3]!.tsNs - evs[0]!.tsNs);
    });
    const servers = rec.opens((e) => e.pid === child.pid && e.role === 'server' && e.local.port === port);
    expect(servers.length).toBe(20);
    expect(Math.min(...lifetimes)).toBeLessThan(1_000_000);
  });
  it('copies HTTP/2 (curl prior knowledge → node:http2) and leaves other protocols at open/close', async () => {
    const http2 = await import('node:http2');
    const h2 = http2.createServer((_req, res) => res.end('h2 ok'));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    const h2Port = (h2.address() as AddressInfo).port;
    rec.ports.add(h2Port);
    const curl = startChild('curl', ['-s', '--http2-prior-knowledge', `http://127.0.0.1:${h2Port}/h2-path`]);
    expect(await curl.done).toBe('h2 ok');
    h2.close();
    const binary = `
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); s, _ = srv.accept()
c.sendall(bytes(range(256)) * 4); s.recv(65536); s.sendall(b"\\x00\\x01binary reply"); c.recv(65536)
c.close(); s.close()
print(srv.getsockname()[1])
`;
    const py = startChild('python3', ['-c', binary]);
    rec.pids.add(py.child.pid!);
    const binPort = Number(await py.done);

    const h2Client = await rec.waitFor('h2 client closed', () => {
      const o = rec.opens((e) => e.pid === curl.child.pid && e.remote.port === h2Port)[0];
      return o && rec.closed(o.connId) && o;
    });
    const preface = stream(rec.ofConn(h2Client.connId), 'egress', 'syscall').bytes;
    expect(preface.subarray(0, 24).toString('latin1')).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    // The server's side starts with its own SETTINGS frame or the client's preface: both are HTTP/2.
    const h2Server = rec.opens((e) => e.pid === process.pid && e.local.port === h2Port && e.remote.port === h2Client.local.port)[0]!;
    expect(stream(rec.ofConn(h2Server.connId), 'ingress', 'syscall').bytes.equals(preface)).toBe(true);

    const binConns = await rec.waitFor('binary connections closed', () => {
      const o = rec.opens((e) => e.pid === py.child.pid && (e.remote.port === binPort || e.local.port === binPort));
      return o.length === 2 && o.every((c) => rec.closed(c.connId)) && o;
    });
    for (const o of binConns) {
      expect(rec.ofConn(o.connId).map((e) => e.kind)).toEqual(['open', 'close']);
      expect(rec.ofConn(o.connId).at(-1)).toMatchObject({ kind: 'close', bytesSent: o.role === 'client' ? 1024 : 14, bytesReceived: o.role === 'client' ? 14 : 1024 });
    }
  });

  it('10,000 one-request connections as fast as the machine allows: exactly 10,000 seen whole', async () => {
    const script = `
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(128)
port = srv.getsockname()[1]
for i in range(10000):
    c = socket.create_connection(("127.0.0.1", port)); s, _ = srv.accept()
    c.sendall(b"GET /n HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"); s.recv(4096)
    s.sendall(b"HTTP/1.1 204 No Content\\r\\n\\r\\n"); c.recv(4096)
    c.close(); s.close()
print(port)
`;
    const dropsBefore = capture.counters().eventsDropped;
    const { child, done } = startChild('python3', ['-c', script]);
    rec.pids.add(child.pid!);
    const port = Number(await done);
    const whole = (o: ConnOpenEvent) => {
      const evs = rec.ofConn(o.connId);
      return evs.length === 4 && evs[0] === o && evs[3]!.kind === 'close' && evs[1]!.kind === 'data' && evs[2]!.kind === 'data';
    };
    const clients = () => rec.opens((e) => e.pid === child.pid && e.role === 'client' && e.remote.port === port);
    await rec.waitFor('10,000 closed client connections', () => {
      const c = clients();
      return c.length === 10_000 && rec.closed(c[9_999]!.connId);
    }, 30_000).catch(() => undefined);
    expect(capture.counters().eventsDropped - dropsBefore, 'ring buffer drops during the run').toBe(0);
    const seen = clients();
    expect(seen.length).toBe(10_000);
    expect(seen.filter(whole).length).toBe(10_000);
  });
});

/** A port the kernel just handed out (nginx cannot report one it picked itself). */
async function freePort(): Promise<number> {
  const server = await listen(() => undefined);
  const port = portOf(server);
  await new Promise((r) => server.close(r));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  const net = await import('node:net');
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listens on ${port}`);
}

describe('TLS plaintext from OpenSSL uprobes', () => {
  let nginx: { child: ChildProcess; done: Promise<string> };
  let nginxPort: number;
  let sServer: { child: ChildProcess; done: Promise<string> };
  let sServerPort: number;

  beforeAll(async () => {
    const cert = join(tmp, 'cert.pem');
    const key = join(tmp, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
    nginxPort = await freePort();
    const dir = join(tmp, 'nginx');
    await run('mkdir', ['-p', dir]);
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off; master_process on; worker_processes 1; user root; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 128; }
http {
  access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${nginxPort} ssl; ssl_certificate ${cert}; ssl_certificate_key ${key};
    location / { return 200 "hello from nginx\\n"; }
  }
}
`,
    );
    nginx = startChild('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
    nginx.done.catch(() => undefined);
    await waitForPort(nginxPort);
    rec.ports.add(nginxPort);

    sServer = startChild('openssl', ['s_server', '-www', '-accept', '127.0.0.1:0', '-cert', cert, '-key', key]);
    sServer.done.catch(() => undefined);
    sServerPort = await new Promise<number>((resolve, reject) => {
      let out = '';
      sServer.child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      setTimeout(() => reject(new Error(`s_server did not start: ${out}`)), 10_000);
    });
    rec.ports.add(sServerPort);
  });

  afterAll(() => {
    nginx?.child.kill('SIGQUIT');
    sServer?.child.kill();
  });

  /** The client's plaintext on its own connection: request egress at pos 0 on the fd of its
   * open event, response ingress, and no ciphertext copied. */
  async function expectClientTls(pid: number, port: number, path: string, status: RegExp): Promise<ConnOpenEvent> {
    const open = await rec.waitFor(`${path}: client plaintext`, () => {
      const o = rec.opens((e) => e.pid === pid && e.remote.port === port)[0];
      return o && rec.closed(o.connId) && o;
    });
    expect(open.role).toBe('client');
    const evs = rec.ofConn(open.connId);
    const request = evs.find((e): e is DataEvent => e.kind === 'data' && e.source === 'tls' && e.direction === 'egress');
    expect(request?.data.toString()).toMatch(new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n`));
    expect(request).toMatchObject({ pid, fd: open.fd, pos: 0 });
    expect(stream(evs, 'ingress', 'tls').bytes.toString()).toMatch(status);
    // Ciphertext on the socket is recognised in the kernel and not copied.
    expect(evs.some((e) => e.kind === 'data' && e.source === 'syscall')).toBe(false);
    return open;
  }

  /** nginx's side of the same connection: a SERVER connection with the plaintext request in and
   * the response out. */
  async function expectNginxTls(client: ConnOpenEvent, path: string): Promise<void> {
    const open = await rec.waitFor(`${path}: nginx plaintext`, () => {
      const o = rec.opens((e) => e.local.port === nginxPort && e.remote.port === client.local.port)[0];
      return o && rec.ofConn(o.connId).some((e) => e.kind === 'data' && e.source === 'tls' && e.direction === 'egress') && o;
    });
    expect(open).toMatchObject({ role: 'server', comm: 'nginx' });
    const evs = rec.ofConn(open.connId);
    expect(stream(evs, 'ingress', 'tls').bytes.toString()).toMatch(new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n`));
    expect(stream(evs, 'egress', 'tls').bytes.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*hello from nginx\n$/);
  }

  const NGINX_OK = /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello from nginx\n$/;

  it('curl (SSL_read/SSL_write) → nginx, both sides', async () => {
    const { child, done } = startChild('curl', ['-sk', `https://127.0.0.1:${nginxPort}/curl-path`]);
    expect(await done).toBe('hello from nginx\n');
    await expectNginxTls(await expectClientTls(child.pid!, nginxPort, '/curl-path', NGINX_OK), '/curl-path');
  });

  const pythonClient = (path: string, sleep = 0) => `
import socket, ssl, sys, time
time.sleep(${sleep})
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
s.sendall(b"GET ${path} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
while s.recv(65536): pass
`;

  it('python3 (SSL_read_ex/SSL_write_ex) → nginx, both sides', async () => {
    const { child, done } = startChild('python3', ['-c', pythonClient('/python-path'), String(nginxPort)]);
    await done;
    await expectNginxTls(await expectClientTls(child.pid!, nginxPort, '/python-path', NGINX_OK), '/python-path');
  });

  it("node's https client (node's own OpenSSL, memory BIOs) → nginx", async () => {
    const script = `require('https').get({ host: '127.0.0.1', port: ${nginxPort}, path: '/node-path', rejectUnauthorized: false }, (r) => { r.resume(); r.on('end', () => process.exit(0)); });`;
    const { child, done } = startChild(process.execPath, ['-e', script]);
    await done;
    await expectNginxTls(await expectClientTls(child.pid!, nginxPort, '/node-path', NGINX_OK), '/node-path');
  });

  it('curl and python3 → openssl s_server, both sides', async () => {
    // s_server -www reads and writes through BIO_f_ssl, which reaches OpenSSL's internal
    // ssl_read_internal/ssl_write_internal rather than the exported SSL_read/SSL_write; the agent
    // probes those internals in the distribution's libssl, so the server's side is seen too.
    const serverSide = async (client: ConnOpenEvent, path: string) => {
      const open = await rec.waitFor(`${path}: s_server plaintext`, () => {
        const o = rec.opens((e) => e.local.port === sServerPort && e.remote.port === client.local.port)[0];
        return o && rec.ofConn(o.connId).some((e) => e.kind === 'data' && e.source === 'tls' && e.direction === 'egress') && o;
      });
      expect(open).toMatchObject({ role: 'server', comm: 'openssl' });
      const evs = rec.ofConn(open.connId);
      expect(stream(evs, 'ingress', 'tls').bytes.toString()).toMatch(new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n`));
      expect(stream(evs, 'egress', 'tls').bytes.toString()).toMatch(/^HTTP\/1\.0 200 ok\r\n/);
    };
    const curl = startChild('curl', ['-sk', '--http1.1', `https://127.0.0.1:${sServerPort}/s-curl`]);
    await curl.done;
    await serverSide(await expectClientTls(curl.child.pid!, sServerPort, '/s-curl', /^HTTP\/1\.0 200 ok\r\n/), '/s-curl');
    const py = startChild('python3', ['-c', pythonClient('/s-python'), String(sServerPort)]);
    await py.done;
    await serverSide(await expectClientTls(py.child.pid!, sServerPort, '/s-python', /^HTTP\/1\.0 200 ok\r\n/), '/s-python');
  });

  it("hands an exec to user space at once, not at the reader's next poll (50 ms)", async () => {
    // Records below the wakeup threshold wait for the poll; an exec must not, or a short-lived
    // client's handshake would run before its OpenSSL is attached.
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      // spawn returns once the child has exec'ed (libuv waits for it): the delay is counted from
      // there, so the time a slow machine takes to fork and exec does not count against the
      // wakeup.
      const child = spawn('true', { stdio: 'ignore' });
      const t0 = performance.now();
      const exited = new Promise((r) => child.once('exit', r));
      rec.pids.add(child.pid!);
      await rec.waitFor('exec event', () => rec.execSeenAt.get(child.pid!));
      delays.push(rec.execSeenAt.get(child.pid!)! - t0);
      await exited;
    }
    delays.sort((a, b) => a - b);
    // Waiting for the poll, the median would be ~25 ms (below 12 ms in 20 tries: p < 0.5%).
    expect(delays[10]).toBeLessThan(12);
  });

  it('traces a process started later with its own libssl copy, and drops its probes when it exits', async () => {
    // A libssl file no running process maps: only the exec → scan path can find it.
    const libs = join(tmp, 'libs');
    await run('mkdir', ['-p', libs]);
    for (const lib of ['libssl.so.3', 'libcrypto.so.3']) copyFileSync(`/usr/lib/x86_64-linux-gnu/${lib}`, join(libs, lib));
    const before = capture.counters().tlsLibraries;
    const { child, done } = startChild('python3', ['-c', pythonClient('/late-path', 1.5), String(nginxPort)], { LD_LIBRARY_PATH: libs });
    rec.pids.add(child.pid!);
    // What the agent does on exec: scan the new process (again while its libraries load).
    const exec = await rec.waitFor('exec event', () => rec.events.find((e) => e.kind === 'exec' && e.pid === child.pid));
    expect(exec).toMatchObject({ comm: 'python3' });
    void capture.attachTls(child.pid!);
    await rec.waitFor('the copied libssl attached', () => capture.counters().tlsLibraries === before + 1, 5_000);
    await done;
    await expectNginxTls(await expectClientTls(child.pid!, nginxPort, '/late-path', NGINX_OK), '/late-path');
    await rec.waitFor('exit event', () => rec.events.find((e) => e.kind === 'exit' && e.pid === child.pid));
    expect(capture.counters().tlsLibraries).toBe(before);
  });
});

describe('accounting and skipping', () => {
  it('refuses skip lists it cannot honour, naming the field and element (a silent 0 would skip root)', () => {
    const bad: Array<[Parameters<typeof openAgentCapture>[0], RegExp]> = [
      [{ skipUids: [1000, -1], tls: false }, /skipUids\[1\] must be a whole number in 0\.\.4294967295/],
      [{ skipPorts: [70000], tls: false }, /skipPorts\[0\] must be a whole number in 0\.\.65535/],
      [{ skipPids: [1.5], tls: false }, /skipPids\[0\] must be a whole number/],
      [{ skipUids: Array.from({ length: 65 }, (_, i) => i + 1), tls: false }, /skipUids has 65 entries, at most 64/],
    ];
    for (const [opts, msg] of bad) {
      expect(() => openAgentCapture(opts)).toThrow(msg);
      try {
        openAgentCapture(opts);
      } catch (err) {
        expect((err as { code?: string }).code).toBe('ST_AGENT_BAD_ARGS');
      }
    }
  });

  it('loss: with a tiny ring and a blocked consumer, sent - received === dropped', async () => {
    const lossy = openAgentCapture({ ringBytes: 16384, maxPendingBatches: 1, batchBytes: 4096, tls: false });
    let received = 0;
    let lastBatch = Date.now();
    lossy.onBatch((evs) => {
      received += evs.length;
      lastBatch = Date.now();
    });
    try {
      const script = `
import http.server, socket, threading, urllib.request
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
for i in range(300):
    urllib.request.urlopen("http://127.0.0.1:%d/" % srv.server_address[1]).read()
`;
      const traffic = startChild('python3', ['-c', script], {});
      // Block this thread (the consumer) while the traffic runs: the reader's queue fills, the
      // reader waits, the ring overflows.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
      await traffic.done;
      lossy.pause();
      await rec.waitFor('the lossy capture drained', () => Date.now() - lastBatch > 500, 20_000);
      const c = lossy.counters();
      expect(c.eventsDropped).toBeGreaterThan(0);
      expect(c.eventsReceived).toBe(received);
      expect(c.eventsSent - c.eventsReceived).toBe(c.eventsDropped);
    } finally {
      lossy.close();
    }
  });

  it('splits a large write into chunk-sized events and counts what the per-call budget leaves out', async () => {
    const small = openAgentCapture({ chunkBytes: 4096, maxBytesPerCall: 10_000, tls: false });
    const kept: DataEvent[] = [];
    const server = await listen((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    const port = portOf(server);
    let connId = -1;
    small.onBatch((evs) => {
      for (const e of evs) {
        if (e.kind === 'open' && e.role === 'client' && e.remote.port === port) connId = e.connId;
        if (e.kind === 'data' && e.connId === connId && e.direction === 'egress') kept.push({ ...e, data: Buffer.from(e.data) });
      }
    });
    try {
      const body = Buffer.alloc(60_000, 'z');
      const file = join(tmp, 'budget.bin');
      writeFileSync(file, body);
      const before = small.counters().bytesTruncated;
      const { done } = startChild('curl', ['-s', '-H', 'Expect:', '--data-binary', `@${file}`, `http://127.0.0.1:${port}/budget`]);
      expect(await done).toBe('ok');
      await rec.waitFor('the request stream', () => kept.reduce((n, e) => n + e.size, 0) > body.length);
      let pos = 0;
      for (const e of kept) {
        expect(e.pos).toBe(pos);
        expect(e.data.length).toBeLessThanOrEqual(4096);
        pos += e.size;
      }
      // Some call moved more than the budget: its last event covers the rest with fewer bytes.
      expect(kept.some((e) => e.size > e.data.length)).toBe(true);
      const truncated = kept.reduce((n, e) => n + e.size - e.data.length, 0);
      expect(small.counters().bytesTruncated - before).toBeGreaterThanOrEqual(truncated);
    } finally {
      small.close();
      server.close();
    }
  });

  it('skips sockets of skipped ports, uids and pids', async () => {
    const server = await listen((_req, res) => res.end('ok'));
    const skipped = await listen((_req, res) => res.end('ok'));
    const port = portOf(server);
    const skipPort = portOf(skipped);
    const selfSkipped = startChild('python3', ['-c', `import time, urllib.request; time.sleep(1.5); urllib.request.urlopen("http://127.0.0.1:${port}/").read()`]);
    const skipping = openAgentCapture({ skipPorts: [skipPort], skipUids: [65534], skipPids: [selfSkipped.child.pid!], tls: false });
    const seen: AgentEvent[] = [];
    skipping.onBatch((evs) => {
      for (const e of evs) if (e.kind !== 'data') seen.push(e);
    });
    rec.ports.add(port);
    rec.ports.add(skipPort);
    try {
      const toSkipped = startChild('curl', ['-s', `http://127.0.0.1:${skipPort}/`]);
      const asNobody = startChild('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'curl', '-s', `http://127.0.0.1:${port}/`]);
      const asRoot = startChild('curl', ['-s', `http://127.0.0.1:${port}/`]);
      await Promise.all([toSkipped.done, asNobody.done, asRoot.done, selfSkipped.done]);
      // The unfiltered capture saw all three, so the traffic happened.
      for (const { child, p } of [
        { child: toSkipped.child, p: skipPort },
        { child: asNobody.child, p: port },
        { child: asRoot.child, p: port },
        { child: selfSkipped.child, p: port },
      ]) {
        await rec.waitFor('unfiltered close', () => rec.opens((e) => e.pid === child.pid && e.remote.port === p).some((o) => rec.closed(o.connId)));
      }
      // The skipping capture saw root's curl, and nothing of the skipped port or uid.
      await rec.waitFor('root curl in the skipping capture', () => seen.some((e) => e.kind === 'close' && e.pid === asRoot.child.pid));
      const opens = seen.filter((e): e is ConnOpenEvent => e.kind === 'open');
      expect(opens.some((e) => e.local.port === skipPort || e.remote.port === skipPort)).toBe(false);
      expect(seen.some((e) => e.kind !== 'exec' && e.kind !== 'exit' && e.pid === asNobody.child.pid)).toBe(false);
      expect(seen.some((e) => e.kind !== 'exec' && e.kind !== 'exit' && e.pid === selfSkipped.child.pid)).toBe(false);
      // nobody's connection is still seen from the server's (root) side.
      expect(opens.some((e) => e.pid === process.pid && e.local.port === port)).toBe(true);
      expect(skipping.counters().skippedCalls).toBeGreaterThan(0);
    } finally {
      skipping.close();
      server.close();
      skipped.close();
    }
  });
});
