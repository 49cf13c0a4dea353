// Who a connection belongs to: executable name and container/pod identity from /proc/<pid>,
// read once per pid and cached until the pid execs or exits.

import fs from 'node:fs';
import path from 'node:path';
import type { Attributes } from '../telemetry/span.js';
import type { PodInfo } from './k8s-pods.js';

export interface CgroupIdentity {
  /** The process's cgroup v2 path (or the first v1 path naming a container). */
  path: string;
  containerId?: string;
  podUid?: string;
}

const CONTAINER_ID = /(?:^|[/\-:])([0-9a-f]{64})(?:\.scope)?$/;
// cgroupfs driver: /kubepods/burstable/pod<uid>/…; systemd driver: …-pod<uid with _>.slice/…
const POD_UID = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/;

/** Parses /proc/<pid>/cgroup text. Pure. */
export function parseCgroup(text: string): CgroupIdentity | undefined {
  let chosen: string | undefined;
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const p = line.slice(second + 1).trim();
    if (p.length === 0) continue;
    // The unified (v2) line is "0::/path"; on v1 prefer a line that names a container.
    if (line.startsWith('0::') || chosen === undefined || (!identify(chosen).containerId && identify(p).containerId)) chosen = p;
  }
  return chosen === undefined ? undefined : identify(chosen);
}

function identify(p: string): CgroupIdentity {
  const id: CgroupIdentity = { path: p };
  for (const segment of p.split('/').reverse()) {
    const m = CONTAINER_ID.exec(segment);
    if (m !== null) {
      id.containerId = m[1];
      break;
    }
  }
  const pod = POD_UID.exec(p);
  if (pod !== null) id.podUid = pod[1].replace(/_/g, '-');
  return id;
}

export interface ProcessInfo {
  executableName: string;
  cgroup?: CgroupIdentity;
  /** OTEL_SERVICE_NAME from the process's environment, when it sets one. */
  serviceName?: string;
}

/** Pod name, namespace and container names by pod UID (a cluster's API), when known. */
export type PodLookup = (podUid: string) => PodInfo | undefined;

/**
 * The OTLP resource of a traced process: semconv service.*, process.*, container.id, k8s.pod.*.
 * service.name is what the process would call itself (its OTEL_SERVICE_NAME), else its container's
 * name in its pod, else its executable's name, as eBPF tracers (Beyla, Odigos) name services, so
 * each workload is a service of its own in Jaeger or Tempo; service.namespace is the pod's.
 */
export function processResource(pid: number, comm: string, info: ProcessInfo, pods?: PodLookup, shared: Readonly<Attributes> = {}): Attributes {
  const executable = info.executableName || comm;
  const attrs: Attributes = { 'service.name': info.serviceName ?? executable };
  const cg = info.cgroup;
  const pod = cg?.podUid === undefined ? undefined : pods?.(cg.podUid);
  const container = pod === undefined || cg?.containerId === undefined ? undefined : pod.containers.get(cg.containerId);
  if (pod !== undefined) {
    if (info.serviceName === undefined && container !== undefined) attrs['service.name'] = container;
    attrs['service.namespace'] = pod.namespace;
  }
  attrs['process.pid'] = pid;
  attrs['process.executable.name'] = executable;
  if (cg !== undefined) {
    if (cg.containerId !== undefined) attrs['container.id'] = cg.containerId;
    if (cg.podUid !== undefined) {
      attrs['k8s.pod.uid'] = cg.podUid;
      if (pod !== undefined) {
        attrs['k8s.pod.name'] = pod.name;
        attrs['k8s.namespace.name'] = pod.namespace;
        if (container !== undefined) attrs['k8s.container.name'] = container;
      }
    }
    attrs['sidetrace.cgroup'] = cg.path;
  }
  for (const k in shared) if (!Object.hasOwn(attrs, k)) attrs[k] = shared[k];
  return attrs;
}

