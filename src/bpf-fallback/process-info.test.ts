import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, expect, test } from 'vitest';
import { ProcessInfoCache, processResource, sharedResource } from './process-info.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function sleeper(env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn('sleep', ['30'], { env, stdio: 'ignore' });
  children.push(child);
  return child;
}

test('a live process: executable name from /proc/<pid>/exe, service name from its OTEL_SERVICE_NAME', async () => {
  const named = sleeper({ PATH: process.env.PATH, OTEL_SERVICE_NAME: 'inventory' });
  const unnamed = sleeper({ PATH: process.env.PATH });
  await new Promise((r) => setTimeout(r, 100)); // exec done
  const cache = new ProcessInfoCache();
  expect(cache.get(named.pid!, 'sleep')).toMatchObject({ executableName: 'sleep', serviceName: 'inventory' });
  const info = cache.get(unnamed.pid!, 'sleep');
  expect(info.executableName).toBe('sleep');
  expect(info.serviceName).toBeUndefined();
  expect(info.cgroup?.path).toMatch(/^\//);
});

test('a pid that is gone keeps the kernel comm and no service name', () => {
  expect(new ProcessInfoCache().get(2 ** 22 + 12345, 'ghost')).toEqual({ executableName: 'ghost', cgroup: undefined, serviceName: undefined });
});

test("a process's resource shares the node's attributes of the agent's own, never the agent's own identity", () => {
  const agent = {
    'k8s.pod.name': 'sidetrace-agent-x7k2p',
    'k8s.namespace.name': 'sidetrace',
    'k8s.pod.uid': 'agent-uid',
    'k8s.daemonset.name': 'sidetrace-agent',
    'k8s.node.name': 'node-1',
    'k8s.cluster.name': 'prod',
    'deployment.environment.name': 'prod',
    'host.name': 'node-1',
    'service.name': 'sidetrace-agent',
    'service.version': '1',
    'process.pid': '1',
    'container.id': 'c',
    'telemetry.sdk.name': 'sidetrace',
  };
  const shared = sharedResource(agent);
  expect(shared).toEqual({ 'k8s.node.name': 'node-1', 'k8s.cluster.name': 'prod', 'deployment.environment.name': 'prod', 'host.name': 'node-1', 'telemetry.sdk.name': 'sidetrace' });
  // A host process (no pod): none of the agent's pod identity leaks into its resource.
  expect(processResource(7, 'cron', { executableName: 'cron' }, undefined, shared)).toEqual({ 'service.name': 'cron', 'process.pid': 7, 'process.executable.name': 'cron', ...shared });
  // Keys named like Object.prototype members (possible through OTEL_RESOURCE_ATTRIBUTES) are kept.
  expect(processResource(7, 'cron', { executableName: 'cron' }, undefined, { constructor: 'x', toString: 'y' })).toMatchObject({ constructor: 'x', toString: 'y' });
});
