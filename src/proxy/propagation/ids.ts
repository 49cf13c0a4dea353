// Trace and span ids for spans the proxy starts. One randomFillSync over a pooled buffer, hex
// encoded whole, serves ~170 requests: an id is then a slice of that string, so the request path
// never allocates per-id random buffers nor encodes per id. The last ids issued are published
// with their bytes (telemetry/issued-ids.ts) for the serializer to copy.

import { randomFillSync } from 'node:crypto';
import { issuedSpanId, issuedTraceId, type IssuedId } from '../../telemetry/issued-ids.js';

const POOL_SIZE = 4096;
// Two pools in turn: the ids published stay valid across the refill after them (an exchange takes
// its trace id, then its span id, maybe from a new pool) and are withdrawn before the refill that
// overwrites their bytes.
const pools = [Buffer.allocUnsafe(POOL_SIZE), Buffer.allocUnsafe(POOL_SIZE)];
let pool = pools[1];
let hex = '';
let offset = POOL_SIZE;

function take(bytes: number, issued: IssuedId): string {
  for (;;) {
    if (offset + bytes > POOL_SIZE) refill();
    const start = offset;
    offset += bytes;
    // An all-zero id is invalid in W3C and B3; the chance is 2^-64 but a retry costs nothing.
    for (let i = start; i < start + bytes; i++) {
      if (pool[i] !== 0) {
        const id = hex.slice(2 * start, 2 * (start + bytes));
        issued.hex = id;
        issued.bytes = pool;
        issued.at = start;
        return id;
      }
    }
  }
}

function refill(): void {
  pool = pool === pools[0] ? pools[1] : pools[0];
  if (issuedTraceId.bytes === pool) issuedTraceId.hex = '';
  if (issuedSpanId.bytes === pool) issuedSpanId.hex = '';
  randomFillSync(pool);
  hex = pool.toString('hex');
  offset = 0;
}

/** 32 lowercase hex chars, never all zero. */
export function newTraceId(): string {
  return take(16, issuedTraceId);
}

/** 16 lowercase hex chars, never all zero. */
export function newSpanId(): string {
  return take(8, issuedSpanId);
}
