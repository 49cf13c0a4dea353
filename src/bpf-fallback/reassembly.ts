// Per-direction stream reassembly for the node agent. ByteStream orders one (connection,
// direction, source) stream's data events by `pos`, drops duplicates and overlaps, holds a few
// out-of-order events, and turns missing bytes into explicit gap segments so the parser above can
// resynchronise instead of misparsing. ParseBuffer holds the bytes not yet parsed, with the
// kernel time of each byte range so frames get the times of their first and last byte.

import type { DataEvent } from './events.js';
import { payloadView, unpinned } from './protocols/protocol.js';

/** What a stream needs of a data event. */
export type StreamData = Pick<DataEvent, 'pos' | 'size' | 'data' | 'tsNs'>;

/** A gap's bytes were lost between the kernel times `fromNs` (last data before) and `toNs` (first after). */
export type Segment = { kind: 'data'; data: Buffer; tsNs: number } | { kind: 'gap'; length: number; fromNs: number; toNs: number };

export interface StreamLimits {
  /** Out-of-order bytes held while waiting for the missing ones; beyond it the hole becomes a gap. */
  maxPendingBytes: number;
  maxPendingEvents: number;
  /** Batches a hole may stay open before it is declared a gap. */
  maxPendingBatches: number;
}

export const DEFAULT_STREAM_LIMITS: Readonly<StreamLimits> = {
  maxPendingBytes: 256 * 1024,
  maxPendingEvents: 64,
  maxPendingBatches: 2,
};

export interface StreamCounters {
  /** Holes in a stream (lost or truncated events) turned into gap segments. */
  gaps: number;
  lostBytes: number;
  /** Events (or parts) already seen, dropped. */
  duplicates: number;
}

const EMPTY = Buffer.alloc(0);

export class ByteStream {
  /** Stream position of the next byte expected; -1 before the first event. */
  private next = -1;
  private pending: StreamData[] = [];
  private pendingBytes = 0;
  private pendingAge = 0;
  /** Position of the first byte ever seen: > 0 means the stream was first seen mid-way. */
  firstPos = -1;
  /** Kernel time of the last data released. */
  private lastNs = 0;

  /** `startPos`: where the stream is known to begin (0 when its connection was seen opening). */
  constructor(
    private readonly limits: StreamLimits,
    private readonly counters: StreamCounters,
    startPos = -1,
  ) {
    this.next = startPos;
  }

  get buffered(): number {
    return this.pendingBytes;
  }

  /** Takes one event; appends the in-order segments it releases to `out`. */
  accept(ev: StreamData, out: Segment[]): void {
    if (this.next < 0) {
      this.next = ev.pos;
      this.firstPos = ev.pos;
    }
    if (ev.pos + Math.max(ev.size, ev.data.length) <= this.next) {
      this.counters.duplicates++;
      return;
    }
    if (ev.pos > this.next) {
      this.hold(ev);
      if (this.pendingBytes > this.limits.maxPendingBytes || this.pending.length > this.limits.maxPendingEvents) this.forceGap(out);
      return;
    }
    this.release(ev, out);
    this.drain(out);
  }

  /**
   * The usual event, taken without a Segment: it starts where the stream is, was copied whole
   * (`captured` of its `size` bytes) and nothing is held. True when it was taken (its data are
   * the stream's next bytes, for the caller to use as accept's one data segment); false leaves
   * it to accept. Fields, not an event: the table calls it before any object is made.
   */
  takeNext(pos: number, size: number, captured: number, tsNs: number): boolean {
    if (pos !== this.next || size === 0 || captured !== size || this.pending.length > 0) return false;
    this.next += size;
    this.lastNs = tsNs;
    return true;
  }

  /** End of a batch: a hole open for too long is declared lost. */
  tick(out: Segment[]): void {
    if (this.pending.length === 0) return;
    if (++this.pendingAge >= this.limits.maxPendingBatches) this.forceGap(out);
  }

  /** The connection ended: whatever is held comes out, holes as gaps; `endPos` is the stream's length if known. */
  flush(out: Segment[], endPos?: number): void {
    while (this.pending.length > 0) this.forceGap(out);
    if (endPos !== undefined && this.next >= 0 && endPos > this.next) this.gap(endPos - this.next, Infinity, out);
  }

  private hold(ev: StreamData): void {
    const p = this.pending;
    let i = p.length;
    while (i > 0 && p[i - 1].pos > ev.pos) i--;
    // Held past its batch: a copy, so it does not pin the batch's whole buffer.
    p.splice(i, 0, { pos: ev.pos, size: ev.size, data: Buffer.from(ev.data), tsNs: ev.tsNs });
    this.pendingBytes += ev.data.length;
  }

  private forceGap(out: Segment[]): void {
    const first = this.pending[0];
    if (first === undefined) return;
    if (first.pos > this.next) this.gap(first.pos - this.next, first.tsNs, out);
    this.drain(out);
  }

  private drain(out: Segment[]): void {
    const p = this.pending;
    while (p.length > 0 && p[0].pos <= this.next) {
      const ev = p.shift()!;
      this.pendingBytes -= ev.data.length;
      if (ev.pos + Math.max(ev.size, ev.data.length) <= this.next) this.counters.duplicates++;
      else this.release(ev, out);
    }
    if (p.length === 0) this.pendingAge = 0;
  }

