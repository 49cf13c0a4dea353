// `sidetrace tap` filters: parsed once from flags into one predicate over tapped requests.
// Every filter is exact (no substring guessing): a path is equal, or a prefix when it ends in *.

import { parseDurationMs } from '../collector/query-params.js';
import type { TapEvent } from './event.js';

export interface TapFilterFlags {
  status?: string;
  path?: string;
  method?: string;
  service?: string;
  minLatency?: string;
}

export class TapFilterError extends Error {
  readonly code = 'ST_TAP_FILTER_INVALID';
  constructor(readonly flag: string, detail: string) {
    super(`${flag}: ${detail}`);
    this.name = 'TapFilterError';
  }
}

export type TapFilter = (e: TapEvent) => boolean;

/**
 * --status 500 | 5xx | 404,5xx (comma list of codes and classes)
 * --path /books/order | /books/* (exact, or prefix when it ends in *)
 * --method GET | get,post   --service NAME[,NAME]   --min-latency 500ms | 1.5s | 500 (ms)
 */
export function compileFilter(flags: TapFilterFlags): TapFilter {
  const tests: TapFilter[] = [];
  if (flags.status !== undefined) {
    const codes = new Set<number>();
    const classes = new Set<number>();
    for (const part of list('--status', flags.status)) {
      if (/^[1-5]xx$/i.test(part)) classes.add(Number(part[0]));
      else if (/^\d{3}$/.test(part)) codes.add(Number(part));
      else throw new TapFilterError('--status', `"${part}" is not a status code (e.g. 503) or class (e.g. 5xx)`);
    }
    tests.push((e) => e.status !== undefined && (codes.has(e.status) || classes.has(Math.floor(e.status / 100))));
  }
  if (flags.path !== undefined) {
    const p = flags.path;
    if (!p.startsWith('/')) throw new TapFilterError('--path', `"${p}" must start with /`);
    if (p.endsWith('*')) {
      const prefix = p.slice(0, -1);
      tests.push((e) => e.path !== undefined && e.path.startsWith(prefix));
    } else tests.push((e) => e.path === p);
  }
  if (flags.method !== undefined) {
    const methods = new Set(list('--method', flags.method).map((m) => m.toUpperCase()));
    tests.push((e) => e.method !== undefined && methods.has(e.method.toUpperCase()));
  }
  if (flags.service !== undefined) {
    const services = new Set(list('--service', flags.service));
    tests.push((e) => services.has(e.service));
  }
  if (flags.minLatency !== undefined) {
    let min: number;
    try {
      min = parseDurationMs('--min-latency', flags.minLatency);
    } catch {
      throw new TapFilterError('--min-latency', `"${flags.minLatency}" is not a duration like 500ms, 1.5s or 500 (ms)`);
    }
    tests.push((e) => e.latencyMs >= min);
  }
  return (e) => tests.every((t) => t(e));
}

function list(flag: string, v: string): string[] {
  const parts = v.split(',').map((s) => s.trim());
  if (parts.some((s) => s === '')) throw new TapFilterError(flag, `"${v}" has an empty item`);
  return parts;
}
