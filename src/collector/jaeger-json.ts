// Traces in the JSON layout of Jaeger's query API (/api/traces), so the viewer, scripts and
// tests written against Jaeger read the embedded collector the same way.

import type { JsonValue, StoredSpan } from './model.js';
import { KIND_NAMES } from './store.js';

export interface JaegerTag {
  key: string;
  type: 'string' | 'bool' | 'int64' | 'float64';
  value: string | number | boolean;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: 'CHILD_OF'; traceID: string; spanID: string }[];
  /** Microseconds since the Unix epoch. */
  startTime: number;
  /** Microseconds. */
  duration: number;
  tags: JaegerTag[];
  logs: { timestamp: number; fields: JaegerTag[] }[];
  processID: string;
  warnings: null;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerTag[] }>;
  warnings: null;
}

const STATUS_NAMES = ['UNSET', 'OK', 'ERROR'];

export function toJaegerTrace(spans: readonly StoredSpan[]): JaegerTrace {
  const processes: JaegerTrace['processes'] = {};
  const processIds = new Map<string, string>();
  const out: JaegerSpan[] = [];
  for (const s of [...spans].sort((a, b) => a.startMs - b.startMs)) {
    // One process per distinct resource, as Jaeger does; keyed by its JSON text.
    const resKey = JSON.stringify(s.resource);
    let pid = processIds.get(resKey);
    if (!pid) {
      pid = `p${processIds.size + 1}`;
      processIds.set(resKey, pid);
      processes[pid] = { serviceName: s.service, tags: toTags(s.resource) };
    }
    const tags = toTags(s.attributes);
    tags.push({ key: 'span.kind', type: 'string', value: KIND_NAMES[s.kind] ?? 'unspecified' });
    if (s.status.code !== 0) tags.push({ key: 'otel.status_code', type: 'string', value: STATUS_NAMES[s.status.code] ?? String(s.status.code) });
    if (s.status.message) tags.push({ key: 'otel.status_description', type: 'string', value: s.status.message });
    if (s.error && !('error' in s.attributes)) tags.push({ key: 'error', type: 'bool', value: true });
    if (s.scope) tags.push({ key: 'otel.scope.name', type: 'string', value: s.scope });
    out.push({
      traceID: s.traceId,
      spanID: s.spanId,
      operationName: s.name,
      references: s.parentSpanId ? [{ refType: 'CHILD_OF', traceID: s.traceId, spanID: s.parentSpanId }] : [],
      startTime: Math.round(s.startMs * 1000),
      duration: Math.round(s.durationMs * 1000),
      tags,
      logs: s.events.map((e) => ({
        timestamp: Math.round(e.timeMs * 1000),
        fields: [{ key: 'event', type: 'string', value: e.name }, ...toTags(e.attributes)],
      })),
      processID: pid,
      warnings: null,
    });
  }
  return { traceID: spans[0]?.traceId ?? '', spans: out, processes, warnings: null };
}

function toTags(attrs: Record<string, JsonValue>): JaegerTag[] {
  return Object.entries(attrs).map(([key, v]): JaegerTag => {
    if (typeof v === 'string') return { key, type: 'string', value: v };
    if (typeof v === 'boolean') return { key, type: 'bool', value: v };
    if (typeof v === 'number') return { key, type: Number.isInteger(v) ? 'int64' : 'float64', value: v };
    // Arrays (e.g. header values) and maps: Jaeger has no such types, so JSON text.
    return { key, type: 'string', value: JSON.stringify(v) };
  });
}
