import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PodDirectory, parsePodList } from './k8s-pods.js';
import { parseCgroup, processAttributes } from './process-info.js';

const UID = '1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718';
const CID = 'ab'.repeat(32);

function podList(name: string) {
  return {
    kind: 'PodList',
    apiVersion: 'v1',
    items: [
      {
        metadata: { uid: UID, name, namespace: 'shop' },
        status: { containerStatuses: [{ name: 'api', containerID: `containerd://${CID}` }], initContainerStatuses: [{ name: 'init', containerID: `containerd://${'cd'.repeat(32)}` }] },
      },
      { metadata: { uid: 'other', name: 'pending-pod', namespace: 'shop' }, status: {} },
    ],
  };
}

// An HTTPS server answering the API's pod list like kube-apiserver does (bearer token, fieldSelector).
let server: https.Server;
let dir: string;
let requests: string[] = [];
let podName = 'api-7d9f';
let failing = false;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pods-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'ca.crt')], { stdio: 'ignore' });
  fs.writeFileSync(path.join(dir, 'token'), 'sekret\n');
  server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'ca.crt')) }, (req, res) => {
    requests.push(req.url!);
    if (req.headers.authorization !== 'Bearer sekret') return res.writeHead(401).end('{}');
    if (failing) return res.writeHead(500).end('{}');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(podList(podName)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
}, 20_000);

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('pod directory', () => {
  test('in-cluster config from env and service account files; lists this node\'s pods', async () => {
    const port = (server.address() as AddressInfo).port;
    requests = [];
    const pods = PodDirectory.fromEnv({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port), SIDETRACE_NODE_NAME: 'node-1' }, undefined, dir)!;
    await pods.start();
    pods.stop();
    expect(requests).toEqual(['/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1']);
    expect(pods.lookup(UID)).toEqual({ name: 'api-7d9f', namespace: 'shop', containers: new Map([[CID, 'api'], ['cd'.repeat(32), 'init']]) });
  });

  test('outside a cluster there is no directory', () => {
    expect(PodDirectory.fromEnv({}, undefined, dir)).toBeUndefined();
    expect(PodDirectory.fromEnv({ KUBERNETES_SERVICE_HOST: '127.0.0.1' }, undefined, path.join(dir, 'missing'))).toBeUndefined();
  });

  test('a failed refresh keeps the last good list and says why once', async () => {
    const port = (server.address() as AddressInfo).port;
    const lines: string[] = [];
    const pods = new PodDirectory({ apiUrl: `https://127.0.0.1:${port}`, token: 'sekret', ca: fs.readFileSync(path.join(dir, 'ca.crt')), minRefreshMs: 0, log: (l) => lines.push(l) });
    await pods.refresh();
    failing = true;
    await pods.refresh();
    failing = false;
    expect(pods.lookup(UID)?.name).toBe('api-7d9f');
    expect(lines).toEqual([expect.stringMatching(/cannot list pods \(HTTP 500/)]);
    // Unknown UIDs trigger a refresh that picks up new pods.
    podName = 'api-new';
    expect(pods.lookup('not-yet')).toBeUndefined();
    await pods.refresh();
    expect(pods.lookup(UID)?.name).toBe('api-new');
  });

  test('a wrong token or an untrusted certificate fails closed', async () => {
    const port = (server.address() as AddressInfo).port;
    const lines: string[] = [];
    await new PodDirectory({ apiUrl: `https://127.0.0.1:${port}`, token: 'wrong', ca: fs.readFileSync(path.join(dir, 'ca.crt')), log: (l) => lines.push(l) }).refresh();
    await new PodDirectory({ apiUrl: `https://127.0.0.1:${port}`, token: 'sekret', log: (l) => lines.push(l) }).refresh();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/HTTP 401/);
    expect(lines[1]).toMatch(/certificate/);
  });

  test('parsePodList rejects what is not a pod list', () => {
    expect(() => parsePodList({ kind: 'Status' })).toThrow(/ST_AGENT_PODS_INVALID/);
  });
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

  test('span attributes name the pod and container when the directory knows them', () => {
    const cgroup = parseCgroup(`0::/kubepods/burstable/pod${UID}/${CID}\n`);
    const pods = parsePodList(podList('api-7d9f'));
    expect(processAttributes(42, 'node', { executableName: 'node', cgroup }, (uid) => pods.get(uid))).toEqual({
      'process.pid': 42,
      'process.executable.name': 'node',
      'container.id': CID,
      'k8s.pod.uid': UID,
      'k8s.pod.name': 'api-7d9f',
      'k8s.namespace.name': 'shop',
      'k8s.container.name': 'api',
      'sidetrace.cgroup': `/kubepods/burstable/pod${UID}/${CID}`,
    });
  });
});
