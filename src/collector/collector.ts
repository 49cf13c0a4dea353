// The embedded collector: OTLP receiver → bounded store (+ optional JSON lines) → viewer.
// Used by `sidetrace collect` on its own and by `sidetrace demo` in-process.

import type { AddressInfo } from 'node:net';
import { ConfigError, parseEndpoint } from '../proxy/config.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-server.js';
import { TraceStore } from './store.js';
import { createViewerServer } from './http-api.js';
import { openJsonl, type JsonlWriter } from './jsonl-writer.js';

export interface CollectorOptions {
  /** OTLP gRPC listen address, host:port. */
  otlp: string;
  /** Viewer listen address host:port, or null for no viewer. */
  ui: string | null;
  maxSpans: number;
  /** Approximate memory budget for stored spans. */
  maxBytes?: number;
  maxBatchBytes?: number;
  jsonl?: string;
}

export interface Collector {
  store: TraceStore;
  otlp: OtlpReceiver;
  /** http://host:port/ of the viewer, when enabled. */
  uiUrl?: string;
  close(): Promise<void>;
}

export async function startCollector(opts: CollectorOptions): Promise<Collector> {
  const otlpAt = splitHostPort('--otlp', opts.otlp);
  const store = new TraceStore(opts.maxBytes === undefined ? { maxSpans: opts.maxSpans } : { maxSpans: opts.maxSpans, maxBytes: opts.maxBytes });
  const jsonl: JsonlWriter | undefined = opts.jsonl ? openJsonl(opts.jsonl) : undefined;
  const otlp = await startOtlpReceiver({
    address: otlpAt.host.includes(':') ? `[${otlpAt.host}]:${otlpAt.port}` : `${otlpAt.host}:${otlpAt.port}`,
    maxBatchBytes: opts.maxBatchBytes,
    onSpans(spans) {
      store.add(spans);
      jsonl?.write(spans);
    },
  });
  let uiUrl: string | undefined;
  const viewer = opts.ui === null ? undefined : createViewerServer(store);
  if (viewer && opts.ui !== null) {
    const { host, port } = splitHostPort('--ui', opts.ui);
    try {
      await new Promise<void>((resolve, reject) => {
        viewer.once('error', reject);
        viewer.listen(port, host, () => resolve());
      });
    } catch (err) {
      await otlp.close();
      throw err;
    }
    const a = viewer.address() as AddressInfo;
    uiUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
  }
  return {
    store,
    otlp,
    uiUrl,
    async close() {
      viewer?.closeAllConnections();
      await Promise.all([otlp.close(), viewer ? new Promise<void>((r) => viewer.close(() => r())) : undefined, jsonl?.close()]);
    },
  };
}

/** A listen address (--otlp, --ui) that is not host:port: a usage error, not a crash. */
export class AddressError extends Error {
  readonly code = 'ST_ADDR_INVALID';
  constructor(readonly flag: string, addr: string) {
    super(`ST_ADDR_INVALID: ${flag} "${addr}" must be host:port or a port (e.g. 127.0.0.1:4317)`);
    this.name = 'AddressError';
  }
}

/** The proxy's listen-address rules (`host:port`, `[v6]:port`, `:port`, a bare port on loopback). */
function splitHostPort(flag: string, addr: string): { host: string; port: number } {
  try {
    const { address, port } = parseEndpoint(flag, addr);
    return { host: address, port };
  } catch (err) {
    if (err instanceof ConfigError) throw new AddressError(flag, addr);
    throw err;
  }
}
