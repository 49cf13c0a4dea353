// The console exporter (--console / OTEL_TRACES_EXPORTER=console): JSON lines written per batch,
// never per request, bytes as base64; and the 'none' exporter that keeps nothing.

import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createSpanExporter } from '../../src/telemetry/export.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { exportConfigFromEnv } from '../../src/telemetry/otel-env.js';
import { spanFromJson } from '../../src/telemetry/span-json.js';
import { SpanKind, StatusCode, type SpanRecord } from '../../src/telemetry/span.js';

function span(i: number): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: i.toString(16).padStart(16, '0'),
    sampled: true,
    name: `GET /item/${i}`,
    kind: SpanKind.SERVER,
    startMs: 1_763_700_000_000 + i,
    endMs: 1_763_700_000_001 + i,
    attributes: { 'http.response.body': Buffer.from([i & 0xff, 0x00, 0xff]) },
    events: [],
    status: { code: StatusCode.OK },
  };
}

function counters() {
  const metrics = new Metrics();
  return { metrics, counters: { exported: metrics.counter('e', ''), dropped: metrics.counter('d', '') } };
}

describe('console exporter', () => {
  it('writes each batch as one write of JSON lines, after the submits, bytes as { base64 }', async () => {
    const out = new PassThrough();
    const writes: string[] = [];
    out.on('data', (d: Buffer) => writes.push(d.toString()));
    const { metrics, counters: c } = counters();
    const exporter = createSpanExporter({ config: exportConfigFromEnv({}, { console: true }), resource: {}, counters: c, out });
    for (let i = 0; i < 5; i++) exporter.submit(span(i));
    // Nothing written on the submitting tick.
    expect(writes).toHaveLength(0);
    await exporter.shutdown();
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(1);
    const lines = writes[0].split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => spanFromJson(l).name)).toEqual(['GET /item/0', 'GET /item/1', 'GET /item/2', 'GET /item/3', 'GET /item/4']);
    expect(JSON.parse(lines[3]).attributes['http.response.body']).toEqual({ base64: Buffer.from([3, 0, 255]).toString('base64') });
    expect(metrics.get('e')).toBe(5);
  });

  it('drops (and counts) batches while the output is stalled instead of buffering without end', async () => {
    const out = new PassThrough({ highWaterMark: 1024 }); // nobody reads it
    const { metrics, counters: c } = counters();
    const config = exportConfigFromEnv({ OTEL_TRACES_EXPORTER: 'console', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '100', OTEL_BSP_MAX_QUEUE_SIZE: '100' });
    const exporter = createSpanExporter({ config, resource: {}, counters: c, out });
    const big = (i: number): SpanRecord => ({ ...span(i), attributes: { 'http.response.body': Buffer.alloc(64 * 1024) } });
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 100; i++) exporter.submit(big(i));
      await exporter.flush();
    }
    expect(metrics.get('d')).toBeGreaterThan(0);
    expect(metrics.get('e') + metrics.get('d')).toBe(2000);
    // The cap is 8 MiB of unwritten output, plus at most one batch (~8.7 MB of base64 here).
    expect(out.writableLength).toBeLessThan(8 * 1024 * 1024 + 100 * 90 * 1024);
  });

  it("OTEL_TRACES_EXPORTER=none keeps nothing and counts nothing", async () => {
    const { metrics, counters: c } = counters();
    const exporter = createSpanExporter({ config: exportConfigFromEnv({ OTEL_TRACES_EXPORTER: 'none' }), resource: {}, counters: c });
    for (let i = 0; i < 10; i++) exporter.submit(span(i));
    expect(exporter.queued).toBe(0);
    await exporter.shutdown();
    expect(metrics.get('e') + metrics.get('d')).toBe(0);
  });
});
