// Incoming trace context (W3C first, then B3 single, then B3 multi) and the headers that
// carry the proxy's span onward, in every format the caller used.

import type { RawHeaders } from '../exchange.js';
import { formatB3Multi, formatB3Single, parseB3Multi, parseB3Single, type B3Context } from './b3.js';
import { equalsLower } from '../capture/ascii.js';
import { formatTraceparent, parseTraceparent, parseTracestate } from './w3c.js';

export const enum B3Style {
  None = 0,
  Single = 1,
  Multi = 2,
}

export interface IncomingContext {
  /** Present when the caller sent a valid parent: the proxy span joins this trace. */
  traceId?: string;
  parentSpanId?: string;
  /** The caller's sampling decision; undefined when it made none. */
  sampled?: boolean;
  /** B3 debug: keep the span whatever the sampling rule says. */
  debug: boolean;
  /** Validated tracestate, only alongside a valid traceparent. */
  traceState?: string;
  /** B3 style the caller used, repeated on the forwarded request so B3-only apps keep working. */
  b3: B3Style;
}

/** Reads propagation headers from raw [name, value, ...] headers in one pass. */
export function extractContext(headers: RawHeaders): IncomingContext {
  let traceparent: string | undefined;
  let traceparentCount = 0;
  let tracestate: string | undefined;
  let b3: string | undefined;
  let xTraceId: string | undefined;
  let xSpanId: string | undefined;
  let xSampled: string | undefined;
  let xFlags: string | undefined;
  // Names are told apart by length, then compared in place: a lowercased copy of each candidate
  // (User-Agent and Content-Type have these lengths too) would be an allocation per header.
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    switch (name.length) {
      case 2:
        if (equalsLower(name, 'b3')) b3 ??= headers[i + 1];
        break;
      case 10:
        if (equalsLower(name, 'tracestate')) tracestate = tracestate === undefined ? headers[i + 1] : `${tracestate},${headers[i + 1]}`;
        else if (equalsLower(name, 'x-b3-flags')) xFlags ??= headers[i + 1];
        break;
      case 11:
        if (equalsLower(name, 'traceparent')) {
          traceparentCount++;
          traceparent = headers[i + 1];
        } else if (equalsLower(name, 'x-b3-spanid')) xSpanId ??= headers[i + 1];
        break;
      case 12:
        if (equalsLower(name, 'x-b3-traceid')) xTraceId ??= headers[i + 1];
        else if (equalsLower(name, 'x-b3-sampled')) xSampled ??= headers[i + 1];
        break;
    }
  }

  let b3Ctx: B3Context | undefined;
  let b3Style = B3Style.None;
  if (b3 !== undefined) {
    b3Ctx = parseB3Single(b3);
    if (b3Ctx) b3Style = B3Style.Single;
  }
  if (!b3Ctx && (xTraceId !== undefined || xSpanId !== undefined || xSampled !== undefined || xFlags !== undefined)) {
    b3Ctx = parseB3Multi(xTraceId, xSpanId, xSampled, xFlags);
    if (b3Ctx) b3Style = B3Style.Multi;
  }

  // Several traceparent headers are ambiguous, so the spec treats them as invalid.
  const tp = traceparentCount === 1 ? parseTraceparent(traceparent as string) : undefined;
  if (tp) {
    const traceState = tracestate === undefined ? undefined : parseTracestate(tracestate);
    return { traceId: tp.traceId, parentSpanId: tp.parentId, sampled: (tp.flags & 1) === 1, debug: false, traceState, b3: b3Style };
  }
  if (b3Ctx) {
    return { traceId: b3Ctx.traceId, parentSpanId: b3Ctx.spanId, sampled: b3Ctx.sampled, debug: b3Ctx.debug, b3: b3Style };
  }
  return NO_CONTEXT;
}

/** What most requests carry; shared, as nothing changes an incoming context once read. */
const NO_CONTEXT: IncomingContext = Object.freeze({ debug: false, b3: B3Style.None });

const W3C_NAMES: ReadonlySet<string> = new Set(['traceparent', 'tracestate']);
const W3C_AND_B3_NAMES: ReadonlySet<string> = new Set([
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
]);

export interface ForwardContext {
  headers: Array<readonly [string, string]>;
  replaces: ReadonlySet<string>;
}

/**
 * Headers for the forwarded request: the proxy span (spanId) becomes the parent. An invalid or
 * absent incoming tracestate is dropped, so `tracestate` is always among the replaced names.
 */
export function forwardContext(incoming: IncomingContext, traceId: string, spanId: string, sampled: boolean): ForwardContext {
  const headers: Array<readonly [string, string]> = [['traceparent', formatTraceparent(traceId, spanId, sampled)]];
  if (incoming.traceState !== undefined) headers.push(['tracestate', incoming.traceState]);
  if (incoming.b3 === B3Style.None) return { headers, replaces: W3C_NAMES };
  if (incoming.b3 === B3Style.Single) {
    headers.push(['b3', formatB3Single(traceId, spanId, sampled, incoming.debug, incoming.parentSpanId)]);
  } else {
    for (const h of formatB3Multi(traceId, spanId, sampled, incoming.debug, incoming.parentSpanId)) headers.push(h);
  }
  return { headers, replaces: W3C_AND_B3_NAMES };
}
