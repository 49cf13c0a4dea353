// The Exchange: what protocol handlers report about one request, turned into a span.
// The request path only matches the policy, reads the trace context and references body
// chunks; headers, bodies, redaction and gRPC decoding are worked out once, at span end, and
// only when the span is kept (or a live tap listens). Nothing here may throw into a handler.

import { redactBody, redactQuery } from '../policy/redact.js';
import type { CaptureRule, CompiledPolicy, RouteMatch } from '../policy/types.js';
import { nowMs, SpanKind, StatusCode, type Attributes, type SpanEvent, type SpanRecord } from '../telemetry/span.js';
import { equalsLower } from './capture/ascii.js';
import { AttributeBuilder, AttributeRun, AttributeTemplate, ShapeMemo } from './capture/attributes.js';
import { BodyCapture } from './capture/body.js';
import { decodeBody } from './capture/decode.js';
import { requestHeaders, requestTrailers, responseHeaders, responseTrailers } from './capture/headers.js';
import { GrpcMessageSizes } from './capture/grpc-messages.js';
import { bodyValue, classifyContentType, type ContentTypeClass } from './capture/text.js';
import { isGrpcContentType, PASSIVE_EXCHANGE, type Exchange, type ExchangeDeps, type ExchangeFactory, type ExchangeStart, type RawHeaders } from './exchange.js';
import { decodeProtobufToJson } from './grpc/protobuf-decode.js';
import { inflateGrpcPayload, readGrpcFrames } from './grpc/frame-reader.js';
import { extractContext, forwardContext, type ForwardContext, type IncomingContext } from './propagation/context.js';
import { newSpanId, newTraceId } from './propagation/ids.js';

export function createExchangeFactory(deps: ExchangeDeps): ExchangeFactory {
  return {
    // `requests` is counted by the handlers (h1/, h2/), which see every request even when
    // starting an exchange fails; counting here too would double it.
    start(start: ExchangeStart): Exchange {
      try {
        return startExchange(deps, start, undefined);
      } catch {
        deps.metrics.captureErrors.inc();
        return PASSIVE_EXCHANGE;
      }
    },
  };
}

/**
 * For callers that report a whole exchange in one synchronous run and keep no Exchange after it
 * ends (the node agent's replay): an exchange that has ended is started again for the next
 * request rather than a new one allocated. Spans are the same as createExchangeFactory's.
 */
export function createReplayExchangeFactory(deps: ExchangeDeps): ExchangeFactory {
  let last: TracedExchange | undefined;
  return {
    start(start: ExchangeStart): Exchange {
      try {
        // One not ended may still be in use (a replay that threw midway): it is left alone.
        const ex = startExchange(deps, start, last !== undefined && last.idle ? last : undefined);
        if (ex instanceof TracedExchange) last = ex;
        return ex;
      } catch {
        deps.metrics.captureErrors.inc();
        return PASSIVE_EXCHANGE;
      }
    },
  };
}

/** `reuse`: an ended exchange to start again instead of a new one. */
function startExchange(deps: ExchangeDeps, start: ExchangeStart, reuse: TracedExchange | undefined): Exchange {
  const startMs = start.startMs ?? nowMs();
  const heads = start.heads;
  let path: string | undefined;
  let query: string | undefined;
  let authority: string | undefined;
  if (heads !== undefined && heads.targetOf === start.target) {
    // A repeated head brings the same target string: one pointer compare instead of a split.
    path = heads.targetPath;
    query = heads.targetQuery;
    authority = heads.targetAuthority;
  } else {
    splitTarget(start.target);
    path = targetPath;
    query = targetQuery;
    authority = targetAuthority;
    if (heads !== undefined) {
      heads.targetOf = start.target;
      heads.targetPath = path;
      heads.targetQuery = query;
      heads.targetAuthority = authority;
    }
  }
  let contentType: string | undefined;
  if (heads === undefined) {
    contentType = findHeader(start.headers, 'content-type');
  } else {
    if (heads.request !== start.headers) heads.newRequest(start.headers);
    contentType = heads.contentType;
  }
  const grpc = contentType !== undefined && isGrpcContentType(contentType);
  let match: RouteMatch;
  try {
    const policy = deps.policy();
    // The match is the policy's function of method, path and gRPC method: a repeated head brings
    // the same method and target strings (pointer compares), a reload another policy, and gRPC or
    // not is the request head's content type (newRequest forgets the match with the head).
    if (heads !== undefined && heads.matchPolicy === policy && heads.matchMethod === start.method && heads.matchTarget === start.target) {
      match = heads.match!;
    } else {
      match = policy.match({
        method: start.method,
        path: path ?? '',
        grpcMethod: grpc && path !== undefined ? path.slice(1) : undefined,
      });
      if (heads !== undefined) {
        heads.matchPolicy = policy;
        heads.matchMethod = start.method;
        heads.matchTarget = start.target;
        heads.match = match;
      }
    }
  } catch {
    deps.metrics.captureErrors.inc();
    return PASSIVE_EXCHANGE;
  }
  if (!match.rule.spans) return PASSIVE_EXCHANGE;
  const ex = reuse ?? new TracedExchange(deps);
  ex.init(start, startMs, path, query, authority, contentType, grpc, match);
  return ex;
}

/**
 * Head decision on the trace id alone, so every hop with the same rate agrees: the low 56 bits
 * (the W3C level 2 random part) against sample * 2^56.
 */
