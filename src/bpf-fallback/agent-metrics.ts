// The agent's user-space counters, created once so the event path only increments fields.
// The kernel's own counters are read from the addon at scrape time (see agent.ts).

import type { Counter, Metrics } from '../telemetry/metrics.js';
import type { StreamCounters } from './reassembly.js';

export interface AgentMetrics extends StreamCounters {
  registry: Metrics;
  events: Counter;
  connections: Counter;
  parseErrors: Counter;
  records: Counter;
  orphanResponses: Counter;
  evictions: Counter;
  unsupportedConnections: Counter;
  /** Connections whose parsing moved from socket bytes to TLS plaintext. */
  tlsConnections: Counter;
}

export function createAgentMetrics(registry: Metrics): AgentMetrics {
  const gaps = registry.counter('sidetrace_agent_gaps_total', 'Holes in a captured stream (lost or cut events); parsing resynchronised after each.');
  const lostBytes = registry.counter('sidetrace_agent_lost_bytes_total', 'Stream bytes never captured (lost events, per-event payload cap).');
  const duplicates = registry.counter('sidetrace_agent_duplicate_events_total', 'Data events (or parts) already seen, dropped.');
  return {
    registry,
    // StreamCounters as plain properties backed by counters, so reassembly stays metric-agnostic.
    get gaps() {
      return gaps.value;
    },
    set gaps(v: number) {
      gaps.value = v;
    },
    get lostBytes() {
      return lostBytes.value;
    },
    set lostBytes(v: number) {
      lostBytes.value = v;
    },
    get duplicates() {
      return duplicates.value;
    },
    set duplicates(v: number) {
      duplicates.value = v;
    },
    events: registry.counter('sidetrace_agent_events_total', 'Events received from the kernel.'),
    connections: registry.counter('sidetrace_agent_connections_total', 'Connections tracked.'),
    parseErrors: registry.counter('sidetrace_agent_parse_errors_total', 'Invalid frames (parsing resynchronised at the next plausible message).'),
    records: registry.counter('sidetrace_agent_records_total', 'Request/response exchanges stitched.'),
    orphanResponses: registry.counter('sidetrace_agent_orphan_responses_total', 'Responses dropped because their request was not captured.'),
    evictions: registry.counter('sidetrace_agent_evictions_total', 'Connections evicted for memory or idleness before they closed.'),
    unsupportedConnections: registry.counter('sidetrace_agent_unsupported_connections_total', 'Connections whose bytes match no known protocol.'),
    tlsConnections: registry.counter('sidetrace_agent_tls_connections_total', 'Connections parsed from TLS plaintext (uprobes).'),
  };
}
