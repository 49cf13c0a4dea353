// Composes the node agent: the one place its layers are wired, each with why it sits there.
//
//   capture source (kernel ring buffer, batches)  →  conn table          order, dedupe, resync
//        conn table  →  protocol registry (frame, parse, stitch)        records per exchange
//        records     →  the proxy's exchange (policy, context, redaction) → SpanRecord
//        exchange    →  export queue (bounded) → OTLP gRPC / console
//                    →  tap: --tail / --json printer, admin /tap
//   exec events      →  TLS uprobes attached to the new process
//   admin listener   →  kernel counters + user-space counters

import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { createAdminServer, type AdminServer } from '../proxy/admin.js';
import type { Endpoint, TapHub } from '../proxy/exchange.js';
import { createProxyMetrics, type ProxyMetrics } from '../proxy/proxy-metrics.js';
import { PolicyStore } from '../policy/store.js';
import { createSpanExporter, exportCounters, type SpanExporter } from '../telemetry/export.js';
import { Metrics } from '../telemetry/metrics.js';
import { exportConfigFromEnv, redactExportConfig, type ExportConfig } from '../telemetry/otel-env.js';
import { detectResource, type Env } from '../telemetry/resource.js';
import type { AgentConfig } from './agent-config.js';
import { createAgentMetrics, type AgentMetrics } from './agent-metrics.js';
import { measureKernelClock, type KernelClock } from './clock.js';
import { ConnTable } from './conn-table.js';
import type { AgentEvent, KernelCounters, ProcExecEvent, ProcExitEvent } from './events.js';
import { combineTaps, createOutputTap } from './output.js';
import { PodDirectory } from './k8s-pods.js';
import { ProcessInfoCache, sharedResource } from './process-info.js';
import { SpanReplayer } from './spans.js';

/** What the agent needs from the kernel side (native.ts's openAgentCapture provides it). */
export interface CaptureSource {
  /** Resolves once the probes are attached (TLS libraries pinned). */
  readonly ready?: Promise<void>;
  onBatch(cb: (events: AgentEvent[]) => void): void;
  /** Raw capture batches (native.ts's readBatch layout): when present the agent takes these,
   * and the table reads them without an event object per record; the agent then reports each
   * exec and exit to releaseTls. */
  onRawBatch?(cb: (batch: Buffer) => void): void;
  /** A process exec'ed or exited: drop its hold on the TLS probes (idempotent). */
  releaseTls?(pid: number): void;
  counters(): KernelCounters;
  /** Attach the TLS uprobes to a process's libssl (or its statically linked OpenSSL). */
  attachTls?(pid: number): void;
  close(): void | Promise<void>;
}

export const AGENT_MAX_QUEUE_SIZE = 8192;

export interface AgentStartOptions {
  env?: Env;
  log?: (line: string) => void;
  /** Where --tail/--json/--console write; stdout by default. */
  out?: Writable;
  clock?: KernelClock;
  /** procfs root for process identity and the initial TLS attach scan. */
  procRoot?: string;
  /** Pod directory; default: in-cluster from the service account (KUBERNETES_SERVICE_HOST), null for none. */
  pods?: PodDirectory | null;
  /** Processes never traced; default the agent's own pid (its span export would trace itself). */
  ignorePids?: readonly number[];
}

