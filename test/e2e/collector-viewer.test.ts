// The viewer page in headless Chromium (Debian's chromium driven by playwright-core) against a
// collector fed by the official OTel SDK exporter: search, open a trace, read a body.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SpanKind, SpanStatusCode, context, trace as otelTrace } from '@opentelemetry/api';
import { TracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { startCollector, type Collector } from '../../src/collector/collector.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve('test-artifacts');

let collector: Collector;
let browser: Browser;
let page: Page;

async function sendTraces(otlp: string): Promise<void> {
  const exporter = new OTLPTraceExporter({ url: `http://${otlp}` });
  const providers = ['bookstore', 'book-orders'].map(
    (svc) => new TracerProvider({ resource: resourceFromAttributes({ 'service.name': svc }), spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
  );
  const [front, orders] = providers.map((p) => p.getTracer('viewer-test'));
  const t0 = Date.now() - 10_000;
  // Latencies as the seed's order_book draws them: failing above 700 ms.
  for (const [i, ms] of [120, 340, 650, 820, 1240].entries()) {
    const fail = ms > 700;
    const start = t0 + i * 1500;
    const root = front.startSpan('POST /books/purchase', {
      kind: SpanKind.SERVER,
      startTime: start,
      attributes: {
        'http.request.method': 'POST',
        'http.response.status_code': fail ? 502 : 200,
        'http.request.header.content-type': ['application/json'],
        'http.request.body': `{"bookId":"978-0262033848","quantity":${i + 1}}`,
      },
    });
    const ctx = otelTrace.setSpan(context.active(), root);
    const call = orders.startSpan('POST /books/order', {
      kind: SpanKind.SERVER,
      startTime: start + 40,
      attributes: {
        'http.response.status_code': fail ? 503 : 201,
        'http.response.header.content-type': ['application/json'],
        'http.request.body': `{"bookId":"978-0262033848","quantity":${i + 1}}`,
        'http.response.body': fail ? `{"error":"Book server is on high load! Latency: ${ms}"}` : `{"orderId":"ord-${i}"}`,
      },
    }, ctx);
    if (fail) call.setStatus({ code: SpanStatusCode.ERROR, message: 'HTTP 503' });
    call.end(start + 40 + ms);
    if (fail) root.setStatus({ code: SpanStatusCode.ERROR });
    root.end(start + ms + 60);
  }
  for (const p of providers) await p.shutdown();
}

beforeAll(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  collector = await startCollector({ otlp: '127.0.0.1:0', ui: '127.0.0.1:0', maxSpans: 1000 });
  await sendTraces(collector.otlp.address);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
});

afterAll(async () => {
  await browser?.close();
  await collector?.close();
});

describe('viewer in headless Chromium', () => {
  it('searches by service, error=true and min duration', async () => {
    await page.goto(collector.uiUrl!);
    await expect.poll(() => page.locator('#service option').allTextContents()).toEqual(['(all services)', 'book-orders', 'bookstore']);
    await page.selectOption('#service', 'book-orders');
    await expect.poll(() => page.locator('#operation option').allTextContents()).toContain('POST /books/order');
    await page.fill('#tags', 'error=true');
    await page.fill('#minDuration', '1s');
    await page.click('#find');
    await page.waitForSelector('.trace-row');
    // Only the 1,240 ms failure is both an error and over a second.
    expect(await page.locator('.trace-row').count()).toBe(1);
    expect(await page.locator('.trace-row .title').first().textContent()).toMatch(/^bookstore: POST \/books\/purchase1\.30s$/);
    await page.fill('#minDuration', '500ms');
    await page.click('#find');
    await expect.poll(() => page.locator('.trace-row').count()).toBe(2);
    await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-search.png') });
  });

  it('searches by attribute tags typed as key=value', async () => {
    await page.fill('#minDuration', '');
    await page.fill('#tags', 'http.response.status_code=201 http.response.header.content-type="application/json"');
    await page.click('#find');
    // Three orders succeeded (120, 340 and 650 ms); the failures answered 503.
    await expect.poll(() => page.locator('.trace-row').count()).toBe(3);
    await page.fill('#tags', 'http.response.status_code=201 error=true');
    await page.click('#find');
    await expect.poll(() => page.locator('.msg').first().textContent()).toBe('No traces found.');
    await page.fill('#tags', 'error=true');
    await page.fill('#minDuration', '500ms');
    await page.click('#find');
    await expect.poll(() => page.locator('.trace-row').count()).toBe(2);
  });

  it('opens a trace as a waterfall and shows the failing span with headers and bodies', async () => {
    await page.locator('.trace-row').first().click();
    await page.waitForSelector('.span-row');
    expect(await page.locator('.span-row .label').allTextContents()).toEqual(['bookstore POST /books/purchase', 'book-orders POST /books/order']);
    expect(await page.locator('.span-row .bar.err').count()).toBe(2);
    expect(page.url()).toMatch(/#\/trace\/[0-9a-f]{32}$/);
    // The deepest failing span is selected on open: its body says why.
    const bodies = await page.locator('#detail pre.body').allTextContents();
    expect(bodies.join('\n')).toContain('"error": "Book server is on high load! Latency: 1240"');
    expect(await page.locator('#detail').textContent()).toContain('content-type');
    await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-trace.png'), fullPage: true });

    await page.locator('.span-row').first().click();
    expect(await page.locator('#detail h3').textContent()).toBe('bookstore: POST /books/purchase (1.30s)');
    expect(await page.locator('#detail pre.body').first().textContent()).toContain('"quantity": 5');
  });

  it('comes back to the results and reloads a trace from its URL', async () => {
    await page.goBack();
    await expect.poll(() => page.locator('.trace-row').count()).toBe(2);
    await page.goForward();
    await page.waitForSelector('.span-row');
    const url = page.url();
    await page.goto('about:blank');
    await page.goto(url);
    await expect.poll(() => page.locator('.span-row').count()).toBe(2);
  });

  it('shows an API error message for a bad duration', async () => {
    await page.goto(collector.uiUrl!);
    await page.fill('#minDuration', 'soon');
    await page.click('#find');
    await expect.poll(() => page.locator('.error-msg').textContent()).toContain('invalid query parameter "minDuration"');
  });
});
