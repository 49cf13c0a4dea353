// The bounded export queue: the wrapper between the request path and a transport.
// submit() is O(1) in the queue's size and never blocks: it hands the span to the transport's
// prepare() (the OTLP transport encodes it there, once, so the queue holds compact bytes and the
// span object dies young) and queues what comes back. Batching and sending happen on a timer or
// setImmediate tick, with at most `maxConcurrentExports` in flight, so a dead, slow or black-holed
// backend costs the proxy dropped spans (counted), never latency or memory.

import type { Counter } from './metrics.js';
import type { BatchConfig } from './otel-env.js';
import type { SpanRecord, SpanSink } from './span.js';

/** Where batches go, and what the queue keeps of a span until then (an Item). */
export interface BatchTransport<Item> {
  /** What the queue keeps for `span`; called in submit(). May throw on a malformed span (it is dropped). */
  prepare(span: SpanRecord): Item;
  /** prepare() keeps no reference to bytes values shorter than this (SpanSink.copiesBytesBelow). */
  readonly copiesBytesBelow?: number;
  /** The bytes an item stands for: what maxQueueBytes and maxExportBatchBytes bound. */
  size(item: Item): number;
  /**
   * Sends one batch; the items are the transport's again (the queue does not read them after).
   * Resolves with how many of its spans the backend accepted: all of them, 0 when
   * the export failed, fewer on an OTLP partial success (the rest count as dropped). Should not reject.
   */
  send(batch: Item[]): Promise<number>;
  /** The queue dropped an item prepare() made, unsent (the byte bound): what it holds can go. */
  discard?(item: Item): void;
  /** Shutdown has begun: finish what is in flight without new attempts (no retries). */
  closing?(): void;
  shutdown(): Promise<void>;
}

export interface ExportCounters {
  /** Spans accepted into the queue. */
  submitted?: Counter;
  exported: Counter;
  /** Queue full, export failed or timed out, rejected by the backend, or submitted after shutdown. */
  dropped: Counter;
}

