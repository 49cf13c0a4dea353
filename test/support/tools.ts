// Where scripts/setup.sh puts the tools it builds (h2spec, helm, etcd, kube-apiserver): read at
// call time, so a test can point SIDETRACE_CACHE elsewhere.
import os from 'node:os';
import path from 'node:path';

export function cachedTool(name: string): string {
  return path.join(process.env.SIDETRACE_CACHE ?? path.join(os.homedir(), '.cache', 'sidetrace'), 'bin', name);
}