export function keepByTraceId(traceId: string, sample: number): boolean {
  if (sample >= 1) return true;
  if (sample <= 0) return false;
  // Two exact 28-bit halves: one 56-bit parseInt would round above 2^53.
  const threshold = sample * 2 ** 56;
  const thresholdHi = Math.floor(threshold / 2 ** 28);
  const hi = parseInt(traceId.slice(18, 25), 16);
  if (hi !== thresholdHi) return hi < thresholdHi;
  return parseInt(traceId.slice(25, 32), 16) < threshold - thresholdHi * 2 ** 28;
}

/**
 * What exchanges derive from a request head and from a response head alone, kept for the next
 * exchange of the same connection (ExchangeStart.heads). The agent's HTTP/1 parser hands back the
 * same RawHeaders array (===) for a head that repeats its connection's previous one (shared,
 * read-only), so one pointer compare says all of this holds again: the content type, user agent,
 * trace context, Host split, and the header attributes recorded under the same rule (a rule is
 * compared too: redaction and selection are the rule's, and a reloaded policy brings new rules).
 * Those attribute values are then the previous span's arrays, shared between the spans: attribute
 * values are read-only once a span is submitted (SpanRecord), which nothing downstream breaks.
 * Heads are told apart by identity only: comparing their strings cost more than it saved.
 */
export class HeadMemo {
  /** The last target split (splitTarget, a pure function of the string) and its parts. */
  targetOf: string | undefined = undefined;
  targetPath: string | undefined = undefined;
  targetQuery: string | undefined = undefined;
  targetAuthority: string | undefined = undefined;
  /** The request head the request fields are of; newRequest resets them for another. */
  request: RawHeaders | undefined = undefined;
  contentType: string | undefined = undefined;
  userAgent: string | undefined = undefined;
  userAgentFound = false;
  incoming: IncomingContext | undefined = undefined;
  /** The rule requestAttrs were recorded under; undefined: not recorded for this head. */
  requestRule: CaptureRule | undefined = undefined;
  readonly requestAttrs = new AttributeRun();
  /**
   * The last authority split (a pure function of the string, so keyed by it alone; forgotten with
   * the request head, whose Host it mostly is).
   */
  authority: string | undefined = undefined;
  authorityAddress = '';
  authorityPort: number | undefined = undefined;
  /** The response head the response fields are of. */
  response: RawHeaders | undefined = undefined;
  responseRule: CaptureRule | undefined = undefined;
  readonly responseAttrs = new AttributeRun();
  responseLooked = false;
  responseContentType: string | undefined = undefined;
  responseEncoding: string | undefined = undefined;
  /** responseContentType classified (bodyValue), once looked up. */
  responseClass: ContentTypeClass | undefined = undefined;
  /** The last client span's url.full and what it was made of (compared as strings; forgotten with the request head). */
  full = '';
  fullAuthority: string | undefined = undefined;
  fullPath: string | undefined = undefined;
  fullQuery: string | undefined = undefined;
  fullScheme: string | undefined = undefined;
  /** The last ExchangeStart.attributes and their pairs (such objects never change once handed over). */
  extra: Attributes | undefined = undefined;
  readonly extraAttrs = new AttributeRun();
  /** The last policy match and what it was of (forgotten with the request head, its content type's). */
  matchPolicy: CompiledPolicy | undefined = undefined;
  matchMethod: string | undefined = undefined;
  matchTarget: string | undefined = undefined;
  match: RouteMatch | undefined = undefined;
  /** The key sequence of this connection's last span (AttributeBuilder.finish). */
  readonly shape = new ShapeMemo();
  /**
   * The last span's attributes when every run above repeated (prefix, response head, extra), all
   * but its body pairs to be used again while they keep repeating; cleared when one is derived anew.
   */
  readonly template = new AttributeTemplate();
  /**
   * The last span's attributes from its method through its request header attributes, and what
   * they were made of (build compares each; strings mostly by pointer, as the head repeats them).
   */
  readonly prefix = new AttributeRun();
  prefixRequest: RawHeaders | undefined = undefined;
  prefixMatch: RouteMatch | undefined = undefined;
  prefixMethod = '';
  prefixTarget = '';
  prefixAuthority: string | undefined = undefined;
  prefixScheme: string | undefined = undefined;
  prefixInbound = false;
  prefixVersion = '';
  prefixStatus = 0;
  prefixErrorType: string | undefined = undefined;
  prefixServerAddress = '';
  prefixServerPort = 0;
  prefixClientAddress = '';
  prefixClientPort = 0;
  /** The span's name unless gRPC (httpName: the method and the route). */
  prefixName = '';

  newRequest(headers: RawHeaders): void {
    this.request = headers;
    this.contentType = findHeader(headers, 'content-type');
    this.userAgentFound = false;
    this.userAgent = undefined;
    this.incoming = undefined;
    this.requestRule = undefined;
    // The strings below come from this head now: kept, they make the compares pointer compares
    // (strings equal in content but not the same object are compared character by character).
    this.authority = undefined;
    this.fullAuthority = undefined;
    this.matchPolicy = undefined;
  }

  newResponse(headers: RawHeaders): void {
    this.response = headers;
    this.responseRule = undefined;
    this.responseLooked = false;
    this.responseContentType = undefined;
    this.responseEncoding = undefined;
    this.responseClass = undefined;
  }
}

// splitTarget's results. Module variables, not an object per request: startExchange reads them
// right after the call, and nothing in between can split another target.
let targetPath: string | undefined;
let targetQuery: string | undefined;
/** Host from an absolute-form target, used when there is no Host header. */
let targetAuthority: string | undefined;

