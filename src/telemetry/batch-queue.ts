// The bounded export queue: the wrapper between the request path and a transport.
// submit() is O(1) and never blocks; batching, conversion and sending happen on a timer or
// setImmediate tick, with at most `maxConcurrentExports` in flight, so a dead, slow or
// black-holed backend costs the proxy dropped spans (counted), never latency or memory.

import type { Counter } from './metrics.js';
import type { BatchConfig } from './otel-env.js';
import type { SpanRecord, SpanSink } from './span.js';

/** Sends one batch. Resolves true when the backend accepted it; should not reject. */
export interface BatchTransport {
  send(batch: SpanRecord[]): Promise<boolean>;
  shutdown(): Promise<void>;
}

export interface ExportCounters {
  /** Spans accepted into the queue. */
  submitted?: Counter;
  exported: Counter;
  /** Queue full, export failed or timed out, or submitted after shutdown. */
  dropped: Counter;
}

export class BatchQueue implements SpanSink {
  // A ring buffer: no shift() copying and no growth past maxQueueSize.
  private readonly buf: (SpanRecord | undefined)[];
  private head = 0;
  private count = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private drainScheduled = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly transport: BatchTransport,
    private readonly cfg: BatchConfig,
    private readonly counters: ExportCounters,
  ) {
    this.buf = new Array(cfg.maxQueueSize);
  }

  /** Spans waiting in the queue (not yet handed to the transport). */
  get queued(): number {
    return this.count;
  }

  get exportsInFlight(): number {
    return this.inFlight;
  }

  submit(span: SpanRecord): void {
    if (this.closed || this.count === this.buf.length) {
      this.counters.dropped.inc();
      return;
    }
    this.counters.submitted?.inc();
    let tail = this.head + this.count;
    if (tail >= this.buf.length) tail -= this.buf.length;
    this.buf[tail] = span;
    this.count++;
    if (this.count >= this.cfg.maxExportBatchSize) this.scheduleDrain();
    else if (this.timer === undefined) this.armTimer();
  }

  /** Sends everything queued now and resolves once no export is in flight. */
  flush(): Promise<void> {
    if (this.count === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.drain();
    });
  }

  /** Refuses further spans (they count as dropped), flushes, then closes the transport. */
  async shutdown(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.transport.shutdown();
  }

  private armTimer(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.drain();
    }, this.cfg.scheduleDelayMs);
    // The queue must never keep the process alive on its own.
    this.timer.unref();
  }

  // A full batch is sent on the next tick, not inside submit(), so the request that filled it
  // does not pay for conversion and serialization.
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.count > 0 && this.inFlight < this.cfg.maxConcurrentExports) {
      this.exportBatch(this.take(Math.min(this.count, this.cfg.maxExportBatchSize)));
    }
    if (this.count > 0 && this.inFlight >= this.cfg.maxConcurrentExports) return; // resumed by a finishing export
    this.notifyIfIdle();
  }

  private take(n: number): SpanRecord[] {
    const batch: SpanRecord[] = new Array(n);
    for (let i = 0; i < n; i++) {
      batch[i] = this.buf[this.head]!;
      this.buf[this.head] = undefined;
      if (++this.head === this.buf.length) this.head = 0;
    }
    this.count -= n;
    return batch;
  }

  private exportBatch(batch: SpanRecord[]): void {
    this.inFlight++;
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      this.inFlight--;
      (ok ? this.counters.exported : this.counters.dropped).inc(batch.length);
      this.afterExport();
    };
    // Backstop for a transport that never answers; the transport's own deadline should fire first.
    const watchdog = setTimeout(() => finish(false), this.cfg.exportTimeoutMs);
    watchdog.unref();
    try {
      this.transport.send(batch).then(finish, () => finish(false));
    } catch {
      finish(false);
    }
  }

  private afterExport(): void {
    if (this.idleWaiters.length > 0 || this.count >= this.cfg.maxExportBatchSize) this.drain();
    else if (this.count > 0 && this.timer === undefined) this.armTimer();
    else this.notifyIfIdle();
  }

  private notifyIfIdle(): void {
    if (this.count !== 0 || this.inFlight !== 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
