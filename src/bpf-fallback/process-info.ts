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
}

/** Pod name, namespace and container names by pod UID (a cluster's API), when known. */
export type PodLookup = (podUid: string) => PodInfo | undefined;

/** Span attributes for a process (semconv process.*, container.id, k8s.pod.*). */
export function processAttributes(pid: number, comm: string, info: ProcessInfo, pods?: PodLookup): Attributes {
  const attrs: Attributes = { 'process.pid': pid, 'process.executable.name': info.executableName || comm };
  const cg = info.cgroup;
  if (cg !== undefined) {
    if (cg.containerId !== undefined) attrs['container.id'] = cg.containerId;
    if (cg.podUid !== undefined) {
      attrs['k8s.pod.uid'] = cg.podUid;
      const pod = pods?.(cg.podUid);
      if (pod !== undefined) {
        attrs['k8s.pod.name'] = pod.name;
        attrs['k8s.namespace.name'] = pod.namespace;
        const container = cg.containerId === undefined ? undefined : pod.containers.get(cg.containerId);
        if (container !== undefined) attrs['k8s.container.name'] = container;
      }
    }
    attrs['sidetrace.cgroup'] = cg.path;
  }
  return attrs;
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
    return { executableName, cgroup };
  }
}