function splitTarget(target: string): void {
  let rest = target;
  targetPath = targetQuery = targetAuthority = undefined;
  if (target.charCodeAt(0) !== 47 /* / */) {
    const scheme = target.indexOf('://');
    if (scheme < 0) return; // authority-form (CONNECT) or '*'
    const slash = target.indexOf('/', scheme + 3);
    targetAuthority = target.slice(scheme + 3, slash < 0 ? target.length : slash);
    rest = slash < 0 ? '/' : target.slice(slash);
  }
  const q = rest.indexOf('?');
  if (q < 0) {
    targetPath = rest;
  } else {
    targetPath = rest.slice(0, q);
    targetQuery = rest.slice(q + 1);
  }
}

/** First value of a header (lowercase name), compared without a lowercased copy of each name. */
function findHeader(headers: RawHeaders, lowerName: string): string | undefined {
  const len = lowerName.length;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length === len && (name === lowerName || equalsLower(name, lowerName))) return headers[i + 1];
  }
  return undefined;
}

/**
 * A switch, not a Set: methods arrive as fresh strings, and a Set must hash each one in a runtime
 * call, where comparing with a few literals takes a few instructions.
 */
function isKnownMethod(method: string): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'POST':
    case 'PUT':
    case 'DELETE':
    case 'CONNECT':
    case 'OPTIONS':
    case 'TRACE':
    case 'PATCH':
      return true;
    default:
      return false;
  }
}

/** Spans are built synchronously, one at a time, so one builder serves them all. */
const ATTRS = new AttributeBuilder();
/** A span's body pairs, set aside while build adds what comes before them (it runs one at a time). */
const BODIES = new AttributeRun();

/** An HTTP span's name: the method (or HTTP for one not known) and the route, if any. */
function httpName(known: boolean, method: string, route: string | undefined): string {
  const base = known ? method : 'HTTP';
  return route === undefined ? base : `${base} ${route}`;
}

// Statuses without a message, shared by all spans: nothing changes a span's status once built.
const STATUS_UNSET: SpanRecord['status'] = Object.freeze({ code: StatusCode.UNSET });
const STATUS_ERROR: SpanRecord['status'] = Object.freeze({ code: StatusCode.ERROR });
/** `spare` emptied for a body under `limit`, or a new capture. */
function capture(spare: BodyCapture | undefined, limit: number): BodyCapture {
  if (spare === undefined) return new BodyCapture(limit);
  spare.reset(limit);
  return spare;
}

/** recordBody's content type argument when it is to be found in the headers. */
const LOOK_UP: unique symbol = Symbol('look up');
/** The capture of a body no chunk of has arrived: never added to, so one serves every exchange. */
const NO_BODY = new BodyCapture(0);
/** Events of a span without any (all but gRPC), shared for the same reason. */
const NO_EVENTS = Object.freeze([]) as unknown as SpanEvent[];

// Semconv: these codes make a SERVER span an error; a CLIENT span errs on any non-zero code.
const GRPC_SERVER_ERROR_CODES: ReadonlySet<number> = new Set([2, 4, 12, 13, 14, 15]);

/**
 * Every field but deps is set by init, which starts the exchange: a replay factory starts an
 * ended one again (createReplayExchangeFactory).
 */
class TracedExchange implements Exchange {
  private start!: ExchangeStart;
  private startMs = 0;
  private path: string | undefined;
  private query: string | undefined;
  /** Host from an absolute-form target. */
  private targetAuthority: string | undefined;
  private contentType: string | undefined;
  private grpc = false;
  private match!: RouteMatch;
  /** Worked out on first use: exchanges replayed by the agent forward nothing. */
  private forward: ForwardContext | undefined;
  private traceId = '';
  private spanId = '';
  private rule!: CaptureRule;
  private incoming!: IncomingContext;
  /** The sampled flag propagated downstream. */
  private sampled = false;
  /** The rule's head decision on the trace id, needed both for `sampled` and at span end. */
  private headKept = false;
  /** NO_BODY until a chunk arrives: most requests and some responses have no body. */
  private reqBody = NO_BODY;
  private resBody = NO_BODY;
  /** Captures of an earlier start, emptied at its end, for the next bodies. */
  private spareReqBody: BodyCapture | undefined;
  private spareResBody: BodyCapture | undefined;
  private reqMessages: GrpcMessageSizes | undefined;
  private resMessages: GrpcMessageSizes | undefined;
  private reqTrailers: RawHeaders | undefined;
  private resTrailers: RawHeaders | undefined;
  private status = 0;
  private resHeaders: RawHeaders | undefined;
  private errorType: string | undefined;
  private errorMessage: string | undefined;
  private ended = false;
  /** Ended and out of end() (which a sink could re-enter): a replay factory may start it again. */
  idle = false;
  // Set by settle().
  private outCode = StatusCode.UNSET;
  private outMessage: string | undefined;
  private outErrorType: string | undefined;
  private outGrpcCode: number | undefined;

  constructor(private readonly deps: ExchangeDeps) {}

