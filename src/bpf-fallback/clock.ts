// Kernel times (CLOCK_MONOTONIC ns from bpf_ktime_get_ns) to Unix epoch milliseconds, through an
// offset measured once: Node's hrtime reads the same CLOCK_MONOTONIC, so one subtraction per
// timestamp converts, and spans keep the kernel's µs-precise ordering.

import { nowMs } from '../telemetry/span.js';

export interface KernelClock {
  /** Epoch ms (fractional) of a CLOCK_MONOTONIC nanosecond timestamp. */
  toEpochMs(tsNs: number): number;
  readonly offsetMs: number;
}

export function measureKernelClock(): KernelClock {
  // The tightest of a few bracketed reads bounds the error by the read's own duration.
  let best = Infinity;
  let offsetMs = 0;
  for (let i = 0; i < 5; i++) {
    const before = process.hrtime.bigint();
    const wall = nowMs();
    const after = process.hrtime.bigint();
    const width = Number(after - before);
    if (width < best) {
      best = width;
      offsetMs = wall - Number(before + (after - before) / 2n) / 1e6;
    }
  }
  return fixedClock(offsetMs);
}

export function fixedClock(offsetMs: number): KernelClock {
  return { offsetMs, toEpochMs: (tsNs) => tsNs / 1e6 + offsetMs };
}
