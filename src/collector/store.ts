// A bounded in-memory trace store: spans grouped by trace, the oldest traces evicted first
// once the span count passes the limit, and the Jaeger-style search the viewer API needs.

import type { JsonValue, StoredSpan } from './model.js';

export interface TraceQuery {
  service?: string;
  operation?: string;
  minDurationMs?: number;
  maxDurationMs?: number;
  /** Each must match a span attribute or resource attribute (as text); `error` matches the error flag. */
  tags?: Record<string, string>;
  /** The trace must start within [startMs, endMs] (Jaeger's start/end). */
  startMs?: number;
  endMs?: number;
  /** Most recent traces first; default 20. */
  limit?: number;
}

export interface StoreStats {
  traces: number;
  spans: number;
  /** Approximate memory held by span data (mostly bodies and headers). */
  bytes: number;
  evictedTraces: number;
}

export interface StoreLimits {
  maxSpans: number;
  /** Bodies make spans large: a byte budget keeps a few big ones from exhausting memory. */
  maxBytes: number;
}

interface TraceEntry {
  spans: StoredSpan[];
  bytes: number;
}

export class TraceStore {
  // Map iteration order is insertion order: the first key is the oldest trace.
  private readonly traces = new Map<string, TraceEntry>();
  private spanCount = 0;
  private byteCount = 0;
  private evicted = 0;
  readonly limits: StoreLimits;

  constructor(limits: Partial<StoreLimits> & { maxSpans: number }) {
    this.limits = { maxBytes: 512 * 1024 * 1024, ...limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
  }

  add(spans: readonly StoredSpan[]): void {
    for (const s of spans) {
      const size = approxSize(s);
      const entry = this.traces.get(s.traceId);
      if (entry) {
        entry.spans.push(s);
        entry.bytes += size;
      } else this.traces.set(s.traceId, { spans: [s], bytes: size });
      this.spanCount++;
      this.byteCount += size;
    }
    while (this.spanCount > this.limits.maxSpans || this.byteCount > this.limits.maxBytes) {
      const oldest = this.traces.entries().next();
      if (oldest.done) break;
      const [id, entry] = oldest.value;
      this.spanCount -= entry.spans.length;
      this.byteCount -= entry.bytes;
      this.traces.delete(id);
      this.evicted++;
    }
  }

  stats(): StoreStats {
    return { traces: this.traces.size, spans: this.spanCount, bytes: this.byteCount, evictedTraces: this.evicted };
  }

  trace(traceId: string): StoredSpan[] | undefined {
    return this.traces.get(traceId.toLowerCase())?.spans;
  }

  *allSpans(): IterableIterator<StoredSpan> {
    for (const e of this.traces.values()) yield* e.spans;
  }

  services(): string[] {
    const set = new Set<string>();
    for (const s of this.allSpans()) set.add(s.service);
    return [...set].sort();
  }

  operations(service?: string): { name: string; spanKind: string }[] {
    const seen = new Map<string, { name: string; spanKind: string }>();
    for (const s of this.allSpans()) {
      if (service !== undefined && s.service !== service) continue;
      const kind = KIND_NAMES[s.kind] ?? 'unspecified';
      seen.set(`${s.name}\u0000${kind}`, { name: s.name, spanKind: kind });
    }
    return [...seen.values()].sort((a, b) => cmp(a.name, b.name) || cmp(a.spanKind, b.spanKind));
  }

  /** Traces holding at least one span that matches every criterion, most recent first. */
  find(q: TraceQuery): StoredSpan[][] {
    const limit = q.limit ?? 20;
    const hits: { start: number; spans: StoredSpan[] }[] = [];
    for (const { spans } of this.traces.values()) {
      if (!spans.some((s) => spanMatches(s, q))) continue;
      const start = Math.min(...spans.map((s) => s.startMs));
      if ((q.startMs === undefined || start >= q.startMs) && (q.endMs === undefined || start <= q.endMs)) hits.push({ start, spans });
    }
    hits.sort((a, b) => b.start - a.start);
    return hits.slice(0, limit).map((h) => h.spans);
  }
}

// Counted once per span at insert: string lengths dominate (bodies, headers); the fixed part
// stands for ids, numbers and object overhead.
function approxSize(s: StoredSpan): number {
  let n = 256 + s.name.length;
  for (const k in s.attributes) n += k.length + valueSize(s.attributes[k]);
  for (const e of s.events) for (const k in e.attributes) n += k.length + valueSize(e.attributes[k]);
  return n;
}

function valueSize(v: JsonValue): number {
  if (typeof v === 'string') return 2 * v.length;
  if (v === null || typeof v !== 'object') return 8;
  let n = 16;
  for (const x of Array.isArray(v) ? v : Object.values(v)) n += valueSize(x);
  return n;
}

// Code-point order, so results don't depend on the machine's locale.
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export const KIND_NAMES: Record<number, string> = { 0: 'unspecified', 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };

function spanMatches(s: StoredSpan, q: TraceQuery): boolean {
  if (q.service !== undefined && s.service !== q.service) return false;
  if (q.operation !== undefined && s.name !== q.operation) return false;
  if (q.minDurationMs !== undefined && s.durationMs < q.minDurationMs) return false;
  if (q.maxDurationMs !== undefined && s.durationMs > q.maxDurationMs) return false;
  if (q.tags) {
    for (const [k, want] of Object.entries(q.tags)) {
      if (k === 'error') {
        if (String(s.error) !== want) return false;
        continue;
      }
      const v = k in s.attributes ? s.attributes[k] : s.resource[k];
      if (v === undefined || !tagMatches(v, want)) return false;
    }
  }
  return true;
}

// Header attributes are string arrays, so a tag matches an array when it matches one element.
function tagMatches(v: JsonValue, want: string): boolean {
  if (Array.isArray(v) && v.some((e) => tagMatches(e, want))) return true;
  return (typeof v === 'string' ? v : JSON.stringify(v)) === want;
}
