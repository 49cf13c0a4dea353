// Parses the Jaeger-style search parameters of /api/traces into a TraceQuery, with errors
// that name the bad parameter.

import type { TraceQuery } from './store.js';

export class QueryParamError extends Error {
  readonly code = 'ST_QUERY_INVALID';
  constructor(readonly param: string, detail: string) {
    super(`invalid query parameter "${param}": ${detail}`);
    this.name = 'QueryParamError';
  }
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go duration text as Jaeger takes it ("500ms", "1.5s", "1m30s"); a bare number is milliseconds. */
export function parseDurationMs(param: string, text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < t.length) {
    re.lastIndex = pos;
    const m = re.exec(t);
    if (!m) throw new QueryParamError(param, `"${text}" is not a duration like 500ms, 1.5s or 1m30s`);
    total += Number(m[1]) * UNIT_MS[m[2]];
    pos = re.lastIndex;
  }
  if (t.length === 0) throw new QueryParamError(param, 'empty duration');
  return total;
}

export function parseTraceQuery(params: URLSearchParams): TraceQuery {
  const q: TraceQuery = {};
  const service = params.get('service');
  if (service) q.service = service;
  const operation = params.get('operation');
  if (operation) q.operation = operation;
  const min = params.get('minDuration');
  if (min) q.minDurationMs = parseDurationMs('minDuration', min);
  const max = params.get('maxDuration');
  if (max) q.maxDurationMs = parseDurationMs('maxDuration', max);
  // Jaeger sends the search window as Unix epoch microseconds.
  for (const [param, key] of [['start', 'startMs'], ['end', 'endMs']] as const) {
    const v = params.get(param);
    if (!v) continue;
    if (!/^\d{1,17}$/.test(v)) throw new QueryParamError(param, `"${v}" is not Unix epoch microseconds`);
    q[key] = Number(v) / 1000;
  }
  const limit = params.get('limit');
  if (limit) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new QueryParamError('limit', `"${limit}" is not an integer in 1..10000`);
    q.limit = n;
  }
  const tags: Record<string, string> = {};
  const tagsJson = params.get('tags');
  if (tagsJson) {
    let obj: unknown;
    try {
      obj = JSON.parse(tagsJson);
    } catch {
      throw new QueryParamError('tags', `not JSON: ${tagsJson}`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new QueryParamError('tags', 'must be a JSON object of key to value');
    for (const [k, v] of Object.entries(obj)) tags[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  // Jaeger's older form: repeated tag=key:value.
  for (const kv of params.getAll('tag')) {
    const i = kv.indexOf(':');
    if (i <= 0) throw new QueryParamError('tag', `"${kv}" is not key:value`);
    tags[kv.slice(0, i)] = kv.slice(i + 1);
  }
  if (Object.keys(tags).length) q.tags = tags;
  return q;
}
