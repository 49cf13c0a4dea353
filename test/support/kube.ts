// A real kube-apiserver backed by a real etcd (envtest-style: no kubelet, no controllers beyond
// the API server's own), built by scripts/build-kube.sh, for tests that need the Kubernetes API.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './proxy-process.js';
import { cachedTool } from './tools.js';

export interface KubeResponse {
  status: number;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

export interface Kube {
  /** https://127.0.0.1:PORT */
  url: string;
  /** Bearer token of a system:masters user. */
  token: string;
  /** The API server's self-signed serving certificate and its CA (PEM), to verify it with. */
  ca: Buffer;
  caFile: string;
  /** An authenticated call; a non-string body is sent as JSON, or as a merge patch for PATCH. */
  request(method: string, urlPath: string, body?: unknown): Promise<KubeResponse>;
  /** The last lines etcd and kube-apiserver logged, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

interface Child {
  proc: ChildProcess;
  log: () => string;
}

const START_TIMEOUT_MS = 90_000;

/**
 * Starts etcd and kube-apiserver on free loopback ports with their state in a temp dir, and
 * resolves once /readyz answers ok and the default namespace exists.
 */
export async function startKube(): Promise<Kube> {
  const etcdBin = cachedTool('etcd');
  const apiBin = cachedTool('kube-apiserver');
  for (const bin of [etcdBin, apiBin]) {
    if (!existsSync(bin)) throw new Error(`ST_KUBE_MISSING: ${bin} not found: run scripts/setup.sh (it builds etcd and kube-apiserver via scripts/build-kube.sh)`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidetrace-kube-'));
  const children: Child[] = [];
  const stopAll = async (): Promise<void> => {
    // The API server first: stopping etcd under it makes it log errors and linger.
    for (const c of [...children].reverse()) await stopChild(c.proc);
    rmSync(dir, { recursive: true, force: true });
  };
  const logs = (): string => children.map((c) => c.log()).join('\n');
  try {
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    children.push(start('etcd', etcdBin, [
      '--name', 'sidetrace-test',
      '--data-dir', path.join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `sidetrace-test=${peerUrl}`,
      '--unsafe-no-fsync', '--log-level', 'warn',
    ]));
    await waitUntil('etcd /health', children[0], async () => {
      const r = await call(new URL('/health', etcdUrl), 'GET');
      return r.status === 200 && /"health":\s*"true"/.test(r.text);
    });

    // No controller-manager runs, so tokens are only what tokens.csv says: one admin, and the
    // service-account key pair exists just because the API server refuses to start without one.
    const token = randomBytes(16).toString('hex');
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    writeFileSync(path.join(dir, 'sa.pub'), publicKey);
    writeFileSync(path.join(dir, 'sa.key'), privateKey, { mode: 0o600 });
    writeFileSync(path.join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
    const certDir = path.join(dir, 'certs');
    const url = `https://127.0.0.1:${apiPort}`;
    children.push(start('kube-apiserver', apiBin, [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${certDir}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--authorization-mode=RBAC',
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      `--service-account-issuer=${url}`,
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      '--disable-admission-plugins=ServiceAccount',
    ]));
    const caFile = path.join(certDir, 'apiserver.crt');
    let ca: Buffer | undefined;
    const request = (method: string, urlPath: string, body?: unknown): Promise<KubeResponse> =>
      call(new URL(urlPath, url), method, body, { authorization: `Bearer ${token}` }, ca);
    // The serving certificate is written at startup, before the port opens.
    await waitUntil('kube-apiserver serving certificate', children[1], async () => existsSync(caFile));
    ca = readFileSync(caFile);
    await waitUntil('kube-apiserver /readyz', children[1], async () => (await request('GET', '/readyz')).text === 'ok');
    // The API server creates the system namespaces from a post-start hook that /readyz does not wait for.
    await waitUntil('namespace default', children[1], async () => (await request('GET', '/api/v1/namespaces/default')).status === 200);
    return { url, token, ca, caFile, request, logs, stop: stopAll };
  } catch (e) {
    const detail = logs();
    await stopAll();
    (e as Error).message += detail ? `\n--- etcd / kube-apiserver output (last lines) ---\n${detail}` : '';
    throw e;
  }
}

function start(name: string, bin: string, args: string[]): Child {
  // A clean environment: the API server's pod proxy honours HTTP(S)_PROXY, which must not carry
  // test traffic off the machine.
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  // Keep only the tail: the API server logs a lot at startup, and only the end explains a failure.
  const lines: string[] = [];
  const keep = (d: Buffer): void => {
    for (const l of d.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(`${name}: ${l}`);
    if (lines.length > 60) lines.splice(0, lines.length - 60);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  proc.on('error', (e) => lines.push(`${name}: spawn failed: ${e.message}`));
  return { proc, log: () => lines.join('\n') };
}

async function waitUntil(what: string, child: Child, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`ST_KUBE_START: ${what}: the process exited (${child.proc.exitCode ?? child.proc.signalCode})`);
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`ST_KUBE_START: ${what} not ready after ${START_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function call(url: URL, method: string, body?: unknown, headers: Record<string, string> = {}, ca?: Buffer): Promise<KubeResponse> {
  const h: Record<string, string> = { accept: 'application/json', ...headers };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
  }
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    };
    const req = url.protocol === 'https:' ? https.request(url, { method, headers: h, ca }, onResponse) : http.request(url, { method, headers: h }, onResponse);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A network namespace standing in for a pod: a veth pair to the host, a /30 in 10.250.7.0/24. */
export interface PodNetns {
  name: string;
  /** The host side of the veth: where the API server's connections to the pod come from. */
  hostIP: string;
  podIP: string;
  /** Spawns a command inside the namespace. */
  spawn(cmd: string, args: string[], env?: Record<string, string>): ChildProcess;
  /** Deletes the namespace (and with it the veth pair); safe to call twice. */
  remove(): void;
}

const NETNS_PREFIX = 'stkube-';

/**
 * Creates a network namespace with loopback up and a veth pair to the root namespace, named per
 * run (several runs may share a host); the /30 is random among those not already assigned.
 * Namespaces left by runs whose process is gone are removed first.
 */
export function createPodNetns(): PodNetns {
  removeStaleNetns();
  const used = ip(['-o', '-4', 'addr', 'show']);
  let block = -1;
  for (let tries = 0; tries < 64 && block < 0; tries++) {
    const b = Math.floor(Math.random() * 64) * 4;
    if (!used.includes(`10.250.7.${b + 1}/`) && !used.includes(`10.250.7.${b + 2}/`)) block = b;
  }
  if (block < 0) throw new Error('ST_KUBE_NETNS: no free /30 in 10.250.7.0/24');
  const id = randomBytes(3).toString('hex');
  const name = `${NETNS_PREFIX}${process.pid}-${id}`;
  // Interface names are limited to 15 characters.
  const hostIf = `stk${id}h`;
  const podIf = `stk${id}p`;
  const hostIP = `10.250.7.${block + 1}`;
  const podIP = `10.250.7.${block + 2}`;
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    ipQuiet(['netns', 'del', name]);
    // The host end normally goes with its peer; this covers a failure before the move.
    ipQuiet(['link', 'del', hostIf]);
  };
  try {
    ip(['netns', 'add', name]);
    ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', podIf]);
    ip(['link', 'set', podIf, 'netns', name]);
    ip(['addr', 'add', `${hostIP}/30`, 'dev', hostIf]);
    ip(['link', 'set', hostIf, 'up']);
    ip(['-n', name, 'addr', 'add', `${podIP}/30`, 'dev', podIf]);
    ip(['-n', name, 'link', 'set', podIf, 'up']);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    remove();
    throw e;
  }
  return {
    name,
    hostIP,
    podIP,
    spawn: (cmd, args, env = {}) =>
      spawn('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', ...env } }),
    remove,
  };
}

function removeStaleNetns(): void {
  for (const line of ip(['netns', 'list']).split('\n')) {
    const m = new RegExp(`^(${NETNS_PREFIX}(\\d+)-[0-9a-f]+)`).exec(line);
    if (!m || Number(m[2]) === process.pid) continue;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      ipQuiet(['netns', 'del', m[1]]);
    }
  }
}

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`ST_KUBE_NETNS: ip ${args.join(' ')} failed (root and iproute2 are needed): ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
  }
}

function ipQuiet(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}

/**
 * Creates a Pod object and marks it Running at podIP through the status subresource, as a kubelet
 * would; with no kubelet, that is all the API server's pod proxy needs to dial the pod.
 */
export async function createRunningPod(kube: Kube, namespace: string, name: string, podIP: string, labels: Record<string, string> = {}): Promise<void> {
  const base = `/api/v1/namespaces/${namespace}/pods`;
  const created = await kube.request('POST', base, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: { containers: [{ name: 'app', image: 'registry.invalid/app:test' }] },
  });
  if (created.status !== 201) throw new Error(`ST_KUBE_POD: creating pod ${namespace}/${name} answered ${created.status}: ${created.text}`);
  const patched = await kube.request('PATCH', `${base}/${name}/status`, {
    status: { phase: 'Running', podIP, podIPs: [{ ip: podIP }], conditions: [{ type: 'Ready', status: 'True' }] },
  });
  if (patched.status !== 200) throw new Error(`ST_KUBE_POD: marking pod ${namespace}/${name} Running answered ${patched.status}: ${patched.text}`);
}
