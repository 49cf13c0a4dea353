// The proxy's named counters, created once so the hot path only increments fields.

import type { Counter, Metrics } from '../telemetry/metrics.js';

export interface ProxyMetrics {
  registry: Metrics;
  connections: Counter;
  requests: Counter;
  passthroughConnections: Counter;
  parseErrors: Counter;
  bytesCaptured: Counter;
  spansSubmitted: Counter;
  spansExported: Counter;
  spansDropped: Counter;
  spansSampledOut: Counter;
  policyErrors: Counter;
  upstreamErrors: Counter;
  captureErrors: Counter;
}

export function createProxyMetrics(registry: Metrics): ProxyMetrics {
  return {
    registry,
    connections: registry.counter('sidetrace_connections_total', 'Downstream connections accepted.'),
    requests: registry.counter('sidetrace_requests_total', 'HTTP requests and gRPC calls proxied.'),
    passthroughConnections: registry.counter('sidetrace_passthrough_connections_total', 'Connections passed through as opaque TCP (TLS, unknown protocol, server-first ports, detection timeout).'),
    parseErrors: registry.counter('sidetrace_parse_errors_total', 'Malformed requests or responses (answered like the app server would, or closed).'),
    bytesCaptured: registry.counter('sidetrace_bytes_captured_total', 'Body bytes recorded into spans.'),
    spansSubmitted: registry.counter('sidetrace_spans_submitted_total', 'Spans handed to the export queue.'),
    spansExported: registry.counter('sidetrace_spans_exported_total', 'Spans the backend accepted.'),
    spansDropped: registry.counter('sidetrace_spans_dropped_total', 'Spans dropped: queue full, export failure or timeout.'),
    spansSampledOut: registry.counter('sidetrace_spans_sampled_out_total', 'Spans not kept by sampling.'),
    policyErrors: registry.counter('sidetrace_policy_errors_total', 'Capture policies rejected as invalid (the last good one stays in force).'),
    upstreamErrors: registry.counter('sidetrace_upstream_errors_total', 'Upstream connect failures and resets.'),
    captureErrors: registry.counter('sidetrace_capture_errors_total', 'Errors inside capture or span building (traffic unaffected).'),
  };
}
