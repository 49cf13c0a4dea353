// The Helm chart, rendered and linted by the real `helm` (built by scripts/setup.sh), then
// checked for what a cluster admin relies on: the agent is never privileged, has exactly the
// capabilities it documents (SYS_ADMIN only when TLS capture is on), sees the host's processes,
// and mounts kernel interfaces read-only.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { cachedTool } from '../support/tools.js';

const run = promisify(execFile);
const CHART = fileURLToPath(new URL('../../charts/sidetrace', import.meta.url));
const HELM = cachedTool('helm');

async function helm(...args: string[]): Promise<string> {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run scripts/setup.sh (it builds helm from the Go module proxy)`);
  const { stdout } = await run(HELM, args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

async function render(...set: string[]): Promise<Obj[]> {
  const out = await helm('template', 'st', CHART, '--namespace', 'sidetrace-system', ...set.flatMap((s) => ['--set', s]));
  return parseAllDocuments(out)
    .map((d) => d.toJS())
    .filter(Boolean);
}

describe('Helm chart', () => {
  it('passes helm lint (strict)', async () => {
    const out = await helm('lint', '--strict', CHART);
    expect(out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders the agent DaemonSet with named capabilities, never privileged, hostPID, read-only kernel mounts', async () => {
    const docs = await render();
    const ds = docs.find((d) => d.kind === 'DaemonSet');
    expect(ds.metadata.name).toBe('st-sidetrace-agent');
    expect(ds.metadata.namespace).toBe('sidetrace-system');
    const pod = ds.spec.template.spec;
    expect(pod.hostPID).toBe(true);
    const [c] = pod.containers;
    expect(c.securityContext.privileged).toBe(false);
    expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
    // TLS is on by default, and uprobes need SYS_ADMIN on current kernels.
    expect(c.securityContext.capabilities.add).toEqual(['BPF', 'PERFMON', 'SYS_PTRACE', 'DAC_READ_SEARCH', 'SYS_RESOURCE', 'SYS_ADMIN']);
    expect(c.args).not.toContain('--no-tls');
    const mounts = Object.fromEntries(c.volumeMounts.map((m: Obj) => [m.mountPath, m.readOnly]));
    expect(mounts).toMatchObject({ '/sys/kernel/btf': true, '/sys/kernel/tracing': true });
    const hostPaths = pod.volumes.map((v: Obj) => v.hostPath?.path);
    expect(hostPaths).toEqual(expect.arrayContaining(['/sys/kernel/btf', '/sys/kernel/tracing']));
    expect(c.args[0]).toBe('agent');
    expect(c.env.find((e: Obj) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT').value).toBe('http://otel-collector.observability.svc:4317');
    expect(c.env.find((e: Obj) => e.name === 'SIDETRACE_NODE_NAME').valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
    for (const d of docs) {
      expect(d.metadata.labels['app.kubernetes.io/managed-by']).toBe('Helm');
      expect(d.metadata.labels['app.kubernetes.io/part-of']).toBe('sidetrace');
    }
    // Least privilege for the API: read pods, nothing else.
    const role = docs.find((d) => d.kind === 'ClusterRole');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
  });

  it('agent.tls=false passes --no-tls and drops SYS_ADMIN; SYS_ADMIN is never listed twice', async () => {
    const agent = (docs: Obj[]) => docs.find((d) => d.kind === 'DaemonSet').spec.template.spec.containers[0];
    const off = agent(await render('agent.tls=false'));
    expect(off.args).toContain('--no-tls');
    expect(off.securityContext.capabilities.add).toEqual(['BPF', 'PERFMON', 'SYS_PTRACE', 'DAC_READ_SEARCH', 'SYS_RESOURCE']);
    const listed = agent(await render('agent.capabilities={BPF,PERFMON,SYS_ADMIN}'));
    expect(listed.securityContext.capabilities.add).toEqual(['BPF', 'PERFMON', 'SYS_ADMIN']);
    expect(listed.securityContext.privileged).toBe(false);
  });

  it('mounts a capture policy from values; an edit reaches running agents live, without a rollout', async () => {
    const a = await render('agent.policy=default: {sample: 0.5}');
    const b = await render('agent.policy=default: {sample: 0.25}');
    const cm = a.find((d) => d.kind === 'ConfigMap');
    expect(cm.data['policy.yaml'].trim()).toBe('default: {sample: 0.5}');
    const dsA = a.find((d) => d.kind === 'DaemonSet');
    const dsB = b.find((d) => d.kind === 'DaemonSet');
    expect(dsA.spec.template.spec.containers[0].args).toContain('--policy=/etc/sidetrace/policy.yaml');
    // The agent reloads the file when the kubelet swaps the ConfigMap's ..data link (PolicyStore),
    // which needs a directory mount, not subPath; restarting every agent would drop their
    // connection state, so the pod template does not change with the policy.
    expect(dsA.spec.template.spec.containers[0].volumeMounts.find((m: Obj) => m.name === 'policy')).toEqual({ name: 'policy', mountPath: '/etc/sidetrace', readOnly: true });
    expect(dsA.spec.template).toEqual(dsB.spec.template);
  });

  it('bounds the agent: CPU and memory requests and limits, a small V8 young generation', async () => {
    const agent = (docs: Obj[]) => docs.find((d) => d.kind === 'DaemonSet').spec.template.spec.containers[0];
    const c = agent(await render());
    expect(c.resources).toEqual({ requests: { cpu: '250m', memory: '160Mi' }, limits: { cpu: '1', memory: '384Mi' } });
    expect(c.env.find((e: Obj) => e.name === 'NODE_OPTIONS').value).toBe('--max-semi-space-size=4');
    const unset = agent(await render('agent.nodeOptions='));
    expect(unset.env.map((e: Obj) => e.name)).not.toContain('NODE_OPTIONS');
  });

  it('renders nothing for the agent when it is disabled', async () => {
    const docs = await render('agent.enabled=false');
    expect(docs.filter((d) => String(d.metadata?.name).includes('agent'))).toEqual([]);
  });
});
