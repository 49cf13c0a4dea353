// Trace and span ids for spans the proxy starts. One randomFillSync over a pooled buffer serves
// ~2,700 requests, and the pool is hex encoded a window at a time: an id is then a slice of that
// window's string, so the request path never allocates per-id random buffers nor encodes per id.
// The last ids issued are published with their bytes (telemetry/issued-ids.ts) for the
// serializer to copy.

import { randomFillSync } from 'node:crypto';
import { issuedSpanId, issuedTraceId, type IssuedId } from '../../telemetry/issued-ids.js';

/**
 * randomFillSync costs ~1 ns a byte at 4 KiB but ~0.25 at 64 KiB (a fixed cost per call), while
 * hex encoding costs ~1.3 ns a byte at 4 KiB and more for larger strings (they leave the young
 * generation): so bytes are drawn 64 KiB at a time and encoded 4 KiB at a time.
 */
export const POOL_SIZE = 64 * 1024;
export const HEX_WINDOW = 4096;
// Two pools in turn: the ids published stay valid across the refill after them (an exchange takes
// its trace id, then its span id, maybe from a new pool) and are withdrawn before the refill that
// overwrites their bytes.
const pools = [Buffer.allocUnsafe(POOL_SIZE), Buffer.allocUnsafe(POOL_SIZE)];
let pool = pools[1];
/** The hex of pool[windowStart .. windowEnd). */
let hex = '';
let windowStart = POOL_SIZE;
let windowEnd = POOL_SIZE;
let offset = POOL_SIZE;

function take(bytes: number, issued: IssuedId): string {
  for (;;) {
    if (offset + bytes > windowEnd) nextWindow(bytes);
    const start = offset;
    offset += bytes;
    // An all-zero id is invalid in W3C and B3; the chance is 2^-64 but a retry costs nothing.
    for (let i = start; i < start + bytes; i++) {
      if (pool[i] !== 0) {
        const at = 2 * (start - windowStart);
        const id = hex.slice(at, at + 2 * bytes);
        issued.hex = id;
        issued.bytes = pool;
        issued.at = start;
        return id;
      }
    }
  }
}

/** Encodes the bytes from `offset` on, drawing a new pool first if fewer than `bytes` are left. */
function nextWindow(bytes: number): void {
  if (offset + bytes > POOL_SIZE) {
    pool = pool === pools[0] ? pools[1] : pools[0];
    if (issuedTraceId.bytes === pool) issuedTraceId.hex = '';
    if (issuedSpanId.bytes === pool) issuedSpanId.hex = '';
    randomFillSync(pool);
    offset = 0;
  }
  windowStart = offset;
  windowEnd = Math.min(offset + HEX_WINDOW, POOL_SIZE);
  hex = pool.toString('hex', windowStart, windowEnd);
}

/** 32 lowercase hex chars, never all zero. */
export function newTraceId(): string {
  return take(16, issuedTraceId);
}

/** 16 lowercase hex chars, never all zero. */
export function newSpanId(): string {
  return take(8, issuedSpanId);
}
