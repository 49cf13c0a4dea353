// `sidetrace tap` in a cluster (issue 4): a real kube-apiserver + etcd, a Pod object whose IP is a
// network namespace where a real `sidetrace proxy` fronts an app, and the tap CLI reading the
// proxy's admin /tap through the API server's pod proxy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { CLI } from '../support/proxy-process.js';
import { createPodNetns, createRunningPod, startKube, type Kube, type PodNetns } from '../support/kube.js';

const APP_LISTENING = /^listening (\d+)$/m;
// The app inside the pod: /books/order is overloaded (503), anything else under /books is fine.
const APP = `
const http = require('node:http');
const s = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const status = req.url === '/books/order' ? 503 : req.url.startsWith('/books') ? 200 : 404;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status, got: body }));
  });
});
s.listen(0, '127.0.0.1', () => console.log('listening ' + s.address().port));
`;
const PROXY_PORT = 8080;
const ADMIN_PORT = 15000;

let kube: Kube;
let pod: PodNetns;
let app: ChildProcess;
let proxy: ChildProcess;
let proxyErr = '';
const podName = `books-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  kube = await startKube();
  pod = createPodNetns();
  app = pod.spawn(process.execPath, ['-e', APP]);
  let appOut = '';
  app.stdout!.on('data', (d) => (appOut += d));
  const appPort = Number((await waitFor('app to listen', () => APP_LISTENING.exec(appOut)?.[1], app))!);
  // Spans go nowhere (no collector here): the tap sees every request regardless of export.
  proxy = pod.spawn(process.execPath, [
    CLI, 'proxy',
    '--inbound', `${pod.podIP}:${PROXY_PORT}=127.0.0.1:${appPort}`,
    '--admin', `${pod.podIP}:${ADMIN_PORT}`,
    '--service-name', 'book-orders',
  ], { OTEL_TRACES_EXPORTER: 'none' });
  proxy.stderr!.on('data', (d) => (proxyErr += d));
  await waitFor('sidetrace proxy to start', () => /^ {2}inbound /m.test(proxyErr) || undefined, proxy);
  await createRunningPod(kube, 'default', podName, pod.podIP, { app: 'books' });
}, 150_000);

afterAll(async () => {
  for (const p of [proxy, app]) await stop(p);
  pod?.remove();
  await kube?.stop();
}, 60_000);

describe('sidetrace tap through the API server pod proxy', () => {
  it('streams exactly the requests sent to the pod, with bodies, labelled namespace/pod', async () => {
    await tapClients(0);
    const tap = runTap(['--token', kube.token, '--max-events', '3']);
    // The tap is live only: requests sent before it subscribes are not streamed.
    await tapClients(1);
    expect(await curl('GET', '/books/list')).toBe(200);
    expect(await curl('POST', '/books/order', '{"bookId":"b2","quantity":2}')).toBe(503);
    expect(await curl('DELETE', '/books/b1')).toBe(200);
    const { code, stdout, stderr } = await tap.done;
    expect(code, stderr).toBe(0);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => [e.attributes['http.request.method'], e.attributes['url.path'], e.attributes['http.response.status_code']])).toEqual([
      ['GET', '/books/list', 200],
      ['POST', '/books/order', 503],
      ['DELETE', '/books/b1', 200],
    ]);
    for (const e of events) {
      expect(e.source).toBe(`default/${podName}`);
      // The service name came from the proxy's /config, also read through the pod proxy.
      expect(e.service).toBe('book-orders');
    }
    expect(events[1].attributes).toMatchObject({
      'http.request.body.content': '{"bookId":"b2","quantity":2}',
      'http.response.body.content': '{"status":503,"got":"{\\"bookId\\":\\"b2\\",\\"quantity\\":2}"}',
    });
  }, 30_000);

  it('applies filters on the cluster path: only the 5xx POST is printed', async () => {
    await tapClients(0);
    const tap = runTap(['--token', kube.token, '--status', '5xx', '--method', 'POST', '--max-events', '1']);
    await tapClients(1);
    expect(await curl('GET', '/books/order')).toBe(503);
    expect(await curl('POST', '/books/validate', '{"bookId":"b1"}')).toBe(200);
    expect(await curl('GET', '/nowhere')).toBe(404);
    expect(await curl('POST', '/books/order', '{"bookId":"b3"}')).toBe(503);
    const { code, stdout, stderr } = await tap.done;
    expect(code, stderr).toBe(0);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events).toHaveLength(1);
    expect(events[0].attributes).toMatchObject({
      'http.request.method': 'POST',
      'url.path': '/books/order',
      'http.response.status_code': 503,
      'http.request.body.content': '{"bookId":"b3"}',
    });
  }, 30_000);

  it('fails with a clear 401 error and a non-zero exit on a wrong token', async () => {
    // A tap that keeps retrying instead of failing is killed after 8 s, and fails the test.
    const tap = runTap(['--token', 'not-the-token', '--max-events', '1'], 8_000);
    const { code, stdout, stderr } = await tap.done;
    expect(stdout).toBe('');
    expect(stderr).toMatch(/401/);
    expect(stderr).toContain(`default/${podName}`);
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    // The API server refused it: the stream never reached the pod.
    await tapClients(0);
  }, 30_000);
});

/** Runs the tap CLI against the API server; a run still going after limitMs is killed (code null). */
function runTap(extra: string[], limitMs = 20_000): { done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [
    CLI, 'tap',
    '--apiserver', kube.url, '--ca-file', kube.caFile,
    '--namespace', 'default', '--pod', podName, '--admin-port', String(ADMIN_PORT),
    '-o', 'json', ...extra,
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const done = once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
  return { done };
}

/**
 * Waits until the proxy counts exactly n tap clients, reading its admin /metrics through the pod
 * proxy too. Each test first waits for 0, so an earlier tap whose stream the API server has not
 * closed yet is never mistaken for the new one.
 */
async function tapClients(n: number): Promise<void> {
  const line = new RegExp(`^sidetrace_tap_clients ${n}$`, 'm');
  await waitFor(`${n} tap client(s)`, async () => {
    const r = await kube.request('GET', `/api/v1/namespaces/default/pods/${podName}:${ADMIN_PORT}/proxy/metrics`);
    return r.status === 200 && line.test(r.text) ? true : undefined;
  });
}

/** Sends a request from inside the pod's namespace to the proxy's inbound listener; the status. */
async function curl(method: string, path: string, body?: string): Promise<number> {
  const args = ['-sS', '--noproxy', '*', '-o', '/dev/null', '-w', '%{http_code}', '-X', method, '-H', 'content-type: application/json'];
  if (body !== undefined) args.push('--data-binary', body);
  const child = pod.spawn('curl', [...args, `http://${pod.podIP}:${PROXY_PORT}${path}`]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`curl ${method} ${path} exited ${code}: ${err}`);
  return Number(out);
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, proc?: ChildProcess): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`waiting for ${what}: the process exited ${proc.exitCode}: ${proxyErr}`);
    const v = await Promise.resolve(probe()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; proxy output: ${proxyErr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, 'exit');
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