  init(
    start: ExchangeStart,
    startMs: number,
    path: string | undefined,
    query: string | undefined,
    targetAuthority: string | undefined,
    contentType: string | undefined,
    grpc: boolean,
    match: RouteMatch,
  ): void {
    this.start = start;
    this.startMs = startMs;
    this.path = path;
    this.query = query;
    this.targetAuthority = targetAuthority;
    this.contentType = contentType;
    this.grpc = grpc;
    this.match = match;
    const rule = match.rule;
    this.rule = rule;
    const heads = start.heads;
    let incoming: IncomingContext;
    // startExchange has made heads.request this head's.
    if (heads === undefined) incoming = extractContext(start.headers);
    else incoming = heads.incoming ??= extractContext(start.headers);
    this.incoming = incoming;
    this.forward = undefined;
    this.traceId = incoming.traceId ?? newTraceId();
    this.spanId = newSpanId();
    this.headKept = keepByTraceId(this.traceId, rule.sample);
    this.sampled = incoming.debug || (incoming.sampled ?? this.headKept);
    this.reqBody = NO_BODY;
    this.resBody = NO_BODY;
    this.reqMessages = grpc ? new GrpcMessageSizes() : undefined;
    this.resMessages = grpc ? new GrpcMessageSizes() : undefined;
    this.reqTrailers = undefined;
    this.resTrailers = undefined;
    this.status = 0;
    this.resHeaders = undefined;
    this.errorType = undefined;
    this.errorMessage = undefined;
    this.ended = false;
    this.idle = false;
    this.outCode = StatusCode.UNSET;
    this.outMessage = undefined;
    this.outErrorType = undefined;
    this.outGrpcCode = undefined;
  }

  get forwardHeaders(): ReadonlyArray<readonly [string, string]> {
    return (this.forward ??= forwardContext(this.incoming, this.traceId, this.spanId, this.sampled)).headers;
  }

  get replacesHeaders(): ReadonlySet<string> {
    return (this.forward ??= forwardContext(this.incoming, this.traceId, this.spanId, this.sampled)).replaces;
  }

  requestBody(chunk: Buffer, atMs?: number): void {
    if (this.ended) return;
    try {
      if (this.reqBody === NO_BODY) this.reqBody = capture(this.spareReqBody, this.rule.requestBody ? this.rule.maxBodyBytes : 0);
      this.reqBody.add(chunk);
      if (this.reqMessages !== undefined) this.reqMessages.add(chunk, atMs ?? nowMs());
    } catch {
      this.deps.metrics.captureErrors.inc();
    }
  }

  requestEnd(trailers?: RawHeaders): void {
    if (this.ended) return;
    if (trailers !== undefined && trailers.length > 0) this.reqTrailers = trailers;
  }

  responseHead(status: number, headers: RawHeaders): void {
    if (this.ended) return;
    this.status = status;
    this.resHeaders = headers;
  }

  responseBody(chunk: Buffer, atMs?: number): void {
    if (this.ended) return;
    try {
      if (this.resBody === NO_BODY) this.resBody = capture(this.spareResBody, this.rule.responseBody ? this.rule.maxBodyBytes : 0);
      this.resBody.add(chunk);
      if (this.resMessages !== undefined) this.resMessages.add(chunk, atMs ?? nowMs());
    } catch {
      this.deps.metrics.captureErrors.inc();
    }
  }

  responseEnd(trailers?: RawHeaders, atMs?: number): void {
    if (this.ended) return;
    if (trailers !== undefined && trailers.length > 0) this.resTrailers = trailers;
    this.end(atMs);
  }

  fail(errorType: string, message?: string, atMs?: number): void {
    if (this.ended) return;
    this.errorType = errorType;
    this.errorMessage = message;
    this.end(atMs);
  }

  tunnelEstablished(status: number, headers: RawHeaders, atMs?: number): void {
    if (this.ended) return;
    this.status = status;
    this.resHeaders = headers;
    this.end(atMs);
  }

  /** Runs once: decides sampling, then builds and hands on the span only if someone wants it. */
  private end(atMs?: number): void {
    this.ended = true;
    const { deps, rule } = this;
    try {
      const endMs = atMs ?? nowMs();
      this.settle();
      const isError = this.outCode === StatusCode.ERROR;
      let kept: boolean;
      if (this.incoming.sampled === false) kept = false;
      else if (this.incoming.debug) kept = true;
      else kept = isError || endMs - this.startMs >= rule.keepSlowerThanMs || this.headKept;
      const tap = deps.tap !== undefined && deps.tap.active ? deps.tap : undefined;
      if (!kept) deps.metrics.spansSampledOut.inc();
      if (!kept && tap === undefined) return;
      // A live tap may hold the span past publish (admin /tap batches them per tick).
      const sinkCopiesBelow = tap === undefined ? (deps.sink.copiesBytesBelow ?? 0) : 0;
      const span = this.build(endMs, sinkCopiesBelow);
      if (kept) {
        deps.metrics.bytesCaptured.inc(this.reqBody.keptSize + this.resBody.keptSize);
        try {
          deps.sink.submit(span);
          deps.metrics.spansSubmitted.inc();
        } catch {
          deps.metrics.captureErrors.inc();
        }
      }
      if (tap !== undefined) tap.publish(span);
    } catch {
      deps.metrics.captureErrors.inc();
    } finally {
      // Nothing reads them once ended; an exchange kept after its end (a handler's, or one
      // waiting to be started again) should not keep a request's bodies alive.
      if (this.reqBody !== NO_BODY) {
        this.reqBody.reset(0);
        this.spareReqBody = this.reqBody;
        this.reqBody = NO_BODY;
      }
      if (this.resBody !== NO_BODY) {
        this.resBody.reset(0);
        this.spareResBody = this.resBody;
        this.resBody = NO_BODY;
      }
      this.reqTrailers = undefined;
      this.resHeaders = undefined;
      this.resTrailers = undefined;
      this.idle = true;
    }
  }

