import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { B3Style, extractContext, forwardContext } from './context.js';
import { newSpanId, newTraceId } from './ids.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const TP = `00-${TRACE}-${PARENT}-01`;
const B3T = '80f198ee56343ba864fe8b2a57d3eff7';
const B3S = 'e457b5a2e4d86bd1';
const PROXY = '1111111111111111';

describe('extractContext', () => {
  it('reads traceparent and tracestate case-insensitively', () => {
    const ctx = extractContext(['Host', 'x', 'TraceParent', TP, 'TraceState', 'a=1']);
    expect(ctx).toEqual({ traceId: TRACE, parentSpanId: PARENT, sampled: true, debug: false, traceState: 'a=1', b3: B3Style.None });
  });

  it('combines several tracestate headers with a comma', () => {
    expect(extractContext(['traceparent', TP, 'tracestate', 'a=1', 'tracestate', 'b=2']).traceState).toBe('a=1,b=2');
  });

  it('honours an unsampled traceparent', () => {
    expect(extractContext(['traceparent', `00-${TRACE}-${PARENT}-00`]).sampled).toBe(false);
  });

  it('treats several traceparent headers as invalid and drops tracestate', () => {
    const ctx = extractContext(['traceparent', TP, 'traceparent', TP, 'tracestate', 'a=1']);
    expect(ctx).toEqual({ debug: false, b3: B3Style.None });
  });

  it('starts a new trace and drops tracestate when traceparent is invalid', () => {
    expect(extractContext(['traceparent', `00-${TRACE}-${'0'.repeat(16)}-01`, 'tracestate', 'a=1'])).toEqual({ debug: false, b3: B3Style.None });
  });

  it('prefers a valid traceparent over b3 but remembers the b3 style', () => {
    const ctx = extractContext(['b3', `${B3T}-${B3S}-0`, 'traceparent', TP]);
    expect(ctx.traceId).toBe(TRACE);
    expect(ctx.sampled).toBe(true);
    expect(ctx.b3).toBe(B3Style.Single);
  });

  it('falls back to b3 single when traceparent is invalid', () => {
    const ctx = extractContext(['traceparent', 'junk', 'b3', `${B3T}-${B3S}-1`]);
    expect(ctx).toEqual({ traceId: B3T, parentSpanId: B3S, sampled: true, debug: false, b3: B3Style.Single });
  });

  it('prefers b3 single over b3 multi', () => {
    const ctx = extractContext(['b3', `${B3T}-${B3S}-1`, 'X-B3-TraceId', TRACE, 'X-B3-SpanId', PARENT]);
    expect(ctx.traceId).toBe(B3T);
  });

  it('falls back to b3 multi', () => {
    const ctx = extractContext(['X-B3-TraceId', 'a3ce929d0e0e4736', 'X-B3-SpanId', B3S, 'X-B3-Sampled', '0']);
    expect(ctx).toEqual({ traceId: '0000000000000000a3ce929d0e0e4736', parentSpanId: B3S, sampled: false, debug: false, b3: B3Style.Multi });
  });

  it('carries a b3 sampling-only decision without a parent', () => {
    expect(extractContext(['b3', '0'])).toEqual({ traceId: undefined, parentSpanId: undefined, sampled: false, debug: false, b3: B3Style.Single });
  });

  it('returns an empty context without propagation headers', () => {
    expect(extractContext(['host', 'a', 'accept', '*/*'])).toEqual({ debug: false, b3: B3Style.None });
  });
});

describe('extractContext names', () => {
  const NAMES = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled', 'x-b3-flags'];
  // Names of the same lengths that carry no context: only a name compare tells them apart.
  const OTHERS = ['user-agent', 'connection', 'content-md5', 'content-type', 'x-request-id', 'b4', 'traceparenz', 'x-b3-flagz'];
  const VALUES = [TP, `00-${B3T}-${B3S}-00`, 'vendor=1', 'a=b,c=d', `${B3T}-${B3S}-1`, B3T, B3S, '1', '0', 'd', 'garbage', ''];
  const header = fc.tuple(
    fc.constantFrom(...NAMES, ...OTHERS),
    fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
    fc.constantFrom(...VALUES),
  );

  it('matches names in any case as their lowercase copies do, and no others', () => {
    fc.assert(
      fc.property(fc.array(header, { maxLength: 8 }), (hs) => {
        const raw: string[] = [];
        const oracle: string[] = [];
        for (const [name, upper, value] of hs) {
          const cased = [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('');
          raw.push(cased, value);
          // The reference: lowercase copies, and every other name replaced by one that matches nothing.
          const lower = cased.toLowerCase();
          oracle.push(NAMES.includes(lower) ? lower : 'other', value);
        }
        expect(extractContext(raw)).toEqual(extractContext(oracle));
      }),
    );
  });
});

describe('forwardContext', () => {
  it('forwards traceparent with the proxy span as parent and tracestate as received', () => {
    const fwd = forwardContext(extractContext(['traceparent', TP, 'tracestate', 'a=1,BAD=2']), TRACE, PROXY, true);
    expect(fwd.headers).toEqual([
      ['traceparent', `00-${TRACE}-${PROXY}-01`],
      ['tracestate', 'a=1'],
    ]);
    expect([...fwd.replaces].sort()).toEqual(['traceparent', 'tracestate']);
  });

  it('repeats b3 single with the proxy span id', () => {
    const fwd = forwardContext(extractContext(['b3', `${B3T}-${B3S}-1`]), B3T, PROXY, true);
    expect(fwd.headers).toEqual([
      ['traceparent', `00-${B3T}-${PROXY}-01`],
      ['b3', `${B3T}-${PROXY}-1-${B3S}`],
    ]);
    expect(fwd.replaces.has('b3')).toBe(true);
    expect(fwd.replaces.has('x-b3-traceid')).toBe(true);
  });

  it('repeats b3 multi with the proxy span id and the debug flag', () => {
    const fwd = forwardContext(extractContext(['x-b3-traceid', B3T, 'x-b3-spanid', B3S, 'x-b3-flags', '1']), B3T, PROXY, true);
    expect(fwd.headers).toEqual([
      ['traceparent', `00-${B3T}-${PROXY}-01`],
      ['x-b3-traceid', B3T],
      ['x-b3-spanid', PROXY],
      ['x-b3-parentspanid', B3S],
      ['x-b3-flags', '1'],
    ]);
  });

  it('forwards an unsampled decision', () => {
    const fwd = forwardContext(extractContext(['b3', '0']), B3T, PROXY, false);
    expect(fwd.headers).toEqual([
      ['traceparent', `00-${B3T}-${PROXY}-00`],
      ['b3', `${B3T}-${PROXY}-0`],
    ]);
  });
});

describe('ids', () => {
  it('are lowercase hex of the right length and distinct', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      expect(t).toMatch(/^[0-9a-f]{32}$/);
      expect(s).toMatch(/^[0-9a-f]{16}$/);
      seen.add(t);
    }
    expect(seen.size).toBe(1000);
  });
});
