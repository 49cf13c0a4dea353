// `sidetrace demo` end to end: embedded collector, demo services behind their sidecars, load
// for a bounded time, then the report drawn from the spans the collector received.

import type { Writable } from 'node:stream';
import { startCollector, type Collector } from '../collector/collector.js';
import { analyze, type Analysis } from '../collector/analysis.js';
import { renderReport } from '../collector/report.js';
import { bookstoreServices } from './bookstore.js';
import { checkoutServices } from './checkout.js';
import { driveLoad, type LoadResult } from './load.js';
import { startSidecars, writeDemoPolicy, type Sidecar } from './proxies.js';
import { startService, type RunningService } from './service.js';

export interface DemoOptions {
  durationMs: number;
  seed: number;
  orderFailAboveMs: number;
  cardLimit: number;
  /** Collector listen addresses; ui null disables the viewer. */
  otlp: string;
  ui: string | null;
  /** When the viewer address is busy, take a free port instead (only for the default address). */
  uiFallback: boolean;
  maxSpans: number;
  bookConcurrency: number;
  checkoutConcurrency: number;
  /** Services whose app drops the trace context instead of forwarding it. */
  noForward: ReadonlySet<string>;
}

export interface DemoResult {
  collector: Collector;
  analysis: Analysis;
  load: LoadResult;
  report: string;
}

export async function runDemo(opts: DemoOptions, out: Writable): Promise<DemoResult> {
  const collector = await openCollector(opts);
  const specs = [
    ...bookstoreServices({ seed: opts.seed, orderFailAboveMs: opts.orderFailAboveMs }),
    ...checkoutServices({ seed: opts.seed, cardLimit: opts.cardLimit }),
  ];
  const policy = writeDemoPolicy(specs);
  const apps: RunningService[] = [];
  let sidecars: Sidecar[] = [];
  try {
    for (const name of opts.noForward) {
      if (!specs.some((s) => s.name === name)) throw new Error(`ST_DEMO_UNKNOWN_SERVICE: --no-forward ${name}: the demo services are ${specs.map((s) => s.name).join(', ')}`);
    }
    for (const spec of specs) apps.push(await startService(spec, !opts.noForward.has(spec.name)));
    sidecars = await startSidecars(apps, `http://${collector.otlp.address}`, policy.file);
    const at = (name: string) => sidecars.find((s) => s.service === name)!;
    out.write(
      `sidetrace demo: ${sidecars.length} services, each behind its own sidetrace proxy (seed ${opts.seed})\n` +
        sidecars.map((s) => `  ${s.service.padEnd(15)} inbound ${s.inbound.address}:${s.inbound.port}  admin ${s.admin.address}:${s.admin.port}\n`).join('') +
        `  spans go to the embedded collector at ${collector.otlp.address}\n` +
        `driving load for ${opts.durationMs / 1000} s: POST /books/purchase (order fails above ${opts.orderFailAboveMs} ms) and POST /checkout…\n`,
    );
    const load = await driveLoad({
      durationMs: opts.durationMs,
      seed: opts.seed,
      bookstore: at('bookstore').inbound,
      gateway: at('gateway').inbound,
      bookConcurrency: opts.bookConcurrency,
      checkoutConcurrency: opts.checkoutConcurrency,
    });
    // Every span the proxies hold must reach the collector before the report reads it.
    await Promise.all(sidecars.map((s) => s.proxy.flush()));
    const statuses = Object.entries(load.byStatus).map(([code, n]) => `${code === '0' ? 'no answer' : code} ×${n}`).join(', ');
    out.write(`sent ${load.requests} requests (${statuses})\n\n`);

    const spans = [...collector.store.allSpans()];
    const analysis = analyze(spans);
    const culprit = analysis.failing.find((f) => f.origins > 0);
    const report = renderReport(analysis, culprit ? collector.store.trace(culprit.example.traceId) : undefined);
    out.write(report);
    return { collector, analysis, load, report };
  } catch (err) {
    await collector.close();
    throw err;
  } finally {
    await Promise.allSettled(sidecars.map((s) => s.proxy.close()));
    await Promise.allSettled(apps.map((a) => a.close()));
    policy.remove();
  }
}

async function openCollector(opts: DemoOptions): Promise<Collector> {
  const base = { otlp: opts.otlp, maxSpans: opts.maxSpans };
  try {
    return await startCollector({ ...base, ui: opts.ui });
  } catch (err) {
    if (!opts.uiFallback || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    return startCollector({ ...base, ui: '127.0.0.1:0' });
  }
}