  private grpcStatus(): { code?: number; message?: string } {
    // Trailers carry the status; a trailers-only response carries it in its head.
    let source = this.resTrailers;
    let raw = source === undefined ? undefined : findHeader(source, 'grpc-status');
    if (raw === undefined) {
      source = this.resHeaders;
      raw = source === undefined ? undefined : findHeader(source, 'grpc-status');
    }
    if (source === undefined || raw === undefined) return {};
    const code = Number(raw);
    if (!Number.isInteger(code)) return {};
    const msg = findHeader(source, 'grpc-message');
    return { code, message: msg === undefined ? undefined : percentDecode(msg) };
  }

  /**
   * The span's status, error.type and gRPC code, kept in fields rather than returned as an object
   * per span: end reads the code, and build, called from end only, the rest.
   */
  private settle(): void {
    const server = this.start.direction === 'inbound';
    let grpcCode: number | undefined;
    let grpcMessage: string | undefined;
    if (this.grpc) {
      const g = this.grpcStatus();
      grpcCode = g.code;
      grpcMessage = g.message;
    }
    this.outGrpcCode = grpcCode;
    this.outCode = StatusCode.ERROR;
    if (this.errorType !== undefined) {
      this.outMessage = this.errorMessage;
      this.outErrorType = this.errorType;
    } else if (grpcCode !== undefined && (server ? GRPC_SERVER_ERROR_CODES.has(grpcCode) : grpcCode !== 0)) {
      this.outMessage = grpcMessage;
      this.outErrorType = String(grpcCode);
    } else if (this.status >= (server ? 500 : 400)) {
      this.outErrorType = String(this.status);
    } else {
      this.outCode = StatusCode.UNSET;
    }
  }

  /** sinkCopiesBelow: bodies shorter than this go out as they are (SpanSink.copiesBytesBelow). */
  private build(endMs: number, sinkCopiesBelow: number): SpanRecord {
    const { start, rule, path } = this;
    const server = start.direction === 'inbound';
    // A failed build (caught in end) may have left pairs behind.
    const attrs = ATTRS;
    attrs.reset();
    const method = start.method;
    const heads = start.heads;
    const resHeaders = this.resHeaders;
    const extra = start.attributes;
    // The attributes of the request head, the target, the peers, the status and the route come
    // out the same for the same inputs: a connection whose requests repeat (same head object,
    // target, peers, status, match) adds the last span's run of them instead of deriving each.
    const prefixHit =
      heads !== undefined &&
      heads.prefixRequest === start.headers &&
      heads.prefixMatch === this.match &&
      heads.prefixMethod === method &&
      heads.prefixTarget === start.target &&
      heads.prefixAuthority === start.authority &&
      heads.prefixScheme === start.scheme &&
      heads.prefixInbound === server &&
      heads.prefixVersion === start.protocolVersion &&
      heads.prefixStatus === this.status &&
      heads.prefixErrorType === this.outErrorType &&
      heads.prefixServerAddress === start.server.address &&
      heads.prefixServerPort === start.server.port &&
      heads.prefixClientAddress === start.client.address &&
      heads.prefixClientPort === start.client.port;
    // And when the response head's and the extra attributes' runs repeat too (and nothing else
    // adds any: trailers, gRPC), all but the body pairs are the last span's: heads.template.
    const repeats =
      prefixHit &&
      resHeaders !== undefined &&
      heads.response === resHeaders &&
      heads.responseRule === rule &&
      extra !== undefined &&
      heads.extra === extra &&
      this.reqTrailers === undefined &&
      this.resTrailers === undefined &&
      !this.grpc;
    /** The body pairs are in BODIES already (the template did not fit them). */
    let bodiesRecorded = false;
    if (repeats && heads.template.values !== undefined) {
      this.recordBody(attrs, REQUEST_BODY, this.reqBody, rule.requestBody, start.headers, this.contentType, sinkCopiesBelow);
      this.recordBody(attrs, RESPONSE_BODY, this.resBody, rule.responseBody, resHeaders, LOOK_UP, sinkCopiesBelow);
      if (attrs.fitsTemplate(heads.template)) {
        return this.span(attrs.finishFromTemplate(heads.template), heads.prefixName, NO_EVENTS, server, endMs);
      }
      attrs.saveRun(0, BODIES);
      attrs.reset();
      bodiesRecorded = true;
    }
    let httpSpanName: string;
    if (prefixHit) {
      httpSpanName = heads.prefixName;
      attrs.addRun(heads.prefix);
    } else {
      httpSpanName = this.addHeadAttributes(attrs, heads, server);
    }
    if (this.reqTrailers !== undefined) requestTrailers.record(attrs, this.reqTrailers, rule.requestHeaders, rule);
    if (resHeaders !== undefined) {
      if (heads === undefined) {
        responseHeaders.record(attrs, resHeaders, rule.responseHeaders, rule);
      } else {
        if (heads.response !== resHeaders) heads.newResponse(resHeaders);
        if (heads.responseRule === rule) {
          attrs.addRun(heads.responseAttrs);
        } else {
          const from = attrs.size;
          responseHeaders.record(attrs, resHeaders, rule.responseHeaders, rule);
          attrs.saveRun(from, heads.responseAttrs);
          heads.responseRule = rule;
          heads.template.clear();
        }
      }
    }
    if (this.resTrailers !== undefined) responseTrailers.record(attrs, this.resTrailers, rule.responseHeaders, rule);

    const bodiesFrom = attrs.size;
    if (bodiesRecorded) {
      attrs.addRun(BODIES);
      // BODIES is filled again only when a template does not fit, maybe never: a body it kept
      // (a view of a capture batch) would stay alive until then.
      BODIES.clear();
    } else {
      // gRPC bodies are recorded per message (events below), not as one framed blob.
      this.recordBody(attrs, REQUEST_BODY, this.reqBody, rule.requestBody && !this.grpc, start.headers, this.contentType, sinkCopiesBelow);
      this.recordBody(attrs, RESPONSE_BODY, this.resBody, rule.responseBody && !this.grpc, resHeaders, LOOK_UP, sinkCopiesBelow);
    }
    const bodiesTo = attrs.size;

    let name: string;
    let events = NO_EVENTS;
    if (this.grpc) {
      if (rule.requestBody && this.reqBody.truncated) attrs.add(REQUEST_BODY.truncated, true);
      if (rule.responseBody && this.resBody.truncated) attrs.add(RESPONSE_BODY.truncated, true);
    }
    if (this.grpc && path !== undefined) {
      const slash = path.lastIndexOf('/');
      const service = path.slice(1, slash > 0 ? slash : path.length);
      const rpcMethod = slash > 0 ? path.slice(slash + 1) : '';
      attrs.add('rpc.system', 'grpc');
      attrs.add('rpc.service', service);
      attrs.add('rpc.method', rpcMethod);
      if (this.outGrpcCode !== undefined) attrs.add('rpc.grpc.status_code', this.outGrpcCode);
      name = `${service}/${rpcMethod}`;
      events = this.grpcEvents(server);
    } else {
      name = httpSpanName;
    }

    // The caller's extra attributes come last; one under a key already added ends where
    // Object.assign would leave it (the builder makes a repeated key an assignment).
    // for-in walks a fast object's cached keys; Object.keys copies them into a new array per span.
    // Attribute objects are plain (no enumerable inherited keys), so both see the same keys.
    if (extra !== undefined) {
      if (heads === undefined) {
        for (const key in extra) attrs.add(key, extra[key]);
      } else if (heads.extra === extra) {
        attrs.addRun(heads.extraAttrs);
      } else {
        const from = attrs.size;
        for (const key in extra) attrs.add(key, extra[key]);
        attrs.saveRun(from, heads.extraAttrs);
        heads.extra = extra;
        heads.template.clear();
      }
    }
    // Every run repeated: this span's values are the next one's template (all but its bodies).
    // Any run derived anew has cleared the template, so a template is of the runs as they are.
    let attributes: Attributes;
    if (repeats) attributes = attrs.finishKeeping(heads.template, bodiesFrom, bodiesTo, heads.shape);
    else {
      attributes = attrs.finish(heads?.shape);
      // Spans made from a template (of any connection) overwrite only the builder's first slots.
      attrs.forgetValues(bodiesFrom, bodiesTo);
    }
    return this.span(attributes, name, events, server, endMs);
  }

