// ExchangeStart.heads: exchanges of one connection reuse what they derived from a head that comes
// again as the same RawHeaders array. Their spans must be those of fresh exchanges without a memo,
// attribute for attribute and in the same order, whatever the heads, rules, reloads and repeats.
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../policy/parse.js';
import { Metrics } from '../telemetry/metrics.js';
import type { Attributes, SpanRecord } from '../telemetry/span.js';
import { createExchangeFactory, createReplayExchangeFactory, HeadMemo } from './exchange-impl.js';
import type { Exchange, ExchangeStart, RawHeaders, TapHub } from './exchange.js';
import { createProxyMetrics } from './proxy-metrics.js';
import { runWithOneLate } from './test-support/late.js';

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const GZIP_HELLO = Buffer.from('1f8b0800000000000003cb48cdc9c9070086a6103605000000', 'hex');

const pair = (names: string[], values: string[]): fc.Arbitrary<[string, string]> => fc.tuple(fc.constantFrom(...names), fc.constantFrom(...values));
const headerList = (names: string[], values: string[]): fc.Arbitrary<RawHeaders> =>
  fc.array(pair(names, values), { maxLength: 6 }).map((pairs) => pairs.flat());
const REQUEST_NAMES = ['Host', 'host', 'User-Agent', 'user-agent', 'Content-Type', 'Authorization', 'Cookie', 'X-A', 'x-a', 'traceparent', 'Content-Encoding', 'X-Secret'];
const REQUEST_VALUES = ['h:8080', '[::1]:9', 'fortio', 'application/json', 'application/grpc', 'text/plain', 'gzip', TP, 'v1', 'v2'];
const RESPONSE_NAMES = ['Server', 'Date', 'Content-Type', 'content-type', 'Content-Length', 'Content-Encoding', 'Set-Cookie', 'X-A', 'x-a', 'X-Secret'];
const RESPONSE_VALUES = ['nginx', 'text/plain', 'application/octet-stream', 'text/html; charset=latin1', 'gzip', 'identity', '5', 'v1'];

/** Policies a connection's spans may be built under; a change between spans is a reload. */
const DOCS = [
  {},
  { default: { headers: { request: ['host', 'x-a'], response: ['content-type', 'x-a'] }, redact: { headers: ['x-secret'] } } },
  { default: { redact: { headers: ['x-a'], query: ['q'] } }, routes: [{ match: { pathPrefix: '/a' }, headers: { request: ['user-agent'] }, responseBody: false }] },
  { default: { sample: 0, keepSlowerThanMs: 60_000 } },
  // Matches that depend on the method, the path and the gRPC method (a memoised match must too).
  {
    routes: [
      { match: { path: '/a', methods: ['POST'] }, headers: { request: ['host'] } },
      { match: { grpc: 'pkg.Svc/Call' }, headers: { response: ['content-type'] } },
      { match: { pathTemplate: '/a/:id' }, responseBody: false },
    ],
  },
];

// The last two: the same number of keys, the last one different (shape memos compare every key).
const EXTRAS: Array<Attributes | undefined> = [
  undefined,
  { 'sidetrace.capture.source': 'ebpf-tls' },
  { 'sidetrace.capture.source': 'ebpf', 'network.local.port': 8080 },
  { 'sidetrace.capture.source': 'ebpf', 'network.local.address': '10.0.0.1' },
];

/** The same address with two ports, and two ports' worth of other addresses. */
const ENDPOINTS = [
  { address: '10.0.0.9', port: 51000 },
  { address: '10.0.0.9', port: 51001 },
  { address: '127.0.0.1', port: 8080 },
  { address: '::1', port: 51000 },
];

interface Step {
  conn: number;
  policy: number;
  /** Indexes into the run's header lists: the same index is the same array object. */
  request: number;
  response: number;
  method: string;
  target: string;
  /** Host as the agent passes it, or a copy of the string (equal, another object). */
  authority: string | undefined;
  copyAuthority: boolean;
  direction: 'inbound' | 'outbound';
  protocolVersion: '1.0' | '1.1';
  /** Indexes into ENDPOINTS: the connection's peers (each compared by address and port). */
  client: number;
  server: number;
  scheme: 'http' | 'https' | undefined;
  extra: number;
  status: number;
  body: Buffer[];
  responseBody: Buffer[];
  trailers: 'none' | 'request' | 'response';
  fail: boolean;
  /** Ended only after the next step ran. */
  late: boolean;
}

