// Trace and span ids for spans the proxy starts. One randomFillSync over a pooled buffer, hex
// encoded whole, serves ~170 requests: an id is then a slice of that string, so the request path
// never allocates per-id random buffers nor encodes per id.

import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let hex = '';
let offset = POOL_SIZE;

function take(bytes: number): string {
  for (;;) {
    if (offset + bytes > POOL_SIZE) {
      randomFillSync(pool);
      hex = pool.toString('hex');
      offset = 0;
    }
    const start = offset;
    offset += bytes;
    // An all-zero id is invalid in W3C and B3; the chance is 2^-64 but a retry costs nothing.
    for (let i = start; i < start + bytes; i++) {
      if (pool[i] !== 0) return hex.slice(2 * start, 2 * (start + bytes));
    }
  }
}

/** 32 lowercase hex chars, never all zero. */
export function newTraceId(): string {
  return take(16);
}

/** 16 lowercase hex chars, never all zero. */
export function newSpanId(): string {
  return take(8);
}
