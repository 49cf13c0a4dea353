// Runs AgentEvent batches through a fresh ConnTable and collects the stitched records.

import { createAgentMetrics, type AgentMetrics } from '../agent-metrics.js';
import { ConnTable, type ConnTableOptions, type ConnView } from '../conn-table.js';
import type { AgentEvent } from '../events.js';
import type { HttpRecord } from '../protocols/protocol.js';
import { Metrics } from '../../telemetry/metrics.js';

export interface Run {
  table: ConnTable;
  metrics: AgentMetrics;
  records: Array<{ conn: ConnView; record: HttpRecord }>;
}

export function newRun(options: Partial<ConnTableOptions> = {}): Run {
  const metrics = createAgentMetrics(new Metrics());
  const records: Run['records'] = [];
  const table = new ConnTable({ metrics, onRecord: (conn, record) => records.push({ conn, record }), ...options });
  return { table, metrics, records };
}

export function runBatches(batches: readonly (readonly AgentEvent[])[], options: Partial<ConnTableOptions> = {}): Run {
  const run = newRun(options);
  for (const b of batches) run.table.handle(b);
  return run;
}

/** A record reduced to comparable plain values (bodies as text). */
export function summary(r: HttpRecord): Record<string, unknown> {
  return {
    version: r.protocolVersion,
    method: r.method,
    target: r.target,
    requestHeaders: r.requestHeaders,
    requestBody: Buffer.concat(r.requestBody.map((c) => c.data)).toString('latin1'),
    requestBodySize: r.requestBodySize,
    requestTrailers: r.requestTrailers,
    status: r.status,
    responseHeaders: r.responseHeaders,
    responseBody: Buffer.concat(r.responseBody.map((c) => c.data)).toString('latin1'),
    responseBodySize: r.responseBodySize,
    responseTrailers: r.responseTrailers,
    error: r.error,
    partial: r.partial,
  };
}