const step: fc.Arbitrary<Step> = fc.record({
  conn: fc.nat(1),
  policy: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.constant(DOCS.length - 1) }, { weight: 1, arbitrary: fc.nat(DOCS.length - 1) }),
  request: fc.nat(2),
  response: fc.nat(2),
  method: fc.constantFrom('GET', 'POST', 'BREW'),
  target: fc.constantFrom('/', '/a/b?q=s&x=1', '/a/b?q=t', 'http://other:81/p?q', '/a', '/pkg.Svc/Call'),
  authority: fc.constantFrom(undefined, 'h:8080', '[::1]:9', 'h'),
  copyAuthority: fc.boolean(),
  direction: fc.constantFrom('inbound' as const, 'outbound' as const),
  protocolVersion: fc.constantFrom('1.0' as const, '1.1' as const),
  client: fc.nat(ENDPOINTS.length - 1),
  server: fc.nat(ENDPOINTS.length - 1),
  scheme: fc.constantFrom(undefined, 'http' as const, 'https' as const),
  extra: fc.nat(EXTRAS.length - 1),
  status: fc.constantFrom(0, 200, 503),
  body: fc.array(fc.constantFrom(Buffer.from('hello'), GZIP_HELLO, Buffer.from([0, 1, 2])), { maxLength: 2 }),
  responseBody: fc.array(fc.constantFrom(Buffer.from('hello'), GZIP_HELLO, Buffer.from([0, 1, 2])), { maxLength: 2 }),
  trailers: fc.constantFrom('none' as const, 'none' as const, 'request' as const, 'response' as const),
  fail: fc.boolean(),
  late: fc.boolean(),
});

const STEP_FIELDS: Array<keyof Step> = [
  'conn', 'policy', 'request', 'response', 'method', 'target', 'authority', 'copyAuthority', 'direction',
  'protocolVersion', 'client', 'server', 'scheme', 'extra', 'status', 'body', 'responseBody', 'trailers', 'fail', 'late',
];

/**
 * Most steps repeat the one before: as it was, or with one field changed (the fast paths hit
 * only on repeats, which independent steps almost never are); the others are fresh.
 */
function repeating(steps: Array<[Step, number]>): Step[] {
  const out: Step[] = [];
  for (const [fresh, how] of steps) {
    const last = out[out.length - 1];
    if (last === undefined || how === 0) out.push(fresh);
    else if (how > STEP_FIELDS.length) out.push({ ...last });
    else out.push({ ...last, [STEP_FIELDS[how - 1]]: fresh[STEP_FIELDS[how - 1]] });
  }
  return out;
}

interface Run {
  requests: RawHeaders[];
  responses: RawHeaders[];
  steps: Step[];
  tap: boolean;
}

const run: fc.Arbitrary<Run> = fc.record({
  // The first list always gRPC: the same target then matches as a gRPC method or not.
  requests: fc
    .array(headerList(REQUEST_NAMES, REQUEST_VALUES), { minLength: 3, maxLength: 3 })
    .map(([grpc, ...rest]) => [['Content-Type', 'application/grpc', ...grpc], ...rest]),
  responses: fc.array(headerList(RESPONSE_NAMES, RESPONSE_VALUES), { minLength: 3, maxLength: 3 }),
  // Half the steps repeat the last exactly: a span's template is kept on the second repeat and
  // used from the third.
  steps: fc
    .array(fc.tuple(step, fc.oneof({ weight: 2, arbitrary: fc.nat(STEP_FIELDS.length) }, { weight: 2, arbitrary: fc.constant(STEP_FIELDS.length + 1) })), { minLength: 1, maxLength: 14 })
    .map(repeating),
  tap: fc.boolean(),
});


/** A span as its attributes' entries in order (toEqual alone ignores key order); ids are random. */
function view(span: SpanRecord): unknown {
  const { traceId, spanId, attributes, ...rest } = span;
  return { ...rest, traceId: rest.parentSpanId === undefined ? '' : traceId, spanId: spanId.length, attributes: Object.entries(attributes) };
}

/**
 * The steps' spans (submitted, then published to the tap), each viewed when it left the exchange
 * and again after the last step: a later span must not change an earlier one's shared values.
 */
