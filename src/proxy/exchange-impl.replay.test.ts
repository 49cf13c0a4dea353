// The replay factory starts ended exchanges again: its spans must be those of fresh exchanges.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../policy/parse.js';
import { Metrics } from '../telemetry/metrics.js';
import type { SpanRecord } from '../telemetry/span.js';
import { createExchangeFactory, createReplayExchangeFactory } from './exchange-impl.js';
import type { Exchange, ExchangeFactory, ExchangeStart } from './exchange.js';
import { createProxyMetrics } from './proxy-metrics.js';
import { runWithOneLate } from './test-support/late.js';

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const GRPC_MSG = Buffer.from([0, 0, 0, 0, 3, 0x08, 0x96, 0x01]);

interface Script {
  start: ExchangeStart;
  reqBody: Buffer[];
  reqTrailers: string[] | undefined;
  end:
    | { kind: 'response'; status: number; headers: string[]; body: Buffer[]; trailers: string[] | undefined }
    | { kind: 'fail'; error: string }
    | { kind: 'tunnel'; status: number };
  /** Ended only after the next script ran (an exchange still open when another starts). */
  late: boolean;
}

const chunk = fc.oneof(fc.constant(GRPC_MSG), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), fc.constant(Buffer.from('{"password":"x","a":1}')));
const requestHeaders = fc.subarray(['Host', 'h:8080', 'User-Agent', 'ua', 'traceparent', TP, 'Content-Type', 'application/grpc', 'Content-Type', 'application/json', 'X-A', '1', 'x-a', '2', 'Cookie', 'c'].reduce<string[][]>((pairs, v, i, all) => (i % 2 === 0 ? [...pairs, [v, all[i + 1]]] : pairs), [])).map((pairs) => pairs.flat());
const script: fc.Arbitrary<Script> = fc.record({
  start: fc.record({
    direction: fc.constantFrom('inbound' as const, 'outbound' as const),
    protocolVersion: fc.constantFrom('1.1' as const, '2' as const),
    method: fc.constantFrom('GET', 'POST', 'CONNECT', 'BREW'),
    target: fc.constantFrom('/', '/a/b?token=s&x=1', 'http://other:81/p?q', 'h:443', '/pkg.Svc/Call'),
    headers: requestHeaders,
    authority: fc.constantFrom(undefined, 'h:8080', '[::1]:9'),
    client: fc.constant({ address: '10.0.0.9', port: 51000 }),
    server: fc.constant({ address: '127.0.0.1', port: 8080 }),
    startMs: fc.constantFrom(1_700_000_000_000.5, 1_700_000_000_000),
    scheme: fc.constantFrom(undefined, 'http' as const, 'https' as const),
    attributes: fc.constantFrom(undefined, { 'sidetrace.capture.source': 'ebpf' }),
  }),
  reqBody: fc.array(chunk, { maxLength: 3 }),
  reqTrailers: fc.constantFrom<string[] | undefined>(undefined, ['X-T', 't']),
  end: fc.oneof(
    fc.record({
      kind: fc.constant('response' as const),
      status: fc.constantFrom(200, 404, 503),
      headers: fc.constantFrom<string[]>(['Content-Type', 'text/plain'], ['grpc-status', '13', 'grpc-message', 'bad%20x'], []),
      body: fc.array(chunk, { maxLength: 3 }),
      trailers: fc.constantFrom<string[] | undefined>(undefined, ['grpc-status', '0'], ['grpc-status', '2']),
    }),
    fc.record({ kind: fc.constant('fail' as const), error: fc.constantFrom('client_abort', 'ECONNRESET') }),
    fc.record({ kind: fc.constant('tunnel' as const), status: fc.constantFrom(101, 200) }),
  ),
  late: fc.boolean(),
});

function finish(ex: Exchange, s: Script): void {
  for (const c of s.reqBody) ex.requestBody(c, 1_700_000_000_001);
  ex.requestEnd(s.reqTrailers);
  const e = s.end;
  if (e.kind === 'fail') ex.fail(e.error, undefined, 1_700_000_000_003);
  else if (e.kind === 'tunnel') ex.tunnelEstablished(e.status, ['Upgrade', 'x'], 1_700_000_000_003);
  else {
    ex.responseHead(e.status, e.headers);
    for (const c of e.body) ex.responseBody(c, 1_700_000_000_002);
    ex.responseEnd(e.trailers, 1_700_000_000_003);
  }
}

/** Spans of the scripts run in order through `make`'s factory; ids are random, so left out. */
function run(make: typeof createExchangeFactory, doc: unknown, scripts: Script[]): unknown[] {
  const spans: SpanRecord[] = [];
  const policy = compilePolicy(doc);
  const factory: ExchangeFactory = make({ policy: () => policy, sink: { submit: (s) => spans.push(s) }, metrics: createProxyMetrics(new Metrics()) });
  runWithOneLate(scripts, (s) => factory.start(s.start), finish);
  return spans.map(({ traceId, spanId, ...rest }) => ({ ...rest, traceId: rest.parentSpanId === undefined ? '' : traceId, spanId: spanId.length }));
}

describe('replay exchange factory', () => {
  it('gives the spans fresh exchanges give, over any sequence of exchanges', () => {
    const docs = [{}, { default: { requestBody: false, sample: 0 } }];
    fc.assert(
      fc.property(fc.array(script, { minLength: 1, maxLength: 6 }), fc.constantFrom(...docs), (scripts, doc) => {
        expect(run(createReplayExchangeFactory, doc, scripts)).toEqual(run(createExchangeFactory, doc, scripts));
      }),
      { numRuns: 300 },
    );
  });
});