export class BatchQueue<Item> implements SpanSink {
  // A ring buffer: no shift() copying and no growth past maxQueueSize.
  private readonly buf: (Item | undefined)[];
  private readonly sizes: Int32Array;
  private head = 0;
  private count = 0;
  private bytes = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private drainScheduled = false;
  /**
   * A span was dropped for the byte bound and no batch has left since: later spans are dropped
   * before prepare(), so an overloaded queue does not encode spans only to throw them away.
   */
  private bytesFull = false;
  private closed = false;
  /** Shutdown finished: nothing more is sent. */
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly transport: BatchTransport<Item>,
    private readonly cfg: BatchConfig,
    private readonly counters: ExportCounters,
  ) {
    this.buf = new Array(cfg.maxQueueSize);
    this.sizes = new Int32Array(cfg.maxQueueSize);
  }

  /** Spans waiting in the queue (not yet handed to the transport). */
  get queued(): number {
    return this.count;
  }

  /** Bytes of the queued spans (as the transport sizes them). */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** submit() only drops a span or hands it to prepare(), so it keeps what prepare() keeps. */
  get copiesBytesBelow(): number {
    return this.transport.copiesBytesBelow ?? 0;
  }

  /** A submit now would be dropped: producers under overload skip building spans nobody will send. */
  get full(): boolean {
    return this.closed || this.count === this.buf.length || this.bytesFull;
  }

  get exportsInFlight(): number {
    return this.inFlight;
  }

  submit(span: SpanRecord): void {
    if (this.full) {
      this.counters.dropped.inc();
      return;
    }
    let item: Item;
    let size: number;
    try {
      item = this.transport.prepare(span);
      size = this.transport.size(item);
    } catch {
      // A malformed record (a producer bug) costs that span, never the request that ended it.
      this.counters.dropped.inc();
      return;
    }
    if (this.bytes + size > this.cfg.maxQueueBytes && this.count > 0) {
      this.transport.discard?.(item);
      this.bytesFull = true;
      this.counters.dropped.inc();
      this.scheduleDrain();
      return;
    }
    this.counters.submitted?.inc();
    let tail = this.head + this.count;
    if (tail >= this.buf.length) tail -= this.buf.length;
    this.buf[tail] = item;
    this.sizes[tail] = size;
    this.count++;
    this.bytes += size;
    if (this.count >= this.cfg.maxExportBatchSize || this.bytes >= this.cfg.maxExportBatchBytes) this.scheduleDrain();
    else if (this.timer === undefined) this.armTimer();
  }

  /** Sends everything queued now and resolves once no export is in flight. */
  flush(): Promise<void> {
    if (this.stopped || (this.count === 0 && this.inFlight === 0)) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.drain();
    });
  }

  /**
   * Refuses further spans (they count as dropped), flushes for at most `timeoutMs` (default: one
   * export timeout), then closes the transport. Spans still queued then stay in `queued`: a pod
   * being terminated cannot wait out a dead backend batch after batch.
   */
  async shutdown(timeoutMs: number = this.cfg.exportTimeoutMs): Promise<void> {
    this.closed = true;
    this.transport.closing?.();
    const until = Date.now() + timeoutMs;
    await withDeadline(this.flush(), timeoutMs);
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    // Exports still in flight settle later (exported or dropped) on their own deadline.
    await withDeadline(this.transport.shutdown(), Math.max(0, until - Date.now()));
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
  // does not pay for assembling and sending it.
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    if (this.stopped) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.count > 0 && this.inFlight < this.cfg.maxConcurrentExports) {
      this.exportBatch(this.take());
      // Assembling and sending a batch holds the event loop for a while; the next one waits a
      // tick so requests get served in between.
      if (this.count > 0 && this.inFlight < this.cfg.maxConcurrentExports) this.scheduleDrain();
      return;
    }
    if (this.count > 0) return; // resumed by a finishing export
    this.notifyIfIdle();
  }

  /** Up to maxExportBatchSize spans and maxExportBatchBytes, but always at least one span. */
  private take(): Item[] {
    const batch: Item[] = [];
    let bytes = 0;
    while (this.count > 0 && batch.length < this.cfg.maxExportBatchSize) {
      const size = this.sizes[this.head];
      if (batch.length > 0 && bytes + size > this.cfg.maxExportBatchBytes) break;
      batch.push(this.buf[this.head]!);
      bytes += size;
      this.buf[this.head] = undefined;
      if (++this.head === this.buf.length) this.head = 0;
      this.count--;
    }
    this.bytes -= bytes;
    this.bytesFull = false;
    return batch;
  }

  private exportBatch(batch: Item[]): void {
    this.inFlight++;
    let settled = false;
    const finish = (accepted: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      this.inFlight--;
      if (accepted > 0) this.counters.exported.inc(accepted);
      if (accepted < batch.length) this.counters.dropped.inc(batch.length - accepted);
      this.afterExport();
    };
    // Backstop for a transport that never answers; the transport's own deadline should fire first.
    const watchdog = setTimeout(() => finish(0), this.cfg.exportTimeoutMs);
    watchdog.unref();
    try {
      this.transport.send(batch).then(finish, () => finish(0));
    } catch {
      finish(0);
    }
  }

  private afterExport(): void {
    if (this.idleWaiters.length > 0 || this.count >= this.cfg.maxExportBatchSize || this.bytes >= this.cfg.maxExportBatchBytes) this.drain();
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

function withDeadline(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Roughly what a span costs in memory and on the wire, for transports that keep span records:
 * bodies and string values by length, a fixed amount per attribute (keys are short). It runs in
 * submit(), on the request path, so it does one typeof per attribute: a Uint8Array body counts its
 * bytes, a string[] its element count (they are rare and short). Reads a span's own attributes
 * only, so submit() stays independent of queue size.
 */
export function estimateSpanBytes(span: SpanRecord): number {
  let n = 96 + span.name.length + (span.traceState === undefined ? 0 : span.traceState.length) + attributesBytes(span.attributes);
  for (let i = 0; i < span.events.length; i++) n += 24 + span.events[i].name.length + attributesBytes(span.events[i].attributes);
  return n;
}

const PER_ATTRIBUTE = 40;

function attributesBytes(attrs: SpanRecord['attributes']): number {
  let n = 0;
  for (const k in attrs) {
    const v = attrs[k];
    n += PER_ATTRIBUTE;
    if (typeof v === 'string') n += v.length;
    else if (typeof v === 'object') n += v.length;
  }
  return n;
}
