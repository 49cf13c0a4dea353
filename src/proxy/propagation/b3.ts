// Zipkin B3 propagation, single header (`b3`) and multi header (`X-B3-*`), per
// https://github.com/openzipkin/b3-propagation ; 64-bit trace ids are left-padded to 128 bits.

import { isNonZeroHex } from './w3c.js';

export interface B3Context {
  /** 32 lowercase hex chars; absent when the header only carries a sampling decision. */
  traceId?: string;
  spanId?: string;
  /** undefined: the caller deferred the decision. */
  sampled?: boolean;
  /** Debug implies sampled and asks every hop to keep the span. */
  debug: boolean;
}

const PAD64 = '0000000000000000';

function traceId128(id: string): string | undefined {
  if ((id.length !== 16 && id.length !== 32) || !isNonZeroHex(id, 0, id.length)) return undefined;
  return id.length === 16 ? PAD64 + id : id;
}

function spanId64(id: string): boolean {
  return id.length === 16 && isNonZeroHex(id, 0, 16);
}

/** `b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]`, or only `0` / `1` / `d`. */
export function parseB3Single(raw: string): B3Context | undefined {
  const value = raw.trim();
  if (value.length === 1) return parseSamplingState(value);
  const parts = value.split('-');
  if (parts.length < 2 || parts.length > 4) return undefined;
  const traceId = traceId128(parts[0]);
  if (traceId === undefined || !spanId64(parts[1])) return undefined;
  let sampled: boolean | undefined;
  let debug = false;
  if (parts.length >= 3) {
    const state = parseSamplingState(parts[2]);
    if (state === undefined) return undefined;
    sampled = state.sampled;
    debug = state.debug;
  }
  if (parts.length === 4 && !spanId64(parts[3])) return undefined;
  return { traceId, spanId: parts[1], sampled, debug };
}

function parseSamplingState(s: string): B3Context | undefined {
  if (s === '1') return { sampled: true, debug: false };
  if (s === '0') return { sampled: false, debug: false };
  if (s === 'd') return { sampled: true, debug: true };
  return undefined;
}

/**
 * `X-B3-TraceId` + `X-B3-SpanId` (both or neither), `X-B3-Sampled` (`1`/`0`, and the legacy
 * `true`/`false`), `X-B3-Flags: 1` (debug). Undefined when nothing usable is present.
 */
export function parseB3Multi(traceIdRaw?: string, spanIdRaw?: string, sampledRaw?: string, flagsRaw?: string): B3Context | undefined {
  const debug = flagsRaw !== undefined && flagsRaw.trim() === '1';
  let sampled: boolean | undefined = debug ? true : undefined;
  if (!debug && sampledRaw !== undefined) {
    const s = sampledRaw.trim().toLowerCase();
    if (s === '1' || s === 'true') sampled = true;
    else if (s === '0' || s === 'false') sampled = false;
  }
  if (traceIdRaw === undefined && spanIdRaw === undefined) {
    return sampled === undefined ? undefined : { sampled, debug };
  }
  if (traceIdRaw === undefined || spanIdRaw === undefined) return undefined;
  const traceId = traceId128(traceIdRaw.trim());
  const spanId = spanIdRaw.trim();
  if (traceId === undefined || !spanId64(spanId)) return undefined;
  return { traceId, spanId, sampled, debug };
}

function samplingState(sampled: boolean, debug: boolean): string {
  return debug ? 'd' : sampled ? '1' : '0';
}

export function formatB3Single(traceId: string, spanId: string, sampled: boolean, debug: boolean, parentSpanId?: string): string {
  const head = `${traceId}-${spanId}-${samplingState(sampled, debug)}`;
  return parentSpanId === undefined ? head : `${head}-${parentSpanId}`;
}

/** Multi-header form, as [lowercase name, value] pairs. */
export function formatB3Multi(
  traceId: string,
  spanId: string,
  sampled: boolean,
  debug: boolean,
  parentSpanId?: string,
): Array<readonly [string, string]> {
  const out: Array<readonly [string, string]> = [
    ['x-b3-traceid', traceId],
    ['x-b3-spanid', spanId],
  ];
  if (parentSpanId !== undefined) out.push(['x-b3-parentspanid', parentSpanId]);
  out.push(debug ? ['x-b3-flags', '1'] : ['x-b3-sampled', sampled ? '1' : '0']);
  return out;
}
