// The agent's pod directory against a real kube-apiserver + etcd (test/support/kube.ts; built by
// scripts/setup.sh): pods created and given container statuses as a kubelet would, listed with a
// service-account token bound to exactly the chart's ClusterRole, and resolved from cgroup paths.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startKube, type Kube } from '../../test/support/kube.js';
import { PodDirectory, parsePodList } from './k8s-pods.js';
import { parseCgroup, processResource, serviceNameFromEnviron } from './process-info.js';

const UID = '1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718';
const CID = 'ab'.repeat(32);
const NS = 'shop';

function podList(name: string) {
  return {
    kind: 'PodList',
    apiVersion: 'v1',
    items: [
      {
        metadata: { uid: UID, name, namespace: NS },
        status: { containerStatuses: [{ name: 'api', containerID: `containerd://${CID}` }], initContainerStatuses: [{ name: 'init', containerID: `containerd://${'cd'.repeat(32)}` }] },
      },
      { metadata: { uid: 'other', name: 'pending-pod', namespace: NS }, status: {} },
    ],
  };
}

let kube: Kube;
let saDir: string;
/** A token of a service account bound to the chart's ClusterRole (pods: get, list, watch). */
let agentToken: string;
/** A token of a service account with no role at all. */
let bareToken: string;

async function ok(method: string, urlPath: string, body?: unknown): Promise<unknown> {
  const r = await kube.request(method, urlPath, body);
  if (r.status >= 300) throw new Error(`${method} ${urlPath} answered ${r.status}: ${r.text}`);
  return r.json;
}

function containerStatus(name: string, id: string, runtime = 'containerd') {
  return { name, containerID: `${runtime}://${id}`, image: `registry.invalid/${name}:1`, imageID: '', ready: true, restartCount: 0, started: true, state: { running: { startedAt: '2026-11-21T00:00:00Z' } } };
}