function spans(r: Run, memo: boolean): { atSubmit: unknown[]; atEnd: unknown[] } {
  const policies = DOCS.map((d) => compilePolicy(d));
  let current = 0;
  const out: SpanRecord[] = [];
  const atSubmit: unknown[] = [];
  const keep = (s: SpanRecord): void => {
    out.push(s);
    atSubmit.push(view(s));
  };
  const tap: TapHub | undefined = r.tap ? { active: true, publish: keep } : undefined;
  const deps = { policy: () => policies[current], sink: { submit: keep, copiesBytesBelow: 2048 }, metrics: createProxyMetrics(new Metrics()), tap };
  const factory = memo ? createReplayExchangeFactory(deps) : createExchangeFactory(deps);
  const heads = [new HeadMemo(), new HeadMemo()];
  const finish = (ex: Exchange, s: Step): void => {
    for (const c of s.body) ex.requestBody(c, 1_700_000_000_001);
    ex.requestEnd(s.trailers === 'request' ? ['X-T', 'r'] : undefined);
    if (s.status > 0) ex.responseHead(s.status, r.responses[s.response]);
    for (const c of s.responseBody) ex.responseBody(c, 1_700_000_000_002);
    if (s.fail) ex.fail('ECONNRESET', undefined, 1_700_000_000_003);
    else ex.responseEnd(s.trailers === 'response' ? ['X-T', 's'] : undefined, 1_700_000_000_003);
  };
  runWithOneLate(r.steps, (s) => {
    current = s.policy;
    const authority = s.authority !== undefined && s.copyAuthority ? [...s.authority].join('') : s.authority;
    const start: ExchangeStart = {
      direction: s.direction,
      protocolVersion: s.protocolVersion,
      method: s.method,
      target: s.target,
      headers: r.requests[s.request],
      authority,
      // A copy per step: peers are compared by value, not as objects.
      client: { ...ENDPOINTS[s.client] },
      server: { ...ENDPOINTS[s.server] },
      startMs: 1_700_000_000_000,
      scheme: s.scheme,
      attributes: EXTRAS[s.extra],
      heads: memo ? heads[s.conn] : undefined,
    };
    return factory.start(start);
  }, finish);
  return { atSubmit, atEnd: out.map(view) };
}

describe('ExchangeStart.heads', () => {
  it('gives the spans of exchanges without it, for any heads, repeats, rules and reloads', () => {
    fc.assert(
      fc.property(run, (r) => {
        const fresh = spans(r, false);
        const reused = spans(r, true);
        expect(reused.atSubmit).toEqual(fresh.atSubmit);
        expect(reused.atEnd).toEqual(reused.atSubmit);
      }),
      { numRuns: 400 },
    );
  });

  it('matches a target again when the head says gRPC where the last did not, and back', () => {
    const base: Step = { conn: 0, policy: DOCS.length - 1, request: 0, response: 0, method: 'POST', target: '/pkg.Svc/Call', authority: 'h', copyAuthority: false, direction: 'inbound', protocolVersion: '1.1', client: 0, server: 2, scheme: undefined, extra: 0, status: 200, body: [], responseBody: [], trailers: 'none', fail: false, late: false };
    const r: Run = {
      requests: [['Content-Type', 'application/grpc'], ['Content-Type', 'text/plain'], []],
      responses: [['Content-Type', 'application/grpc', 'Server', 'x'], [], []],
      steps: [base, { ...base, request: 1 }, { ...base, request: 0 }],
      tap: false,
    };
    const reused = spans(r, true).atSubmit;
    expect(reused).toEqual(spans(r, false).atSubmit);
    // The gRPC route records the response's content type alone; the default, every header.
    const serverHeader = reused.map((s) => (s as { attributes: Array<[string, unknown]> }).attributes.some(([k]) => k === 'http.response.header.server'));
    expect(serverHeader).toEqual([false, true, false]);
  });

  it('builds a repeated span from its template only while nothing it leaves out changes', () => {
    // Three repeats keep and use a template; then each step changes what the template does not
    // cover (trailers, which bodies: the same number of body pairs under other keys), and repeats.
    const base: Step = { conn: 0, policy: 0, request: 1, response: 1, method: 'GET', target: '/', authority: 'h', copyAuthority: false, direction: 'inbound', protocolVersion: '1.1', client: 0, server: 2, scheme: undefined, extra: 1, status: 200, body: [], responseBody: [Buffer.from('hello')], trailers: 'none', fail: false, late: false };
    const changes: Array<Partial<Step>> = [{ trailers: 'response' }, { trailers: 'request' }, { body: [Buffer.from('hello')], responseBody: [] }, { body: [Buffer.from([0, 1, 2])], responseBody: [] }];
    const steps = [base, base, base];
    for (const change of changes) steps.push({ ...base, ...change }, { ...base, ...change }, base, base);
    const r: Run = { requests: [[], ['Host', 'h', 'User-Agent', 'fortio'], []], responses: [[], ['Server', 'nginx', 'Content-Type', 'text/plain'], []], steps, tap: false };
    const reused = spans(r, true).atSubmit;
    expect(reused).toEqual(spans(r, false).atSubmit);
  });

  it('shares the header attribute values of a repeated head', () => {
    const policy = compilePolicy({});
    const got: SpanRecord[] = [];
    const factory = createReplayExchangeFactory({ policy: () => policy, sink: { submit: (s) => got.push(s) }, metrics: createProxyMetrics(new Metrics()) });
    const heads = new HeadMemo();
    const headers = ['Host', 'h:8080', 'User-Agent', 'fortio'];
    const response = ['Server', 'nginx'];
    for (let i = 0; i < 2; i++) {
      const ex = factory.start({ direction: 'inbound', protocolVersion: '1.1', method: 'GET', target: '/', headers, authority: 'h:8080', client: { address: '10.0.0.9', port: 1 }, server: { address: '10.0.0.1', port: 80 }, heads });
      ex.responseHead(200, response);
      ex.responseEnd();
    }
    expect(got).toHaveLength(2);
    expect(got[1].attributes['http.request.header.user-agent']).toBe(got[0].attributes['http.request.header.user-agent']);
    expect(got[1].attributes['http.response.header.server']).toBe(got[0].attributes['http.response.header.server']);
    expect(got[1].attributes['user_agent.original']).toBe('fortio');
  });
});

