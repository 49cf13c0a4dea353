// Pod names for the agent in a cluster: lists this node's pods from the API server (the chart
// grants get/list on pods) and maps a pod UID (from a process's cgroup) to its name, namespace
// and container names. Lookups read a cache and never wait: an unknown UID triggers a refresh,
// at most once per minRefreshMs, and its spans carry the UID alone until the list arrives.

import fs from 'node:fs';
import https from 'node:https';
import type { Env } from '../telemetry/resource.js';

export interface PodInfo {
  name: string;
  namespace: string;
  /** Container id (64 hex, runtime prefix removed) → container name. */
  containers: Map<string, string>;
}

export interface PodDirectoryOptions {
  /** API server base URL, e.g. https://10.0.0.1:443. */
  apiUrl: string;
  token: string;
  /** CA bundle for the API server's certificate. */
  ca?: Buffer;
  /** Only this node's pods (fieldSelector spec.nodeName). */
  nodeName?: string;
  /** Periodic refresh. */
  refreshMs?: number;
  /** Refreshes for unknown UIDs are at most this frequent. */
  minRefreshMs?: number;
  log?: (line: string) => void;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export class PodDirectory {
  private pods = new Map<string, PodInfo>();
  private timer: NodeJS.Timeout | undefined;
  private lastFetch = 0;
  private inflight: Promise<void> | undefined;
  private errorsLogged = 0;

  constructor(private readonly opts: PodDirectoryOptions) {}

  /** The in-cluster directory (service account token and CA), or undefined outside a cluster. */
  static fromEnv(env: Env, log?: (line: string) => void, saDir = SA_DIR): PodDirectory | undefined {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT ?? '443';
    if (!host) return undefined;
    let token: string;
    try {
      token = fs.readFileSync(`${saDir}/token`, 'utf8').trim();
    } catch {
      return undefined;
    }
    let ca: Buffer | undefined;
    try {
      ca = fs.readFileSync(`${saDir}/ca.crt`);
    } catch {
      ca = undefined;
    }
    const hostPart = host.includes(':') ? `[${host}]` : host;
    return new PodDirectory({ apiUrl: `https://${hostPart}:${port}`, token, ca, nodeName: env.SIDETRACE_NODE_NAME ?? env.NODE_NAME, log });
  }

  get size(): number {
    return this.pods.size;
  }

  /** Starts periodic refreshes; resolves after the first list (or its failure). */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs ?? 30_000);
    this.timer.unref();
    return this.refresh();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  lookup(podUid: string): PodInfo | undefined {
    const pod = this.pods.get(podUid);
    if (pod === undefined && Date.now() - this.lastFetch >= (this.opts.minRefreshMs ?? 5_000)) void this.refresh();
    return pod;
  }

  refresh(): Promise<void> {
    this.inflight ??= this.fetch().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async fetch(): Promise<void> {
    this.lastFetch = Date.now();
    const selector = this.opts.nodeName ? `?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.opts.nodeName}`)}` : '';
    try {
      const body = await getJson(`${this.opts.apiUrl}/api/v1/pods${selector}`, this.opts.token, this.opts.ca);
      this.pods = parsePodList(body);
    } catch (err) {
      // Keep the last good list; say why a few times, not on every refresh.
      if (this.errorsLogged++ < 3) this.opts.log?.(`sidetrace agent: cannot list pods (${(err as Error).message}); spans carry pod UIDs only`);
    }
  }
}

/** Pod list JSON (the API's v1 PodList) → UID-keyed directory. Pure. */
export function parsePodList(body: unknown): Map<string, PodInfo> {
  const out = new Map<string, PodInfo>();
  const items = (body as { items?: unknown[] } | null)?.items;
  if (!Array.isArray(items)) throw new Error('ST_AGENT_PODS_INVALID: response has no items array');
  for (const item of items) {
    const meta = (item as { metadata?: { uid?: string; name?: string; namespace?: string } }).metadata;
    if (!meta?.uid || !meta.name) continue;
    const containers = new Map<string, string>();
    const status = (item as { status?: Record<string, unknown> }).status ?? {};
    for (const key of ['containerStatuses', 'initContainerStatuses', 'ephemeralContainerStatuses']) {
      const list = status[key];
      if (!Array.isArray(list)) continue;
      for (const c of list as Array<{ name?: string; containerID?: string }>) {
        // "containerd://<id>", "cri-o://<id>", "docker://<id>"
        const id = c.containerID?.slice(c.containerID.indexOf('://') + 3);
        if (id && c.name) containers.set(id, c.name);
      }
    }
    out.set(meta.uid, { name: meta.name, namespace: meta.namespace ?? 'default', containers });
  }
  return out;
}

const MAX_BODY = 64 * 1024 * 1024;

function getJson(url: string, token: string, ca: Buffer | undefined): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, ca, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) req.destroy(new Error('pod list larger than 64 MiB'));
        else chunks.push(c);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode} from ${url}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}