/** Creates a pod scheduled on nodeName and reports its containers running, as the kubelet does; returns its UID. */
async function createPod(name: string, nodeName: string, containers: Array<[string, string]>, init: Array<[string, string]> = []): Promise<string> {
  const pod = (await ok('POST', `/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: {
      nodeName,
      initContainers: init.map(([n]) => ({ name: n, image: `registry.invalid/${n}:1` })),
      containers: containers.map(([n]) => ({ name: n, image: `registry.invalid/${n}:1` })),
    },
  })) as { metadata: { uid: string } };
  await ok('PATCH', `/api/v1/namespaces/${NS}/pods/${name}/status`, {
    status: {
      phase: 'Running',
      podIP: '10.251.0.2',
      containerStatuses: containers.map(([n, id]) => containerStatus(n, id)),
      initContainerStatuses: init.map(([n, id]) => ({ ...containerStatus(n, id, 'cri-o'), ready: false, state: { terminated: { exitCode: 0, startedAt: '2026-11-21T00:00:00Z', finishedAt: '2026-11-21T00:00:01Z' } } })),
    },
  });
  return pod.metadata.uid;
}

async function serviceAccountToken(name: string): Promise<string> {
  await ok('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } });
  const tr = (await ok('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${name}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } })) as { status: { token: string } };
  return tr.status.token;
}

beforeAll(async () => {
  kube = await startKube();
  await ok('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  // The chart's agent ClusterRole, verbatim (charts/sidetrace/templates/agent-rbac.yaml).
  await ok('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'sidetrace-agent' },
    rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
  });
  await ok('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'sidetrace-agent' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'sidetrace-agent' },
    subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: NS }],
  });
  agentToken = await serviceAccountToken('agent');
  bareToken = await serviceAccountToken('nobody');
  // The in-cluster service-account mount, as the kubelet projects it.
  saDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pods-sa-'));
  fs.writeFileSync(path.join(saDir, 'token'), agentToken + '\n');
  fs.writeFileSync(path.join(saDir, 'ca.crt'), kube.ca);
}, 120_000);

afterAll(async () => {
  await kube?.stop();
  if (saDir) fs.rmSync(saDir, { recursive: true, force: true });
}, 30_000);

const apiPort = () => new URL(kube.url).port;

describe('pod directory (real kube-apiserver)', () => {
  let webUid: string;
  const WEB_CID = 'ab'.repeat(32);
  const SIDE_CID = 'ef'.repeat(32);
  const INIT_CID = '12'.repeat(32);

  test("in-cluster config from env and the service account mount; lists this node's pods only", async () => {
    webUid = await createPod('web-7d9f', 'node-1', [['web', WEB_CID], ['sidetrace-proxy', SIDE_CID]], [['migrate', INIT_CID]]);
    const otherUid = await createPod('elsewhere', 'node-2', [['app', '34'.repeat(32)]]);
    const lines: string[] = [];
    const pods = PodDirectory.fromEnv({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: apiPort(), SIDETRACE_NODE_NAME: 'node-1' }, (l) => lines.push(l), saDir)!;
    expect(pods).toBeDefined();
    await pods.start();
    pods.stop();
    expect(lines).toEqual([]);
    expect(pods.size).toBe(1);
    expect(pods.lookup(webUid)).toEqual({
      name: 'web-7d9f',
      namespace: NS,
      containers: new Map([
        [WEB_CID, 'web'],
        [SIDE_CID, 'sidetrace-proxy'],
        [INIT_CID, 'migrate'],
      ]),
    });
    expect(pods.lookup(otherUid)).toBeUndefined();
  });

  test('a process in a pod container gets pod name, namespace and container name in its resource', async () => {
    const pods = new PodDirectory({ apiUrl: kube.url, token: agentToken, ca: kube.ca, nodeName: 'node-1' });
    await pods.refresh();
    // The kubelet's systemd cgroup driver writes the pod UID with underscores.
    const cgroup = parseCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${webUid.replace(/-/g, '_')}.slice/cri-containerd-${SIDE_CID}.scope\n`);
    expect(processResource(42, 'node', { executableName: 'node', cgroup }, (uid) => pods.lookup(uid))).toMatchObject({
      'container.id': SIDE_CID,
      'k8s.pod.uid': webUid,
      'k8s.pod.name': 'web-7d9f',
      'k8s.namespace.name': NS,
      'k8s.container.name': 'sidetrace-proxy',
      'service.name': 'sidetrace-proxy',
      'service.namespace': NS,
    });
  });

  test('a pod started after the list is found by the refresh its unknown UID triggers', async () => {
    const pods = new PodDirectory({ apiUrl: kube.url, token: agentToken, ca: kube.ca, nodeName: 'node-1', minRefreshMs: 0 });
    await pods.refresh();
    const lateUid = await createPod('late-1', 'node-1', [['job', '56'.repeat(32)]]);
    expect(pods.lookup(lateUid)).toBeUndefined();
    await pods.refresh(); // joins the refresh the lookup started
    expect(pods.lookup(lateUid)?.name).toBe('late-1');
    expect(pods.lookup(lateUid)?.containers.get('56'.repeat(32))).toBe('job');
    // Deleted pods leave the directory at the next list.
    await ok('DELETE', `/api/v1/namespaces/${NS}/pods/late-1?gracePeriodSeconds=0`);
    await pods.refresh();
    expect(pods.lookup(lateUid)).toBeUndefined();
  });

  test('a token without the role, a wrong token, or an untrusted certificate fail closed and say why', async () => {
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const denied = new PodDirectory({ apiUrl: kube.url, token: bareToken, ca: kube.ca, log });
    await denied.refresh();
    await new PodDirectory({ apiUrl: kube.url, token: 'wrong', ca: kube.ca, log }).refresh();
    await new PodDirectory({ apiUrl: kube.url, token: agentToken, log }).refresh();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/cannot list pods \(HTTP 403/);
    expect(lines[1]).toMatch(/cannot list pods \(HTTP 401/);
    expect(lines[2]).toMatch(/certificate/);
    expect(denied.size).toBe(0);
  });

  test('outside a cluster there is no directory', () => {
    expect(PodDirectory.fromEnv({}, undefined, saDir)).toBeUndefined();
    expect(PodDirectory.fromEnv({ KUBERNETES_SERVICE_HOST: '127.0.0.1' }, undefined, path.join(saDir, 'missing'))).toBeUndefined();
  });

  test('parsePodList rejects what is not a pod list (the API server\'s own Status answer)', async () => {
    const status = await kube.request('GET', `/api/v1/namespaces/${NS}/pods/no-such-pod`);
    expect(status.status).toBe(404);
    expect(() => parsePodList(status.json)).toThrow(/ST_AGENT_PODS_INVALID/);
  });

  // Last: stops the API server.
  test('when the API server goes away the last good list is kept, and the failure is said a few times only', async () => {
    const lines: string[] = [];
    const pods = new PodDirectory({ apiUrl: kube.url, token: agentToken, ca: kube.ca, nodeName: 'node-1', minRefreshMs: 0, log: (l) => lines.push(l) });
    await pods.refresh();
    await kube.stop();
    for (let i = 0; i < 5; i++) await pods.refresh();
    expect(pods.lookup(webUid)?.name).toBe('web-7d9f');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/cannot list pods \(.*ECONNREFUSED/);
  }, 30_000);
});