describe('ExchangeStart.heads memory', () => {
  // Spans made from a template fill only the builder's first slots, and a span whose body pairs
  // do not fit the template sets them aside while the rest is added: neither may keep a body of
  // an earlier span (it may view a capture batch) while later spans are made from the template.
  // Each case: the spans before (the one at `big` with its body in a batch of its own), then three
  // made from the template; a request body or trailers in each as `spans` says.
  type Shape = 'response' | 'both' | 'trailers';
  it.each<[string, Shape[], number]>([
    ['the span that kept the template', ['response', 'response'], 1],
    ['a span whose bodies did not fit the template', ['response', 'response', 'response', 'both'], 3],
    ['a span built pair by pair (trailers) between spans made from the template', ['response', 'response', 'trailers', 'response'], 2],
  ])('keeps no body of %s', async (_, spans, big) => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const policy = compilePolicy({});
    const factory = createReplayExchangeFactory({ policy: () => policy, sink: { submit: () => undefined, copiesBytesBelow: 2048 }, metrics: createProxyMetrics(new Metrics()) });
    const heads = new HeadMemo();
    const headers = ['Host', 'h', 'Content-Type', 'application/octet-stream'];
    const response = ['Content-Type', 'application/octet-stream'];
    const exchange = (shape: Shape, body: Buffer): void => {
      const ex = factory.start({ direction: 'inbound', protocolVersion: '1.1', method: 'POST', target: '/', headers, authority: 'h', client: { address: '10.0.0.9', port: 1 }, server: { address: '10.0.0.1', port: 80 }, attributes: EXTRAS[1], heads });
      if (shape === 'both') ex.requestBody(body, 1_700_000_000_001);
      ex.requestEnd();
      ex.responseHead(200, response);
      ex.responseBody(shape === 'both' ? Buffer.from([1, 2, 3]) : body, 1_700_000_000_002);
      ex.responseEnd(shape === 'trailers' ? ['X-T', 's'] : undefined);
    };
    let batchMemory: WeakRef<ArrayBufferLike> | undefined;
    (() => {
      const batch = new ArrayBuffer(1 << 20);
      batchMemory = new WeakRef(batch);
      spans.forEach((shape, i) => exchange(shape, i === big ? Buffer.from(batch, 0, 3) : Buffer.from([4, 5, 6])));
    })();
    for (let i = 0; i < 3; i++) exchange(spans[spans.length - 1], Buffer.from([4, 5, 6]));
    // WeakRef targets are kept until the current job ends.
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    expect(batchMemory!.deref()).toBeUndefined();
  });
});