  /**
   * The general path of build's first run of attributes (method through request headers), kept
   * in `heads` for the requests that repeat it; returns the span's name unless gRPC. Its own
   * function, keeping build small: inline, the compiler more often left build's adds as calls
   * (seen in profiles of the proxy's path, whose spans all take this one).
   */
  private addHeadAttributes(attrs: AttributeBuilder, heads: HeadMemo | undefined, server: boolean): string {
    const { start, rule, path } = this;
    const method = start.method;
    const known = isKnownMethod(method);
    const httpSpanName = httpName(known, method, this.match.route);
    attrs.add('http.request.method', known ? method : '_OTHER');
    if (!known) attrs.add('http.request.method_original', method);
    if (path !== undefined) attrs.add('url.path', path);
    const query = this.query === undefined ? undefined : redactQuery(rule, this.query);
    if (query !== undefined) attrs.add('url.query', query);
    const scheme = start.scheme ?? 'http';
    attrs.add('url.scheme', scheme);

    const authority = start.authority ?? this.targetAuthority ?? (path === undefined && method === 'CONNECT' ? start.target : undefined);
    if (server) {
      if (authority !== undefined) {
        if (heads === undefined) {
          splitAuthority(authority);
        } else if (heads.authority !== authority) {
          splitAuthority(authority);
          heads.authority = authority;
          heads.authorityAddress = authorityAddress;
          heads.authorityPort = authorityPort;
        } else {
          authorityAddress = heads.authorityAddress;
          authorityPort = heads.authorityPort;
        }
      }
      attrs.add('server.address', authority === undefined ? start.server.address : authorityAddress);
      // A Host without a port means the scheme's default port (RFC 9110 §4.2).
      attrs.add('server.port', authority === undefined ? start.server.port : authorityPort ?? (scheme === 'https' ? 443 : 80));
      attrs.add('client.address', start.client.address);
      attrs.add('client.port', start.client.port);
      attrs.add('network.peer.address', start.client.address);
      attrs.add('network.peer.port', start.client.port);
    } else {
      attrs.add('server.address', start.server.address);
      attrs.add('server.port', start.server.port);
      attrs.add('network.peer.address', start.server.address);
      attrs.add('network.peer.port', start.server.port);
      if (path !== undefined) {
        let full: string;
        if (heads !== undefined && authority !== undefined) {
          // A repeated head brings the same strings: four pointer compares instead of a new string.
          if (heads.fullAuthority !== authority || heads.fullPath !== path || heads.fullQuery !== query || heads.fullScheme !== scheme) {
            heads.full = `${scheme}://${authority}${path}${query === undefined ? '' : `?${query}`}`;
            heads.fullAuthority = authority;
            heads.fullPath = path;
            heads.fullQuery = query;
            heads.fullScheme = scheme;
          }
          full = heads.full;
        } else {
          const host = authority ?? `${start.server.address}:${start.server.port}`;
          full = `${scheme}://${host}${path}${query === undefined ? '' : `?${query}`}`;
        }
        attrs.add('url.full', full);
      }
    }
    attrs.add('network.protocol.version', start.protocolVersion);
    let ua: string | undefined;
    if (heads === undefined || heads.request !== start.headers) {
      ua = findHeader(start.headers, 'user-agent');
    } else {
      if (!heads.userAgentFound) {
        heads.userAgent = findHeader(start.headers, 'user-agent');
        heads.userAgentFound = true;
      }
      ua = heads.userAgent;
    }
    if (ua !== undefined) attrs.add('user_agent.original', ua);
    if (this.match.route !== undefined) attrs.add('http.route', this.match.route);
    if (this.status > 0) attrs.add('http.response.status_code', this.status);
    if (this.outErrorType !== undefined) attrs.add('error.type', this.outErrorType);

    if (heads === undefined || heads.request !== start.headers) {
      requestHeaders.record(attrs, start.headers, rule.requestHeaders, rule);
    } else if (heads.requestRule === rule) {
      attrs.addRun(heads.requestAttrs);
    } else {
      const from = attrs.size;
      requestHeaders.record(attrs, start.headers, rule.requestHeaders, rule);
      attrs.saveRun(from, heads.requestAttrs);
      heads.requestRule = rule;
    }
    if (heads !== undefined) {
      attrs.saveRun(0, heads.prefix);
      heads.template.clear();
      heads.prefixRequest = start.headers;
      heads.prefixMatch = this.match;
      heads.prefixMethod = method;
      heads.prefixTarget = start.target;
      heads.prefixAuthority = start.authority;
      heads.prefixScheme = start.scheme;
      heads.prefixInbound = server;
      heads.prefixVersion = start.protocolVersion;
      heads.prefixStatus = this.status;
      heads.prefixErrorType = this.outErrorType;
      heads.prefixServerAddress = start.server.address;
      heads.prefixServerPort = start.server.port;
      heads.prefixClientAddress = start.client.address;
      heads.prefixClientPort = start.client.port;
      heads.prefixName = httpSpanName;
    }
    return httpSpanName;
  }