/**
 * What of the agent's own resource every traced process's resource shares: the node, cluster,
 * host and the user's OTEL_RESOURCE_ATTRIBUTES (deployment.environment, ...), and telemetry.sdk.*
 * (sidetrace made the spans). Not what names the agent itself: service.*, process.*, container.*
 * and its pod's k8s.* (name, namespace, uid, owner), which would be wrong on another process.
 */
export function sharedResource(agent: Readonly<Record<string, string>>): Attributes {
  const out: Attributes = {};
  for (const k in agent) {
    if (/^(?:service|process|container)\./.test(k)) continue;
    if (k.startsWith('k8s.') && !k.startsWith('k8s.node.') && !k.startsWith('k8s.cluster.')) continue;
    out[k] = agent[k];
  }
  return out;
}

// Bounded: an environment is usually a few KiB; a name set past this is not looked for.
const ENVIRON_MAX_BYTES = 64 * 1024;
const SERVICE_NAME_VAR = Buffer.from('OTEL_SERVICE_NAME=');
// One read buffer for every pid: reads are synchronous, and the name found is copied out of it.
const environBuf = Buffer.allocUnsafe(ENVIRON_MAX_BYTES);

/**
 * OTEL_SERVICE_NAME in a /proc/<pid>/environ text (NUL-separated), if set and not blank. Of
 * duplicate entries the first counts, as getenv (glibc, Node, Go) gives the process's own SDK.
 */
export function serviceNameFromEnviron(environ: Buffer): string | undefined {
  for (let at = 0; at < environ.length; ) {
    let end = environ.indexOf(0, at);
    if (end < 0) end = environ.length;
    if (end - at >= SERVICE_NAME_VAR.length && environ.compare(SERVICE_NAME_VAR, 0, SERVICE_NAME_VAR.length, at, at + SERVICE_NAME_VAR.length) === 0) {
      return environ.toString('utf8', at + SERVICE_NAME_VAR.length, end).trim() || undefined;
    }
    at = end + 1;
  }
  return undefined;
}

const MAX_CACHED = 16384;

export class ProcessInfoCache {
  private readonly cache = new Map<number, ProcessInfo>();

  constructor(private readonly procRoot = '/proc') {}

  get(pid: number, comm: string): ProcessInfo {
    let info = this.cache.get(pid);
    if (info === undefined) {
      info = this.read(pid, comm);
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(pid, info);
    }
    return info;
  }

  /** exec replaces the image, exit frees the pid: both make the cached entry stale. */
  forget(pid: number): void {
    this.cache.delete(pid);
  }

  private read(pid: number, comm: string): ProcessInfo {
    // Synchronous on purpose, once per pid: procfs reads never block on disk, and an async read
    // would let the pid's first spans leave without their identity.
    let executableName = comm;
    try {
      executableName = path.basename(fs.readlinkSync(`${this.procRoot}/${pid}/exe`)).replace(/ \(deleted\)$/, '');
    } catch {
      try {
        executableName = fs.readFileSync(`${this.procRoot}/${pid}/comm`, 'utf8').trim() || comm;
      } catch {
        // The process is gone: the kernel's comm is all there is.
      }
    }
    let cgroup: CgroupIdentity | undefined;
    try {
      cgroup = parseCgroup(fs.readFileSync(`${this.procRoot}/${pid}/cgroup`, 'utf8'));
    } catch {
      cgroup = undefined;
    }
    return { executableName, cgroup, serviceName: this.serviceName(pid) };
  }

  /** Reading another process's environment needs ptrace access (CAP_SYS_PTRACE): none, no name. */
  private serviceName(pid: number): string | undefined {
    let fd: number | undefined;
    try {
      fd = fs.openSync(`${this.procRoot}/${pid}/environ`, 'r');
      const n = fs.readSync(fd, environBuf, 0, ENVIRON_MAX_BYTES, 0);
      return serviceNameFromEnviron(environBuf.subarray(0, n));
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
}
