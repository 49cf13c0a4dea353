// What the spans say about a run: error rate per service, latency per operation, where
// failures start, and the value (latency, or a number in the request body) that separates
// an operation's failures from its successes. Pure functions over stored spans.

import { SpanKind } from '../telemetry/span.js';
import type { JsonValue, StoredSpan } from './model.js';
import { cmp } from './store.js';

/** A call failed: status ERROR, or an HTTP status of 400 or more on either side. */
export function failed(s: StoredSpan): boolean {
  if (s.error) return true;
  const code = s.attributes['http.response.status_code'];
  return typeof code === 'number' && code >= 400;
}

/** "METHOD /route" even when the span name is only the method (no route template matched). */
export function operationOf(s: StoredSpan): string {
  if (s.name.includes(' ')) return s.name;
  const route = s.attributes['http.route'] ?? s.attributes['url.path'];
  return typeof route === 'string' ? `${s.name} ${route}` : s.name;
}

/** Captured body attributes (request first), as text. */
export function bodiesOf(s: StoredSpan): { key: string; text: string }[] {
  const out: { key: string; text: string }[] = [];
  for (const [key, v] of Object.entries(s.attributes)) {
    if (!/body/.test(key) || /size|length|truncated|encoding|bytes_|\.count/.test(key)) continue;
    const text = typeof v === 'string' ? v : v !== null && typeof v === 'object' && 'base64' in v ? `(binary, base64) ${String(v.base64)}` : undefined;
    if (text !== undefined && text !== '') out.push({ key, text });
  }
  return out.sort((a, b) => rank(a.key) - rank(b.key));
}

function rank(key: string): number {
  return key.includes('request') ? 0 : key.includes('response') ? 1 : 2;
}

export interface ServiceErrors {
  service: string;
  requests: number;
  errors: number;
}

export interface OperationStats {
  service: string;
  operation: string;
  calls: number;
  errors: number;
  p50: number;
  p95: number;
  max: number;
}

/** A value above which an operation fails. */
export interface Separator {
  /** 'duration' or a request-body field path such as `amount` or `card.limit`. */
  feature: string;
  /** Calls with the feature above this failed; at or below it succeeded (up to `misfits`). */
  threshold: number;
  /** Largest value among the succeeding side and smallest among the failing side. */
  okMax: number;
  failMin: number;
  failuresAbove: number;
  successesAtOrBelow: number;
  /** Calls the rule gets wrong. */
  misfits: number;
}

export interface FailingOperation {
  service: string;
  operation: string;
  calls: number;
  failures: number;
  /** Failures of this operation that no failing child explains: the errors start here. */
  origins: number;
  culprit?: Separator;
  /** One failing call, for its bodies and status. */
  example: StoredSpan;
}

export interface Analysis {
  spans: number;
  traces: number;
  services: ServiceErrors[];
  /** Outgoing calls (CLIENT spans) that started a trace: their app did not forward the context it got. */
  unforwarded: { service: string; calls: number }[];
  slowest: OperationStats[];
  failing: FailingOperation[];
}

export function analyze(spans: readonly StoredSpan[]): Analysis {
  const byTrace = new Map<string, StoredSpan[]>();
  const failingChildOf = new Set<string>();
  for (const s of spans) {
    const list = byTrace.get(s.traceId);
    if (list) list.push(s);
    else byTrace.set(s.traceId, [s]);
    if (s.parentSpanId && failed(s)) failingChildOf.add(`${s.traceId}/${s.parentSpanId}`);
  }

  const services = new Map<string, ServiceErrors>();
  const unforwarded = new Map<string, number>();
  for (const s of spans) if (s.kind === SpanKind.CLIENT && !s.parentSpanId) unforwarded.set(s.service, (unforwarded.get(s.service) ?? 0) + 1);
  const ops = new Map<string, { service: string; operation: string; spans: StoredSpan[] }>();
  for (const s of spans) {
    if (s.kind !== SpanKind.SERVER) continue;
    let se = services.get(s.service);
    if (!se) services.set(s.service, (se = { service: s.service, requests: 0, errors: 0 }));
    se.requests++;
    if (failed(s)) se.errors++;
    const op = operationOf(s);
    const key = `${s.service}\u0000${op}`;
    let o = ops.get(key);
    if (!o) ops.set(key, (o = { service: s.service, operation: op, spans: [] }));
    o.spans.push(s);
  }

  const slowest: OperationStats[] = [];
  const failing: FailingOperation[] = [];
  for (const o of ops.values()) {
    const durations = o.spans.map((s) => s.durationMs).sort((a, b) => a - b);
    const fails = o.spans.filter(failed);
    slowest.push({
      service: o.service,
      operation: o.operation,
      calls: o.spans.length,
      errors: fails.length,
      p50: quantile(durations, 0.5),
      p95: quantile(durations, 0.95),
      max: durations[durations.length - 1],
    });
    if (fails.length === 0) continue;
    const origins = fails.filter((s) => !failingChildOf.has(`${s.traceId}/${s.spanId}`));
    const f: FailingOperation = {
      service: o.service,
      operation: o.operation,
      calls: o.spans.length,
      failures: fails.length,
      origins: origins.length,
      example: (origins.length ? origins : fails).reduce((a, b) => (b.durationMs > a.durationMs ? b : a)),
    };
    // Only where errors start is worth explaining; callers fail because their callee did.
    if (origins.length > 0) {
      const culprit = explain(o.spans);
      if (culprit) f.culprit = culprit;
    }
    failing.push(f);
  }
  slowest.sort((a, b) => b.p95 - a.p95);
  failing.sort((a, b) => b.origins - a.origins || b.failures - a.failures);
  return {
    spans: spans.length,
    traces: byTrace.size,
    services: [...services.values()].sort((a, b) => b.errors / b.requests - a.errors / a.requests || cmp(a.service, b.service)),
    unforwarded: [...unforwarded].map(([service, calls]) => ({ service, calls })).sort((a, b) => cmp(a.service, b.service)),
    slowest,
    failing,
  };
}

