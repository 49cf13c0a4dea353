// The queue's own rules, against an in-process transport whose answers the test controls
// (the gRPC transport is exercised against a real receiver in test/e2e/export-*.test.ts).

import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { BatchQueue, estimateSpanBytes, type BatchTransport } from './batch-queue.js';
import { Metrics } from './metrics.js';
import { SpanKind, StatusCode, type SpanRecord } from './span.js';

function span(i: number, bodyBytes = 0): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: i.toString(16).padStart(16, '0'),
    sampled: true,
    name: 'x',
    kind: SpanKind.SERVER,
    startMs: 1,
    endMs: 2,
    attributes: bodyBytes ? { body: new Uint8Array(bodyBytes) } : {},
    events: [],
    status: { code: StatusCode.UNSET },
  };
}

class ManualTransport implements BatchTransport<SpanRecord> {
  readonly batches: { spans: SpanRecord[]; answer: (ok: boolean) => void }[] = [];
  shutdowns = 0;
  prepare(span: SpanRecord): SpanRecord {
    return span;
  }
  size(span: SpanRecord): number {
    return estimateSpanBytes(span);
  }
  send(batch: SpanRecord[]): Promise<number> {
    return new Promise((resolve) => this.batches.push({ spans: batch, answer: (ok) => resolve(ok ? batch.length : 0) }));
  }
  async shutdown(): Promise<void> {
    this.shutdowns++;
  }
}

