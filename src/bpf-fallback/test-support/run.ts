// Runs AgentEvent batches through a fresh ConnTable and collects the stitched records.

import { createAgentMetrics, type AgentMetrics } from '../agent-metrics.js';
import { ConnTable, type ConnTableOptions, type ConnView } from '../conn-table.js';
import type { AgentEvent } from '../events.js';
import { encodeBatch } from './batch.js';
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

/**
 * Runs the batches through handle and, as capture batches (encodeBatch), through handleBatch:
 * throws unless both give the same records, connections and counters, so every test that runs
 * events this way also checks the table's in-place batch reading against its event path.
 */
export function runBatches(batches: readonly (readonly AgentEvent[])[], options: Partial<ConnTableOptions> = {}): Run {
  const run = newRun(options);
  for (const b of batches) run.table.handle(b);
  const raw = newRun(options);
  for (const b of batches) raw.table.handleBatch(encodeBatch(b));
  const expected = JSON.stringify(outcome(run));
  const got = JSON.stringify(outcome(raw));
  if (got !== expected) throw new Error(`handleBatch differs from handle:\n${got}\n${expected}`);
  return run;
}

/** What a run produced, as plain values. */
function outcome(run: Run): unknown {
  const m = run.metrics;
  return {
    records: run.records.map(({ conn, record }) => ({ conn: [conn.connId, conn.pid, conn.comm, conn.role, conn.local, conn.remote, conn.source, conn.requestDir], record: summary(record), startNs: record.startNs, endNs: record.endNs, authority: record.authority })),
    size: run.table.size,
    bytes: run.table.totalBytes,
    counters: [m.events, m.connections, m.parseErrors, m.records, m.orphanResponses, m.evictions, m.unsupportedConnections, m.tlsConnections].map((c) => c.value),
    stream: [m.gaps, m.lostBytes, m.duplicates],
  };
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