export interface RunningAgent {
  readonly metrics: ProxyMetrics;
  readonly agentMetrics: AgentMetrics;
  readonly exportConfig: ExportConfig;
  readonly admin?: Endpoint;
  readonly connections: ConnTable;
  /** Sends queued spans (tests, orderly shutdown). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function startAgent(config: AgentConfig, source: CaptureSource, options: AgentStartOptions = {}): Promise<RunningAgent> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const out = options.out ?? process.stdout;
  const registry = new Metrics();
  const metrics = createProxyMetrics(registry);
  const agentMetrics = createAgentMetrics(registry);
  registerKernelGauges(registry, source);

  // Configuration errors surface here, before anything is attached.
  // One agent exports a whole node's spans: 20k spans/s at 10k req/s with both sides traced, so
  // the sidecar's 2,048-span queue (0.1 s of them) overflowed whenever an export took longer
  // (1-2% dropped in bench/agent.js). 8,192 (~16 MiB of encoded spans) rides that out; the
  // queue's 32 MiB byte bound still holds. OTEL_BSP_MAX_QUEUE_SIZE overrides it.
  const exportConfig = exportConfigFromEnv(env, { endpoint: config.otlpEndpoint, console: config.console || undefined, defaultMaxQueueSize: AGENT_MAX_QUEUE_SIZE });
  const resource = detectResource(env, { serviceName: config.serviceName ?? env.OTEL_SERVICE_NAME ?? 'sidetrace-agent' });
  for (const w of resource.warnings) log(`sidetrace agent: ${w}`);

  const policy = new PolicyStore({ onInvalid: () => metrics.policyErrors.inc(), log });
  if (config.policyFile) policy.watchFile(config.policyFile, (err) => log(`sidetrace agent: cannot read policy ${config.policyFile}: ${err.message}`));

  const exporter: SpanExporter = createSpanExporter({ config: exportConfig, resource: resource.attributes, counters: exportCounters(metrics), out });

  let admin: AdminServer | undefined;
  if (config.admin !== undefined) {
    admin = createAdminServer({
      listen: config.admin,
      metrics: registry,
      ready: () => true,
      config: () => ({ agent: { ...config, maxBodySize: String(config.maxBodySize) }, resource: resource.attributes, export: redactExportConfig(exportConfig), policy: policy.current().effective }),
    });
    await admin.listen();
  }

  const taps: TapHub[] = [];
  if (admin !== undefined) taps.push(admin.tap);
  if (config.output !== undefined) {
    taps.push(
      createOutputTap({
        format: config.output,
        minLatencyMs: config.minLatencyMs,
        maxBodySize: config.maxBodySize,
        out,
        dropped: registry.counter('sidetrace_agent_output_dropped_total', 'Rows not printed because stdout could not keep up.'),
      }),
    );
  }

  // In a cluster, pod UIDs from cgroups get names; elsewhere the cgroup path alone is recorded.
  const pods = options.pods === undefined ? PodDirectory.fromEnv(env, log) : options.pods ?? undefined;
  if (pods !== undefined) await pods.start();

  // The proxy's exchange, so agent spans carry the same attributes, policy and redaction.
  const tap = combineTaps(taps);
  const processes = new ProcessInfoCache(options.procRoot);
  const replayer = new SpanReplayer({
    policy: () => policy.current(),
    sink: exporter,
    metrics,
    tap,
    clock: options.clock ?? measureKernelClock(),
    process: (pid, comm) => processes.get(pid, comm),
    sharedResource: sharedResource(resource.attributes),
    pods: pods === undefined ? undefined : (uid) => pods.lookup(uid),
  });
  const table = new ConnTable({
    metrics: agentMetrics,
    maxBodyBytes: config.captureBytes,
    onRecord: (conn, record) => {
      metrics.requests.inc();
      // Under overload the export queue is full and a span built now would be dropped there:
      // drop it here, counted the same, before its attributes and encoding cost anything. Live
      // rows (--tail, admin /tap) still get every span.
      if (exporter.full && tap?.active !== true) {
        metrics.spansDropped.inc();
        return;
      }
      replayer.replay(conn, record);
    },
  });

  // With --no-tls the capture has no uprobes to attach; skip the /proc scan and per-exec calls.
  const tlsOn = config.tls && source.attachTls !== undefined;
  const attach = (pid: number) => {
    if (!tlsOn) return;
    try {
      source.attachTls?.(pid);
    } catch (err) {
      log(`sidetrace agent: cannot attach TLS probes to pid ${pid}: ${(err as Error).message}`);
    }
  };
  const ignored = new Set(options.ignorePids ?? [process.pid]);
  const onProcessEvent = (ev: ProcExecEvent | ProcExitEvent) => {
    processes.forget(ev.pid);
    // Before attaching anew: the old image's libraries are no longer this pid's. Called while the
    // table reads a batch, so nothing may be thrown into it.
    try {
      source.releaseTls?.(ev.pid);
    } catch (err) {
      log(`sidetrace agent: cannot release TLS probes of pid ${ev.pid}: ${(err as Error).message}`);
    }
    if (ev.kind === 'exec') attach(ev.pid);
  };
  if (source.onRawBatch !== undefined) {
    const batchOptions = { ignorePids: ignored, onProcessEvent };
    source.onRawBatch((batch) => table.handleBatch(batch, batchOptions));
  } else {
    source.onBatch((events) => {
      let mine = 0;
      for (const ev of events) {
        if (ignored.has(ev.pid)) mine++;
        else if (ev.kind === 'exec' || ev.kind === 'exit') onProcessEvent(ev);
      }
      table.handle(mine === 0 ? events : events.filter((ev) => !ignored.has(ev.pid)));
    });
  }
  await source.ready;
  if (tlsOn) for (const pid of runningPids(options.procRoot ?? '/proc')) if (!ignored.has(pid)) attach(pid);

  return {
    metrics,
    agentMetrics,
    exportConfig,
    admin: admin?.address(),
    connections: table,
    flush: () => exporter.flush(),
    close: async () => {
      await source.close();
      table.closeAll();
      pods?.stop();
      policy.stop();
      await exporter.shutdown();
      await admin?.close();
    },
  };
}

function registerKernelGauges(registry: Metrics, source: CaptureSource): void {
  const read = (key: keyof KernelCounters) => () => {
    try {
      return source.counters()[key];
    } catch {
      return 0;
    }
  };
  registry.gauge('sidetrace_agent_kernel_events_sent', 'Events the BPF programs wrote to the ring buffer.', read('eventsSent'));
  registry.gauge('sidetrace_agent_kernel_events_dropped', 'Events lost in the kernel: ring buffer reservations that failed.', read('eventsDropped'));
  registry.gauge('sidetrace_agent_kernel_bytes_captured', 'Payload bytes the BPF programs copied.', read('bytesCaptured'));
  registry.gauge('sidetrace_agent_kernel_bytes_truncated', 'Payload bytes not copied because of the per-event cap.', read('bytesTruncated'));
}

function runningPids(procRoot: string): number[] {
  try {
    return fs
      .readdirSync(procRoot)
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  } catch {
    return [];
  }
}
