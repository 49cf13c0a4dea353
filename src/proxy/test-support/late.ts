import type { Exchange } from '../exchange.js';

/**
 * Runs `steps` in order: each step's exchange is started and finished at once, except that the
 * first step marked late (while none is waiting) is finished after the next step's, so exchanges
 * of the replay factory (one reused exchange object per ended one) end out of order too.
 */
export function runWithOneLate<S extends { late: boolean }>(steps: readonly S[], start: (step: S) => Exchange, finish: (ex: Exchange, step: S) => void): void {
  let late: [Exchange, S] | undefined;
  for (const s of steps) {
    const ex = start(s);
    if (s.late && late === undefined) {
      late = [ex, s];
      continue;
    }
    finish(ex, s);
    if (late !== undefined) {
      finish(...late);
      late = undefined;
    }
  }
  if (late !== undefined) finish(...late);
}
