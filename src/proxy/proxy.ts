// Composes the proxy: the one place where the layers are wired, each with why it sits there.
//
//   listener (accept, detect)  →  h1 | h2 | opaque relay        bytes, never waits on capture
//        handlers               →  exchange (policy, context, capture → SpanRecord)
//        exchange               →  export queue (bounded, drops and counts) → OTLP gRPC / console
//                               →  tap (admin /tap, only while someone listens)
//   policy store (file, live)   →  read by the exchange per request
//   admin listener              →  health, metrics, effective config, tap

import type { ProxyConfig } from './config.js';
import { createExchangeFactory } from './exchange-impl.js';
import { createH1Handler } from './h1/handler.js';
import { createH2Handler } from './h2/h2-handler.js';
import type { Direction, Endpoint } from './exchange.js';
import type { ProtocolHandler } from './handler.js';
import { startListener, type Listener } from './listener.js';
import { createProxyMetrics, type ProxyMetrics } from './proxy-metrics.js';
import { createAdminServer, type AdminServer } from './admin.js';
import { PolicyStore } from '../policy/store.js';
import { Metrics } from '../telemetry/metrics.js';
import { createSpanExporter, exportCounters, type SpanExporter } from '../telemetry/export.js';
import { exportConfigFromEnv, redactExportConfig, type ExportConfig } from '../telemetry/otel-env.js';
import { detectResource, type Env } from '../telemetry/resource.js';

export interface RunningProxy {
  readonly listeners: ReadonlyArray<{ direction: Direction; address: Endpoint; upstream?: Endpoint }>;
  readonly admin: Endpoint;
  readonly metrics: ProxyMetrics;
  readonly serviceName: string;
  readonly exportConfig: ExportConfig;
  readonly policy: PolicyStore;
  /** Sends queued spans (for tests and orderly shutdown). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface StartOptions {
  env?: Env;
  /** One line per notable event (policy rejected, export config warnings); default stderr. */
  log?: (line: string) => void;
}

export async function startProxy(config: ProxyConfig, options: StartOptions = {}): Promise<RunningProxy> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const metrics = createProxyMetrics(new Metrics());

  // Configuration errors surface here, before any port is bound.
  const exportConfig = exportConfigFromEnv(env, { endpoint: config.otlpEndpoint, console: config.console || undefined });
  const resource = detectResource(env, { serviceName: config.serviceName });
  for (const w of resource.warnings) log(`sidetrace: ${w}`);

  const policy = new PolicyStore({ onInvalid: () => metrics.policyErrors.inc(), log });
  if (config.policyFile) policy.watchFile(config.policyFile, (err) => log(`sidetrace: cannot read policy ${config.policyFile}: ${err.message}`));

  const exporter: SpanExporter = createSpanExporter({ config: exportConfig, resource: resource.attributes, counters: exportCounters(metrics), log });

  let ready = false;
  const listeners: Listener[] = [];
  const admin: AdminServer = createAdminServer({
    listen: config.admin,
    metrics: metrics.registry,
    ready: () => ready,
    config: () => ({
      serviceName: resource.serviceName,
      resource: resource.attributes,
      listeners: listeners.map((l) => ({ direction: l.spec.direction, listen: l.address, upstream: l.spec.upstream })),
      export: redactExportConfig(exportConfig),
      policyFile: config.policyFile ?? null,
      policy: policy.current().effective,
    }),
  });

  const handlers = new Map<Direction, { h1: ProtocolHandler; h2: ProtocolHandler }>();
  for (const direction of ['inbound', 'outbound'] as const) {
    const exchanges = createExchangeFactory({
      policy: () => policy.current(),
      sink: exporter,
      metrics,
      tap: admin.tap,
    });
    const opts = { direction, exchanges, metrics };
    handlers.set(direction, { h1: createH1Handler(opts), h2: createH2Handler(opts) });
  }

  const closeAll = async () => {
    await Promise.allSettled(listeners.map((l) => l.close()));
    await Promise.allSettled([...handlers.values()].flatMap((h) => [h.h1.close(), h.h2.close()]));
    policy.stop();
    await exporter.shutdown();
    await admin.close();
  };

  try {
    await admin.listen();
    for (const spec of config.listeners) {
      const h = handlers.get(spec.direction)!;
      listeners.push(
        await startListener(spec, {
          h1: h.h1,
          h2: h.h2,
          metrics,
          serverFirstPorts: config.serverFirstPorts,
          detectTimeoutMs: config.detectTimeoutMs,
        }),
      );
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  ready = true;

  return {
    listeners: listeners.map((l) => ({ direction: l.spec.direction, address: l.address, upstream: l.spec.upstream })),
    admin: admin.address(),
    metrics,
    serviceName: resource.serviceName,
    exportConfig,
    policy,
    flush: () => exporter.flush(),
    close: async () => {
      ready = false;
      await closeAll();
    },
  };
}