  private span(attributes: Attributes, name: string, events: SpanEvent[], server: boolean, endMs: number): SpanRecord {
    // Every key in the literal, the optional ones too: a key added later gives the span a second
    // object of properties and another shape, which the exporter then meets as well.
    return {
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: this.incoming.parentSpanId,
      traceState: this.incoming.traceState,
      sampled: this.sampled,
      name,
      kind: server ? SpanKind.SERVER : SpanKind.CLIENT,
      startMs: this.startMs,
      endMs,
      attributes,
      events,
      status: this.outMessage !== undefined ? { code: this.outCode, message: this.outMessage } : this.outCode === StatusCode.ERROR ? STATUS_ERROR : STATUS_UNSET,
      resource: this.start.resource,
    };
  }

  private recordBody(
    attrs: AttributeBuilder,
    keys: BodyKeys,
    capture: BodyCapture,
    record: boolean,
    headers: RawHeaders | undefined,
    knownContentType: string | undefined | typeof LOOK_UP,
    sinkCopiesBelow: number,
  ): void {
    if (capture.size > 0) attrs.add(keys.size, capture.size);
    if (!record || capture.keptSize === 0) return;
    // Looked up only for a body recorded: each lookup is a pass over the headers.
    let contentType: string | undefined;
    let encoding: string | undefined;
    let contentClass: ContentTypeClass | undefined | typeof LOOK_UP = LOOK_UP;
    const heads = this.start.heads;
    if (knownContentType === LOOK_UP && heads !== undefined && headers !== undefined && heads.response === headers) {
      // build has made heads.response this response's head.
      if (!heads.responseLooked) {
        heads.responseContentType = findHeader(headers, 'content-type');
        heads.responseEncoding = findHeader(headers, 'content-encoding');
        heads.responseClass = heads.responseContentType === undefined ? undefined : classifyContentType(heads.responseContentType);
        heads.responseLooked = true;
      }
      contentType = heads.responseContentType;
      encoding = heads.responseEncoding;
      contentClass = heads.responseClass;
    } else {
      contentType = knownContentType === LOOK_UP ? (headers === undefined ? undefined : findHeader(headers, 'content-type')) : knownContentType;
      encoding = headers === undefined ? undefined : findHeader(headers, 'content-encoding');
    }
    let bytes = capture.bytes();
    let truncated = capture.truncated;
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      const decoded = decodeBody(bytes, encoding, this.rule.maxBodyBytes);
      if (decoded === undefined) {
        // Undecodable: keep the raw encoded bytes, never a misleading text rendering.
        attrs.add(keys.content, detach(bytes, sinkCopiesBelow));
        if (truncated) attrs.add(keys.truncated, true);
        return;
      }
      bytes = decoded.bytes;
      truncated = truncated || decoded.truncated;
    }
    const value = bodyValue(bytes, contentType, truncated, contentClass === LOOK_UP ? undefined : contentClass);
    attrs.add(keys.content, typeof value === 'string' ? redactBody(this.rule, contentType, value) : detach(value, sinkCopiesBelow));
    if (truncated) attrs.add(keys.truncated, true);
  }

  private grpcEvents(server: boolean): SpanEvent[] {
    const events: SpanEvent[] = [];
    const reqEncoding = findHeader(this.start.headers, 'grpc-encoding');
    const resEncoding = this.resHeaders === undefined ? undefined : findHeader(this.resHeaders, 'grpc-encoding');
    messageEvents(events, this.reqMessages!, this.rule.requestBody ? this.reqBody : undefined, server ? 'RECEIVED' : 'SENT', reqEncoding, this.rule.maxBodyBytes);
    messageEvents(events, this.resMessages!, this.rule.responseBody ? this.resBody : undefined, server ? 'SENT' : 'RECEIVED', resEncoding, this.rule.maxBodyBytes);
    // Streams interleave directions; events read best in time order (sort is stable).
    events.sort((a, b) => a.timeMs - b.timeMs);
    return events;
  }
}