  /** ev.pos <= next < ev.pos + size: emit the new part, and a gap for bytes the kernel cut. */
  private release(ev: StreamData, out: Segment[]): void {
    const skip = this.next - ev.pos;
    if (skip < ev.data.length) {
      out.push({ kind: 'data', data: skip === 0 ? ev.data : ev.data.subarray(skip), tsNs: ev.tsNs });
      this.next = ev.pos + ev.data.length;
      this.lastNs = ev.tsNs;
    }
    const end = ev.pos + Math.max(ev.size, ev.data.length);
    if (end > this.next) this.gap(end - this.next, ev.tsNs, out);
  }

  private gap(length: number, toNs: number, out: Segment[]): void {
    this.counters.gaps++;
    this.counters.lostBytes += length;
    this.next += length;
    out.push({ kind: 'gap', length, fromNs: this.lastNs, toNs });
  }
}

/**
 * Unparsed bytes of one direction and the kernel time of each appended range. Appended chunks wait
 * in a queue and the parser sees the first one (`buf`) alone: a chunk holding whole messages (the
 * usual case, one write per message) is parsed in place, and bytes are copied only when a frame
 * straddles chunks (`pull`). Concatenating on every append made a batch's cost grow with the square
 * of the events per connection.
 */
export class ParseBuffer {
  /** The bytes the parser looks at: the first chunk, or several merged by `pull`. */
  buf: Buffer = EMPTY;
  /** Start offsets in `buf` of its appended ranges and their times (parallel arrays); they
   * describe `buf` only while it holds bytes (an empty buffer keeps stale ones until restart). */
  private offs: number[] = [];
  private times: number[] = [];
  /** Chunks after `buf`, not yet looked at, and their times. */
  private queue: Buffer[] = [];
  private queueNs: number[] = [];
  private queued = 0;
  /** Looking for a frame boundary (after a gap, an invalid frame or a mid-stream start). */
  resyncing = false;
  /** Time of the last byte appended: the time of an empty buffer's position. */
  private lastNs = 0;

  /** All bytes held: `buf` and the queue. */
  get length(): number {
    return this.buf.length + this.queued;
  }

  append(data: Buffer, tsNs: number): void {
    if (data.length === 0) return;
    this.lastNs = tsNs;
    if (this.buf.length === 0) {
      this.buf = data;
      this.restart(tsNs);
      return;
    }
    this.queue.push(data);
    this.queueNs.push(tsNs);
    this.queued += data.length;
  }

  /** Merges the next queued chunk into `buf` (a frame straddles them); false when none is queued. */
  pull(): boolean {
    const next = this.queue.shift();
    if (next === undefined) return false;
    const ts = this.queueNs.shift()!;
    this.queued -= next.length;
    this.offs.push(this.buf.length);
    this.times.push(ts);
    this.buf = Buffer.concat([this.buf, next]);
    return true;
  }

  /** Merges every queued chunk into `buf` (detection and resynchronisation scan all bytes held). */
  pullAll(): void {
    if (this.queue.length === 0) return;
    let at = this.buf.length;
    for (let i = 0; i < this.queue.length; i++) {
      this.offs.push(at);
      this.times.push(this.queueNs[i]);
      at += this.queue[i].length;
    }
    this.buf = Buffer.concat([this.buf, ...this.queue], at);
    this.queue = [];
    this.queueNs = [];
    this.queued = 0;
  }

  /** Kernel time of the byte at `offset` in `buf`. */
  timeAt(offset: number): number {
    if (this.buf.length === 0) return this.lastNs;
    const offs = this.offs;
    let i = offs.length - 1;
    while (i > 0 && offs[i] > offset) i--;
    return this.times[i] ?? 0;
  }

  /** Drops `n` bytes from the start of `buf` (never more than it holds). */
  consume(n: number): void {
    if (n <= 0) return;
    if (n >= this.buf.length) {
      this.next();
      return;
    }
    this.buf = payloadView(this.buf, n, this.buf.length - n);
    const offs = this.offs;
    if (offs.length === 1) return;
    let drop = 0;
    while (drop + 1 < offs.length && offs[drop + 1] <= n) drop++;
    if (drop > 0) {
      offs.splice(0, drop);
      this.times.splice(0, drop);
    }
    for (let i = 0; i < offs.length; i++) offs[i] = Math.max(0, offs[i] - n);
  }

  /** Unparsed leftovers outlive their batch: copy them out of a much larger capture buffer. */
  detach(): void {
    // An emptied `buf` is always EMPTY (consume and clear put it there), never a view.
    if (this.buf.length > 0) this.buf = unpinned(this.buf);
    const q = this.queue;
    for (let i = 0; i < q.length; i++) q[i] = unpinned(q[i]);
  }

  clear(): void {
    this.buf = EMPTY;
    if (this.queue.length > 0) {
      this.queue = [];
      this.queueNs = [];
      this.queued = 0;
    }
  }

  /** `buf` is used up: the next queued chunk takes its place, without a copy. */
  private next(): void {
    const next = this.queue.shift();
    if (next === undefined) {
      this.buf = EMPTY;
      return;
    }
    this.queued -= next.length;
    this.buf = next;
    this.restart(this.queueNs.shift()!);
  }

  /**
   * `buf` is one fresh chunk received at tsNs. The usual one-range arrays are rewritten in place:
   * a new pair per chunk was garbage, and truncating an array (length = 0) is a slow runtime call.
   */
  private restart(tsNs: number): void {
    if (this.offs.length === 1) {
      this.offs[0] = 0;
      this.times[0] = tsNs;
    } else {
      this.offs = [0];
      this.times = [tsNs];
    }
  }
}