/** The feature (duration first, then numbers in the request body) that best splits failures from successes. */
export function explain(calls: readonly StoredSpan[]): Separator | undefined {
  const features = new Map<string, { x: number; fail: boolean }[]>();
  features.set('duration', calls.map((s) => ({ x: s.durationMs, fail: failed(s) })));
  for (const s of calls) {
    const body = bodiesOf(s).find((b) => b.key.includes('request'));
    if (!body) continue;
    let doc: unknown;
    try {
      doc = JSON.parse(body.text);
    } catch {
      continue;
    }
    for (const [path, x] of numbersIn(doc, '', 0)) {
      let list = features.get(path);
      if (!list) features.set(path, (list = []));
      list.push({ x, fail: failed(s) });
    }
  }
  let best: Separator | undefined;
  for (const [feature, samples] of features) {
    // A body field seen in only some calls cannot explain the rest.
    if (samples.length < Math.max(5, calls.length * 0.9)) continue;
    const sep = split(feature, samples);
    if (sep && (!best || sep.misfits < best.misfits)) best = sep;
  }
  return best;
}

// Latency is measured on a shared machine: event-loop lag can push a few calls across the line.
const MAX_MISFIT_RATIO = 0.1;
export const MIN_FAILURES = 3;

/** Best threshold t for "fails iff x > t", if it gets all but MAX_MISFIT_RATIO (10%) of calls right. */
export function split(feature: string, samples: readonly { x: number; fail: boolean }[]): Separator | undefined {
  const sorted = [...samples].sort((a, b) => a.x - b.x);
  const n = sorted.length;
  const totalFail = sorted.filter((s) => s.fail).length;
  if (totalFail === 0 || totalFail === n) return undefined;
  // Cut after index i: left side predicted OK, right side predicted failing.
  let failLeft = 0;
  let bestCut = -1;
  let bestMisfits = Infinity;
  for (let i = 0; i < n - 1; i++) {
    if (sorted[i].fail) failLeft++;
    if (sorted[i].x === sorted[i + 1].x) continue;
    const misfits = failLeft + (n - 1 - i - (totalFail - failLeft));
    if (misfits < bestMisfits) {
      bestMisfits = misfits;
      bestCut = i;
    }
  }
  if (bestCut < 0 || bestMisfits > n * MAX_MISFIT_RATIO) return undefined;
  const left = sorted.slice(0, bestCut + 1);
  const right = sorted.slice(bestCut + 1);
  const okLeftSide = left.filter((s) => !s.fail);
  const failRightSide = right.filter((s) => s.fail);
  // A rule must cover nearly every failure: "never fails" is not an explanation, and a
  // couple of failures are too few to call a pattern.
  if (totalFail < MIN_FAILURES || failRightSide.length < totalFail * (1 - MAX_MISFIT_RATIO * 2)) return undefined;
  const lo = left[left.length - 1].x;
  const hi = right[0].x;
  // Latency is measured at the proxy, a little above what the app decided (timer and hop
  // overhead), so allow 1% below the boundary when looking for a round number.
  const slack = feature === 'duration' ? lo * 0.01 : 0;
  return {
    feature,
    threshold: roundBetween(lo, hi, slack),
    okMax: okLeftSide.length ? okLeftSide[okLeftSide.length - 1].x : lo,
    failMin: failRightSide.length ? failRightSide[0].x : hi,
    failuresAbove: failRightSide.length,
    successesAtOrBelow: okLeftSide.length,
    misfits: bestMisfits,
  };
}

/**
 * The roundest number r with lo - slack <= r < hi (a multiple of the largest power of ten,
 * or five times one, that fits); else the first integer in [lo, hi); else lo.
 */
export function roundBetween(lo: number, hi: number, slack = 0): number {
  for (const step of [10_000, 5000, 1000, 500, 100, 50, 10, 5]) {
    const r = Math.ceil((lo - slack) / step) * step;
    if (r < hi) return r;
  }
  const r = Math.ceil(lo);
  return r < hi ? r : lo;
}

function* numbersIn(v: unknown, prefix: string, depth: number): Generator<[string, number]> {
  if (typeof v === 'number' && Number.isFinite(v)) yield [prefix, v];
  else if (v !== null && typeof v === 'object' && !Array.isArray(v) && depth < 3) {
    for (const [k, child] of Object.entries(v as Record<string, JsonValue>)) yield* numbersIn(child, prefix ? `${prefix}.${k}` : k, depth + 1);
  }
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