// Literal keys: concatenated ones are flattened and re-hashed on every span. The agent's replay
// completes body sizes under the same keys.
export interface BodyKeys {
  size: string;
  content: string;
  truncated: string;
}
export const REQUEST_BODY: BodyKeys = { size: 'http.request.body.size', content: 'http.request.body.content', truncated: 'http.request.body.truncated' };
export const RESPONSE_BODY: BodyKeys = { size: 'http.response.body.size', content: 'http.response.body.content', truncated: 'http.response.body.truncated' };

function messageEvents(
  out: SpanEvent[],
  sizes: GrpcMessageSizes,
  capture: BodyCapture | undefined,
  type: 'SENT' | 'RECEIVED',
  encoding: string | undefined,
  maxBodyBytes: number,
): void {
  // Sizes cover every message; only those wholly inside the captured bytes have a payload.
  const frames = capture === undefined ? undefined : readGrpcFrames(capture.bytes()).frames;
  for (let i = 0; i < sizes.messages.length; i++) {
    const packed = sizes.messages[i];
    const compressed = packed % 2 === 1;
    const length = (packed - (compressed ? 1 : 0)) / 2;
    const attributes: Attributes = { 'message.type': type, 'message.id': i + 1, 'message.compressed_size': length };
    let payload = frames?.[i]?.payload;
    if (compressed) {
      if (payload !== undefined && encoding !== undefined) {
        const inflated = inflateGrpcPayload(payload, encoding, maxBodyBytes);
        payload = inflated.ok ? inflated.data : undefined;
        if (inflated.ok) attributes['message.uncompressed_size'] = inflated.data.length;
      } else {
        payload = undefined;
      }
    } else {
      attributes['message.uncompressed_size'] = length;
    }
    if (payload !== undefined) attributes['message.body'] = decodeProtobufToJson(payload, maxBodyBytes);
    out.push({ name: 'message', timeMs: sizes.times[i], attributes });
  }
}

// splitAuthority's results, in module variables as splitTarget's are: build reads them at once.
let authorityAddress = '';
let authorityPort: number | undefined;

function splitAuthority(authority: string): void {
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    if (close > 0) {
      // The same port rules as a host name's below: `[::1]:` has no port, not port 0.
      const hasPort = authority.charCodeAt(close + 1) === 58 && close + 2 < authority.length;
      const port = hasPort ? portNumber(authority, close + 2) : undefined;
      authorityAddress = authority.slice(1, close);
      authorityPort = port !== undefined && Number.isInteger(port) ? port : undefined;
      return;
    }
  }
  const colon = authority.lastIndexOf(':');
  if (colon < 0) {
    authorityAddress = authority;
    authorityPort = undefined;
    return;
  }
  const port = portNumber(authority, colon + 1);
  authorityAddress = authority.slice(0, colon);
  authorityPort = Number.isInteger(port) && colon + 1 < authority.length ? port : undefined;
}

/**
 * `Number(s.slice(from))`, with plain digits (every real port) read in place: converting a fresh
 * string is a runtime call. Anything else (signs, spaces, hex, exponents) goes to Number itself.
 */
function portNumber(s: string, from: number): number {
  const n = s.length;
  if (n > from && n - from <= 5) {
    let v = 0;
    let i = from;
    for (; i < n; i++) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    if (i === n) return v;
  }
  return Number(s.slice(from));
}

/**
 * A span may wait in the export queue or a tap; a small body that is a view into a large socket
 * read (or the agent's capture batch) would pin the whole read there, so such a view is copied
 * out, unless the sink copies it anyway before submit returns (its copiesBytesBelow): the OTLP
 * exporter encodes there, and a copy made here first was the largest cost of an agent span.
 */
function detach(bytes: Uint8Array, sinkCopiesBelow: number): Uint8Array {
  return bytes.byteLength >= sinkCopiesBelow && bytes.byteLength * 2 < bytes.buffer.byteLength ? copyOut(bytes) : bytes;
}

/**
 * Copies go into a shared slab, as Node's Buffer pool does but with room for more bodies per
 * allocation: a slab is freed once every span holding a piece of it is gone, which the export
 * queue's first-in first-out order makes soon. Larger bodies get a buffer of their own.
 */
const SLAB_SIZE = 32 * 1024;
const SLAB_MAX_PIECE = SLAB_SIZE / 4;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabUsed = 0;

function copyOut(bytes: Uint8Array): Buffer {
  const n = bytes.byteLength;
  if (n > SLAB_MAX_PIECE) {
    const own = Buffer.allocUnsafeSlow(n);
    own.set(bytes);
    return own;
  }
  if (slabUsed + n > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  slab.set(bytes, slabUsed);
  // Buffer.from(arrayBuffer, ...) skips subarray's argument handling (measured ~1.5x faster).
  const piece = Buffer.from(slab.buffer, slabUsed, n);
  // 8-byte aligned, as Node's pool keeps its pieces.
  slabUsed += (n + 7) & ~7;
  return piece;
}

/** grpc-message is percent-encoded (gRPC HTTP/2 protocol spec). */
function percentDecode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
