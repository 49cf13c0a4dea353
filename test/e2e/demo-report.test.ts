// `sidetrace demo` end to end and shortened: real demo services behind real sidetrace proxies
// exporting OTLP to the embedded collector. The report must find each culprit from the spans,
// so changing the failure thresholds must move what it reports.

import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { run } from '../../src/commands/demo.js';

async function demo(args: string[]): Promise<string> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c) => (text += c));
  const code = await run(['--duration', '6', '--exit', '--ui', '127.0.0.1:0', ...args], out);
  expect(code).toBe(0);
  return text;
}

interface Culprit {
  threshold: number;
  failMin: number;
  okMax: number;
}

function latencyCulprit(report: string): Culprit {
  const m = /culprit: `POST \/books\/order` fails when it is slower than (\d+) ms: \d+ failed calls took ([\d.]+) ms or more, \d+ successful ones at most ([\d.]+) ms/.exec(report);
  expect(m, report).not.toBeNull();
  return { threshold: Number(m![1]), failMin: Number(m![2]), okMax: Number(m![3]) };
}

describe('sidetrace demo', () => {
  it('rejects a collector address that is not host:port as a usage error (exit code 2)', async () => {
    expect(await run(['--otlp', 'nowhere', '--exit'], new PassThrough())).toBe(2);
  });

  it('reports the order service failing above 700 ms and payment declining amounts above 500', async () => {
    const report = await demo(['--seed', '11', '--order-fail-above-ms', '700', '--card-limit', '500']);
    expect(report).toMatch(/^sidetrace report: \d+ spans in \d+ traces$/m);
    // The errors start in book-orders; bookstore fails only because of it.
    expect(report).toMatch(/^  x book-orders `POST \/books\/order`: \d+ of \d+ calls failed \([\d.]+%\), \d+ of them start here$/m);
    expect(report).toMatch(/^  - bookstore `POST \/books\/purchase`: .* all caused by a failing call it made$/m);
    const c = latencyCulprit(report);
    expect(Math.abs(c.threshold - 700)).toBeLessThanOrEqual(100);
    expect(c.failMin).toBeGreaterThan(700);
    expect(report).toContain("`POST /payments/charge` fails when the request body's `amount` is above 500");
    // Error rates come from server spans of each service.
    expect(report).toMatch(/^  book-validator\s+\d+\s+0\s+0\.0%$/m);
    expect(report).toMatch(/^  book-orders\s+\d+\s+\d+\s+[1-9][\d.]*%$/m);
    // A failing trace drawn with its bodies: the request that came in and why it failed.
    expect(report).toMatch(/^Waterfall of failing trace [0-9a-f]{32} /m);
    expect(report).toMatch(/http\.response\.body\.content: .*(Book server is on high load! Latency: \d+|card declined)/);
    expect(report).toMatch(/http\.request\.body\.content: \{/);
    expect(report).not.toContain('Trace context not forwarded');
  });

  it('follows the thresholds when they change, and names an app that drops trace context', async () => {
    const report = await demo(['--seed', '12', '--order-fail-above-ms', '400', '--card-limit', '300', '--no-forward', 'orders']);
    const c = latencyCulprit(report);
    expect(Math.abs(c.threshold - 400)).toBeLessThanOrEqual(100);
    expect(c.failMin).toBeGreaterThan(400);
    expect(report).toContain("`POST /payments/charge` fails when the request body's `amount` is above 300");
    expect(report).toMatch(/^  ! orders made \d+ calls without the trace context it received/m);
    expect(report).not.toMatch(/^  ! (gateway|bookstore) /m);
  });
});