function make(overrides: Partial<ConstructorParameters<typeof BatchQueue>[1]> = {}) {
  const metrics = new Metrics();
  const transport = new ManualTransport();
  const counters = { submitted: metrics.counter('s', ''), exported: metrics.counter('e', ''), dropped: metrics.counter('d', '') };
  const q = new BatchQueue(transport, { maxQueueSize: 8, maxExportBatchSize: 4, scheduleDelayMs: 10, exportTimeoutMs: 200, maxConcurrentExports: 1, maxQueueBytes: 1 << 30, maxExportBatchBytes: 1 << 30, ...overrides }, counters);
  return { q, transport, metrics };
}

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('BatchQueue', () => {
  it('sends nothing inside submit(); a full batch goes out on the next tick, in order, one batch per tick', async () => {
    const { q, transport } = make();
    for (let i = 0; i < 4; i++) q.submit(span(i));
    expect(transport.batches).toHaveLength(0);
    await tick();
    expect(transport.batches.map((b) => b.spans.map((s) => s.spanId.slice(-1)))).toEqual([['0', '1', '2', '3']]);
  });

  it('with room for several exports, sends one batch per tick', async () => {
    const { q, transport } = make({ maxQueueSize: 100, maxConcurrentExports: 3, scheduleDelayMs: 60_000 });
    for (let i = 0; i < 12; i++) q.submit(span(i));
    await tick();
    expect(transport.batches).toHaveLength(1);
    await tick();
    expect(transport.batches).toHaveLength(2);
    await tick();
    expect(transport.batches).toHaveLength(3);
    expect(q.queued).toBe(0);
  });

  it('a partial batch waits for the schedule delay', () => {
    // Fake timers: with real ones, a loaded machine can let the 30 ms pass before the first check.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { q, transport } = make({ scheduleDelayMs: 30 });
      q.submit(span(1));
      vi.advanceTimersByTime(29);
      expect(transport.batches).toHaveLength(0);
      vi.advanceTimersByTime(1);
      expect(transport.batches).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('respects the in-flight limit and the queue bound, and counts every span once', async () => {
    const { q, transport, metrics } = make();
    for (let i = 0; i < 20; i++) q.submit(span(i));
    await tick();
    // 8 fit, 12 dropped; 1 batch of 4 in flight (limit 1), 4 still queued.
    expect(metrics.get('d')).toBe(12);
    expect(transport.batches).toHaveLength(1);
    expect(q.queued).toBe(4);
    transport.batches[0].answer(true);
    await tick();
    expect(transport.batches).toHaveLength(2);
    transport.batches[1].answer(false);
    await tick();
    expect(metrics.get('e')).toBe(4);
    expect(metrics.get('d')).toBe(16);
    expect(metrics.get('e') + metrics.get('d') + q.queued).toBe(20);
  });

  it('the watchdog drops a batch the transport never answers, and a late answer is not double-counted', async () => {
    const { q, transport, metrics } = make({ exportTimeoutMs: 30 });
    for (let i = 0; i < 4; i++) q.submit(span(i));
    await tick();
    await sleep(60);
    expect(metrics.get('d')).toBe(4);
    expect(q.exportsInFlight).toBe(0);
    transport.batches[0].answer(true);
    await tick();
    expect(metrics.get('e')).toBe(0);
    expect(metrics.get('d')).toBe(4);
  });

  it('a transport that throws synchronously costs the batch, not the caller', async () => {
    const metrics = new Metrics();
    const counters = { exported: metrics.counter('e', ''), dropped: metrics.counter('d', '') };
    const q = new BatchQueue(
      { prepare: (s: SpanRecord) => s, size: () => 1, send: () => { throw new Error('boom'); }, shutdown: async () => {} },
      { maxQueueSize: 8, maxExportBatchSize: 2, scheduleDelayMs: 10, exportTimeoutMs: 100, maxConcurrentExports: 1, maxQueueBytes: 1 << 30, maxExportBatchBytes: 1 << 30 },
      counters,
    );
    q.submit(span(1));
    q.submit(span(2));
    await tick();
    expect(metrics.get('d')).toBe(2);
  });

  it('flush sends partial batches now and waits for them; shutdown closes the transport and refuses more', async () => {
    const { q, transport, metrics } = make({ scheduleDelayMs: 60_000 });
    q.submit(span(1));
    q.submit(span(2));
    let flushed = false;
    const f = q.flush().then(() => (flushed = true));
    expect(transport.batches).toHaveLength(1);
    await tick();
    expect(flushed).toBe(false);
    transport.batches[0].answer(true);
    await f;
    expect(metrics.get('e')).toBe(2);
    await q.shutdown();
    expect(transport.shutdowns).toBe(1);
    q.submit(span(3));
    expect(metrics.get('d')).toBe(1);
    expect(metrics.get('s')).toBe(2);
  });

  it('bounds the queue by estimated bytes too: big bodies are dropped before the count limit', async () => {
    const size = estimateSpanBytes(span(0, 1000));
    expect(size).toBeGreaterThan(1000);
    const { q, metrics } = make({ maxQueueSize: 100, maxExportBatchSize: 100, maxQueueBytes: size * 3, scheduleDelayMs: 60_000 });
    for (let i = 0; i < 5; i++) q.submit(span(i, 1000));
    expect(q.queued).toBe(3);
    expect(q.queuedBytes).toBe(size * 3);
    expect(metrics.get('d')).toBe(2);
  });

  it('at the byte bound, later spans are dropped without being prepared until a batch leaves', async () => {
    const size = estimateSpanBytes(span(0, 1000));
    const { q, transport, metrics } = make({ maxQueueSize: 100, maxExportBatchSize: 2, maxQueueBytes: size * 2, scheduleDelayMs: 60_000 });
    const prepare = vi.spyOn(transport, 'prepare');
    for (let i = 0; i < 3; i++) q.submit(span(i, 1000));
    q.submit(span(3));
    expect(prepare).toHaveBeenCalledTimes(3);
    expect(metrics.get('d')).toBe(2);
    await tick();
    expect(transport.batches).toHaveLength(1);
    q.submit(span(4));
    expect(prepare).toHaveBeenCalledTimes(4);
    expect(q.queued).toBe(1);
  });

  it('a span bigger than the byte bound still gets in when the queue is empty', () => {
    const { q, metrics } = make({ maxQueueBytes: 10, scheduleDelayMs: 60_000 });
    q.submit(span(1, 100));
    expect(q.queued).toBe(1);
    expect(metrics.get('d')).toBe(0);
  });

  it('splits batches at maxExportBatchBytes, sending a lone oversized span on its own', async () => {
    const size = estimateSpanBytes(span(0, 1000));
    const { q, transport } = make({ maxQueueSize: 100, maxExportBatchSize: 100, maxExportBatchBytes: size * 2, maxConcurrentExports: 10, scheduleDelayMs: 60_000 });
    for (let i = 0; i < 5; i++) q.submit(span(i, 1000));
    q.submit(span(5, 5000));
    q.submit(span(6, 1000));
    for (let i = 0; i < 6; i++) await tick();
    expect(transport.batches.map((b) => b.spans.length)).toEqual([2, 2, 1, 1, 1]);
    expect(q.queuedBytes).toBe(0);
  });

  it('a malformed record is dropped and counted, never thrown to the caller', () => {
    const { q, metrics } = make();
    expect(() => q.submit({ ...span(1), events: undefined } as unknown as SpanRecord)).not.toThrow();
    expect(metrics.get('d')).toBe(1);
    q.submit({ ...span(2), attributes: { odd: [1, 2] as unknown as string[] } });
    expect(q.queued).toBe(1);
    expect(Number.isFinite(q.queuedBytes)).toBe(true);
  });
  it('every item prepare() makes goes back to the transport once, sent or discarded, or stays queued; counters add up', async () => {
    // Items as the OTLP transport's (numbers naming bytes it holds until the item comes back).
    class HandleTransport implements BatchTransport<number> {
      next = 0;
      readonly out = new Map<number, number>();
      readonly answers: ((accepted: number) => void)[] = [];
      prepare(s: SpanRecord): number {
        this.out.set(this.next, estimateSpanBytes(s));
        return this.next++;
      }
      size(h: number): number {
        return this.out.get(h)!;
      }
      private back(h: number): void {
        expect(this.out.delete(h)).toBe(true);
      }
      discard(h: number): void {
        this.back(h);
      }
      send(batch: number[]): Promise<number> {
        for (const h of batch) this.back(h);
        // Accepted: all, none, or some (partial success), never more than sent.
        return new Promise((resolve) => this.answers.push((accepted) => resolve(Math.min(accepted, batch.length))));
      }
      async shutdown(): Promise<void> {}
    }
    const step = fc.oneof(
      fc.record({ submit: fc.integer({ min: 1, max: 6 }), body: fc.integer({ min: 0, max: 3000 }) }),
      fc.record({ answer: fc.integer({ min: -1, max: 4 }) }),
      fc.constant({ tick: true }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), fc.boolean(), async (steps, shut) => {
        const metrics = new Metrics();
        const transport = new HandleTransport();
        const counters = { submitted: metrics.counter('s', ''), exported: metrics.counter('e', ''), dropped: metrics.counter('d', '') };
        const q = new BatchQueue(transport, { maxQueueSize: 12, maxExportBatchSize: 4, scheduleDelayMs: 60_000, exportTimeoutMs: 60_000, maxConcurrentExports: 2, maxQueueBytes: 6000, maxExportBatchBytes: 4000 }, counters);
        let offered = 0;
        for (const st of steps) {
          if ('submit' in st) for (let i = 0; i < st.submit; i++, offered++) q.submit(span(offered, st.body));
          else if ('answer' in st) transport.answers.shift()?.(st.answer < 0 ? 0 : st.answer);
          else await tick();
          expect(transport.out.size).toBe(q.queued);
        }
        if (shut) void q.shutdown(0);
        // Answer whatever is sent (a drain may send more a tick later) until nothing is in flight.
        for (let i = 0; i < 20 && q.exportsInFlight > 0; i++) {
          while (transport.answers.length > 0) transport.answers.shift()!(Infinity);
          await tick();
        }
        expect(transport.out.size).toBe(q.queued);
        // Answered: every span offered is exported, dropped or queued.
        expect(q.exportsInFlight).toBe(0);
        expect(metrics.get('e') + metrics.get('d') + q.queued).toBe(offered);
      }),
      { numRuns: 200 },
    );
  });
});
