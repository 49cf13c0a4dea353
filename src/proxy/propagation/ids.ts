// Trace and span ids for spans the proxy starts. One randomFillSync over a pooled buffer
// serves ~170 requests, so the request path never allocates per-id random buffers.

import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

function take(bytes: number): string {
  for (;;) {
    if (offset + bytes > POOL_SIZE) {
      randomFillSync(pool);
      offset = 0;
    }
    const start = offset;
    offset += bytes;
    // An all-zero id is invalid in W3C and B3; the chance is 2^-64 but a retry costs nothing.
    for (let i = start; i < start + bytes; i++) {
      if (pool[i] !== 0) return pool.toString('hex', start, start + bytes);
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