describe('cgroup identity', () => {
  const cases: Array<[string, string, { containerId?: string; podUid?: string }]> = [
    ['systemd driver (containerd)', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replace(/-/g, '_')}.slice/cri-containerd-${CID}.scope`, { containerId: CID, podUid: UID }],
    ['cgroupfs driver', `0::/kubepods/besteffort/pod${UID}/${CID}`, { containerId: CID, podUid: UID }],
    ['cri-o', `0::/kubepods.slice/kubepods-pod${UID.replace(/-/g, '_')}.slice/crio-${CID}.scope`, { containerId: CID, podUid: UID }],
    ['docker outside kubernetes', `0::/system.slice/docker-${CID}.scope`, { containerId: CID }],
    ['cgroup v1 lines', `12:memory:/docker/${CID}\n11:cpu,cpuacct:/docker/${CID}\n1:name=systemd:/init.scope`, { containerId: CID }],
    ['a host process', '0::/user.slice/user-0.slice/session-3.scope', {}],
  ];
  for (const [name, text, want] of cases) {
    test(name, () => {
      const id = parseCgroup(text + '\n')!;
      expect({ containerId: id.containerId, podUid: id.podUid }).toEqual({ containerId: want.containerId, podUid: want.podUid });
    });
  }

  test('the resource names the pod and container when the directory knows them; the container names the service', () => {
    const cgroup = parseCgroup(`0::/kubepods/burstable/pod${UID}/${CID}\n`);
    const pods = parsePodList(podList('api-7d9f'));
    expect(processResource(42, 'node', { executableName: 'node', cgroup }, (uid) => pods.get(uid))).toEqual({
      'service.name': 'api',
      'service.namespace': 'shop',
      'process.pid': 42,
      'process.executable.name': 'node',
      'container.id': CID,
      'k8s.pod.uid': UID,
      'k8s.pod.name': 'api-7d9f',
      'k8s.namespace.name': 'shop',
      'k8s.container.name': 'api',
      'sidetrace.cgroup': `/kubepods/burstable/pod${UID}/${CID}`,
    });
    // The process's own OTEL_SERVICE_NAME wins; without a pod, the executable names the service.
    expect(processResource(42, 'node', { executableName: 'node', cgroup, serviceName: 'checkout' }, (uid) => pods.get(uid))['service.name']).toBe('checkout');
    expect(processResource(42, 'node', { executableName: 'node', cgroup: parseCgroup('0::/system.slice/x.service\n') })).toEqual({
      'service.name': 'node',
      'process.pid': 42,
      'process.executable.name': 'node',
      'sidetrace.cgroup': '/system.slice/x.service',
    });
  });

  test('OTEL_SERVICE_NAME is read from a NUL-separated environment, blank meaning unset', () => {
    const env = (...vars: string[]) => Buffer.from(vars.join('\0') + '\0');
    expect(serviceNameFromEnviron(env('PATH=/bin', 'OTEL_SERVICE_NAME=cart', 'HOME=/'))).toBe('cart');
    expect(serviceNameFromEnviron(env('OTEL_SERVICE_NAME=cart'))).toBe('cart');
    expect(serviceNameFromEnviron(Buffer.from('A=1\0OTEL_SERVICE_NAME=tail-without-nul'))).toBe('tail-without-nul');
    expect(serviceNameFromEnviron(env('OTEL_SERVICE_NAME=  '))).toBeUndefined();
    expect(serviceNameFromEnviron(env('OTEL_SERVICE_NAME='))).toBeUndefined();
    expect(serviceNameFromEnviron(env('XOTEL_SERVICE_NAME=no', 'OTEL_SERVICE_NAMES=no'))).toBeUndefined();
    expect(serviceNameFromEnviron(Buffer.alloc(0))).toBeUndefined();
    // Duplicates: the first counts, as getenv gives the process itself.
    expect(serviceNameFromEnviron(env('OTEL_SERVICE_NAME=first', 'OTEL_SERVICE_NAME=second'))).toBe('first');
    expect(serviceNameFromEnviron(env('OTEL_SERVICE_NAME=first', 'OTEL_SERVICE_NAME= '))).toBe('first');
  });
});
