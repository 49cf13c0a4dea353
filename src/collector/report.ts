// The text report `sidetrace demo` prints: error rates, slowest operations, where failures
// start and why, and an ASCII waterfall of one failing trace with its captured bodies.

import type { StoredSpan } from './model.js';
import { bodiesOf, failed, MIN_FAILURES, operationOf, type Analysis, type Separator } from './analysis.js';

const KIND = ['', 'internal', 'server', 'client', 'producer', 'consumer'];

export function renderReport(a: Analysis, trace: readonly StoredSpan[] | undefined): string {
  const out: string[] = [];
  out.push(`sidetrace report: ${a.spans} spans in ${a.traces} traces`, '');

  out.push('Error rate by service (server side; an error is status ERROR or HTTP status >= 400)');
  out.push(...table(
    ['SERVICE', 'REQUESTS', 'ERRORS', 'RATE'],
    a.services.map((s) => [s.service, String(s.requests), String(s.errors), pct(s.errors, s.requests)]),
    [false, true, true, true],
  ));
  out.push('');

  out.push('Slowest operations (server side)');
  out.push(...table(
    ['SERVICE', 'OPERATION', 'CALLS', 'P50', 'P95', 'MAX', 'ERRORS'],
    a.slowest.slice(0, 8).map((o) => [o.service, o.operation, String(o.calls), ms(o.p50), ms(o.p95), ms(o.max), pct(o.errors, o.calls)]),
    [false, false, true, true, true, true, true],
  ));
  out.push('');

  out.push('Failing operations');
  if (a.failing.length === 0) out.push('  none: every call succeeded');
  for (const f of a.failing) {
    const where = f.origins > 0 ? `${f.origins} of them start here` : 'all caused by a failing call it made';
    out.push(`  ${f.origins > 0 ? 'x' : '-'} ${f.service} \`${f.operation}\`: ${f.failures} of ${f.calls} calls failed (${pct(f.failures, f.calls)}), ${where}`);
    if (f.origins === 0) continue;
    const why = f.culprit
      ? explainText(f.operation, f.culprit)
      : f.failures < MIN_FAILURES
        ? `too few failures (${f.failures}) to tell a pattern; see the bodies`
        : 'no latency or request-body value separates its failures from its successes; see the bodies';
    out.push(`      culprit: ${why}`);
    const status = f.example.attributes['http.response.status_code'];
    const response = bodiesOf(f.example).find((b) => b.key.includes('response'));
    const detail = [status !== undefined ? `HTTP ${String(status)}` : '', f.example.status.message ?? '', response ? clip(oneLine(response.text), 120) : '']
      .filter(Boolean)
      .join(' ');
    if (detail) out.push(`      e.g. ${detail}`);
  }
  out.push('');

  if (a.unforwarded.length) {
    out.push('Trace context not forwarded');
    for (const u of a.unforwarded) {
      out.push(`  ! ${u.service} made ${u.calls} call${u.calls === 1 ? '' : 's'} without the trace context it received: each started a new trace,`);
    }
    out.push(
      '    so those hops are recorded (with bodies) but not joined to the request that caused them, and a',
      '    failure behind them shows up as starting in the caller. Fix: forward `traceparent` and `tracestate`',
      '    from the incoming request to outgoing calls (any OpenTelemetry instrumentation does it).',
      '',
    );
  }

  if (trace && trace.length) out.push(...waterfall(trace));
  return out.join('\n') + '\n';
}

function explainText(operation: string, s: Separator): string {
  const wrong = s.misfits ? ` (${s.misfits} call${s.misfits === 1 ? '' : 's'} do not fit)` : '';
  if (s.feature === 'duration') {
    return `\`${operation}\` fails when it is slower than ${ms(s.threshold)}: ${s.failuresAbove} failed calls took ${ms(s.failMin)} or more, ${s.successesAtOrBelow} successful ones at most ${ms(s.okMax)}${wrong}`;
  }
  return `\`${operation}\` fails when the request body's \`${s.feature}\` is above ${fmtNum(s.threshold)}: ${s.failuresAbove} failed calls had ${fmtNum(s.failMin)} or more, ${s.successesAtOrBelow} successful ones at most ${fmtNum(s.okMax)}${wrong}`;
}

const BAR = 40;

/** A trace as an indented tree with a time bar per span, bodies under the failing spans. */
export function waterfall(spans: readonly StoredSpan[]): string[] {
  const start = Math.min(...spans.map((s) => s.startMs));
  const end = Math.max(...spans.map((s) => s.endMs));
  const total = Math.max(end - start, 0.001);
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, StoredSpan[]>();
  for (const s of spans) {
    const p = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : '';
    const list = children.get(p);
    if (list) list.push(s);
    else children.set(p, [s]);
  }
  const rows: { s: StoredSpan; depth: number }[] = [];
  const walk = (parent: string, depth: number): void => {
    for (const s of (children.get(parent) ?? []).sort((a, b) => a.startMs - b.startMs)) {
      rows.push({ s, depth });
      walk(s.spanId, depth + 1);
    }
  };
  walk('', 0);
  const labels = rows.map(({ s, depth }) => `${'  '.repeat(depth)}${s.service} ${operationOf(s)} [${KIND[s.kind] ?? s.kind}]`);
  const width = Math.min(60, Math.max(...labels.map((l) => l.length)));
  // Bodies where they tell the story: the request that came in, and the calls where failures start.
  const failingParents = new Set(spans.filter((s) => s.parentSpanId && failed(s)).map((s) => s.parentSpanId));
  const showBodies = (s: StoredSpan, depth: number): boolean => depth === 0 || (failed(s) && !failingParents.has(s.spanId));
  const out = [`Waterfall of failing trace ${spans[0].traceId} (${ms(total)}, ${spans.length} spans; = ok, x failed)`];
  rows.forEach(({ s, depth }, i) => {
    const from = Math.min(BAR - 1, Math.floor(((s.startMs - start) / total) * BAR));
    const len = Math.max(1, Math.round((s.durationMs / total) * BAR));
    const bar = ' '.repeat(from) + (failed(s) ? 'x' : '=').repeat(Math.min(len, BAR - from));
    const status = s.attributes['http.response.status_code'];
    out.push(`  ${clip(labels[i], width).padEnd(width)} |${bar.padEnd(BAR)}| ${ms(s.durationMs).padStart(8)} ${status !== undefined ? String(status) : failed(s) ? 'ERR' : ''}`);
    if (!showBodies(s, depth)) return;
    const pad = ' '.repeat(4 + depth * 2);
    for (const b of bodiesOf(s)) out.push(`${pad}${b.key}: ${clip(oneLine(b.text), 150)}`);
    if (s.status.message) out.push(`${pad}status: ${s.status.message}`);
  });
  return out;
}

function table(head: string[], rows: string[][], right: boolean[]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]): string => '  ' + r.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

export function ms(v: number): string {
  if (v >= 10_000) return `${(v / 1000).toFixed(1)} s`;
  if (v >= 100) return `${Math.round(v)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

function pct(n: number, d: number): string {
  return d === 0 ? '-' : `${((n / d) * 100).toFixed(1)}%`;
}

function fmtNum(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n - 1) + '…';
}
