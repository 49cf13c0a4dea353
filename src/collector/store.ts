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
  /** Most recent traces first; default 20. */
  limit?: number;
}

export interface StoreStats {
  traces: number;
  spans: number;
  evictedTraces: number;
}

export class TraceStore {
  // Map iteration order is insertion order: the first key is the oldest trace.
  private readonly traces = new Map<string, StoredSpan[]>();
  private spanCount = 0;
  private evicted = 0;

  constructor(readonly maxSpans: number) {
    if (!Number.isInteger(maxSpans) || maxSpans < 1) throw new RangeError(`maxSpans must be a positive integer, got ${maxSpans}`);
  }

  add(spans: readonly StoredSpan[]): void {
    for (const s of spans) {
      const list = this.traces.get(s.traceId);
      if (list) list.push(s);
      else this.traces.set(s.traceId, [s]);
      this.spanCount++;
    }
    while (this.spanCount > this.maxSpans) {
      const oldest = this.traces.keys().next();
      if (oldest.done) break;
      this.spanCount -= this.traces.get(oldest.value)!.length;
      this.traces.delete(oldest.value);
      this.evicted++;
    }
  }

  stats(): StoreStats {
    return { traces: this.traces.size, spans: this.spanCount, evictedTraces: this.evicted };
  }

  trace(traceId: string): StoredSpan[] | undefined {
    return this.traces.get(traceId.toLowerCase());
  }

  *allSpans(): IterableIterator<StoredSpan> {
    for (const list of this.traces.values()) yield* list;
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
    for (const spans of this.traces.values()) {
      if (spans.some((s) => spanMatches(s, q))) hits.push({ start: Math.min(...spans.map((s) => s.startMs)), spans });
    }
    hits.sort((a, b) => b.start - a.start);
    return hits.slice(0, limit).map((h) => h.spans);
  }
}

// Code-point order, so results don't depend on the machine's locale.
function cmp(a: string, b: string): number {
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
