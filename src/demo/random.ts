// Seeded randomness for the demo, so `--seed` replays the same latencies and requests.

export type Random = () => number;

/** mulberry32: tiny, fast and good enough for demo traffic (not for anything secret). */
export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stream of its own per name, so one service's draws don't shift another's. */
export function forkRandom(seed: number, name: string): Random {
  let h = seed >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return seeded(h);
}

export function uniform(rand: Random, lo: number, hi: number): number {
  return lo + (hi - lo) * rand();
}

export function pick<T>(rand: Random, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)];
}
