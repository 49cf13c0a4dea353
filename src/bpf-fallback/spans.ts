// Spans from captured exchanges, made exactly as the proxy makes them: each stitched record is
// replayed into the proxy's Exchange (policy, trace context, headers, bodies, redaction, gRPC
// messages) with the kernel's times and the scheme, through the exchange contract's fields for
// replayed exchanges. The process that read the request is the server (SERVER span, inbound); the
// one that wrote it, the client. Each span carries its process as its OTLP resource (service.name,
// process.*, container.*, k8s.*): the agent traces many services, not itself.

import type { ExchangeDeps, ExchangeFactory, ExchangeStart, TapHub } from '../proxy/exchange.js';
import { createReplayExchangeFactory, HeadMemo, REQUEST_BODY, RESPONSE_BODY, type BodyKeys } from '../proxy/exchange-impl.js';
import type { Attributes, SpanRecord, SpanResource, SpanSink } from '../telemetry/span.js';
import type { KernelClock } from './clock.js';
import type { ConnView } from './conn-table.js';
import { processResource, type PodLookup, type ProcessInfo } from './process-info.js';
import type { HttpRecord } from './protocols/protocol.js';

export interface SpanReplayerDeps extends ExchangeDeps {
  clock: KernelClock;
  /** Resource attributes every process's resource shares (sharedResource of the agent's own). */
  sharedResource?: Readonly<Attributes>;
  /** One object per pid, replaced when the pid execs or exits (ProcessInfoCache): resources are cached by it. */
  process: (pid: number, comm: string) => ProcessInfo;
  pods?: PodLookup;
}

/** A connection's resource and span attributes, rebuilt when what they were made from changes. */
interface IdentityEntry {
  info: ProcessInfo;
  pod: unknown;
  source: ConnView['source'];
  resource: SpanResource;
  attributes: Attributes;
  /** What its exchanges derived from its last request and response heads (ExchangeStart.heads). */
  heads: HeadMemo;
  /**
   * The last record's heads found small enough to memoise (never a larger one, which they would
   * keep alive): a repeated head is the same target string and header arrays, so three pointer
   * compares say it fits again, without counting its chars.
   */
  memoTarget: string;
  memoRequest: HttpRecord['requestHeaders'] | undefined;
  memoResponse: HttpRecord['responseHeaders'] | undefined;
}

/**
 * A HeadMemo keeps strings of its connection's last heads (header values, the target, the Host),
 * and V8 keeps a slice's whole head text alive, up to 64 KiB a head, for as long as the connection
 * lives and outside the table's byte bound. It pays only for a head the parser hands again, and
 * HTTP/1 repeats only heads of at most 512 chars (parse.ts MAX_CACHED_HEAD): larger ones are
 * replayed without it, so no connection holds more than about this much head text.
 */
const MEMO_HEAD_CHARS = 1024;

/** The chars of a record's target and header strings: about its heads' text, a bit less. */
function headChars(rec: HttpRecord): number {
  let n = rec.target.length;
  const req = rec.requestHeaders;
  for (let i = 0; i < req.length; i++) n += req[i].length;
  const res = rec.responseHeaders;
  for (let i = 0; i < res.length; i++) n += res[i].length;
  return n;
}

export class SpanReplayer {
  private readonly exchanges: ExchangeFactory;
  /** Per connection: the exchange only reads `attributes`, so one object serves all its records. */
  private readonly identities = new WeakMap<ConnView, IdentityEntry>();
  /**
   * Per process: one resource object for all its connections' spans, so the exporter encodes it
   * once. Replaced when the process's info (exec) or its pod's metadata changes.
   */
  private readonly resources = new WeakMap<ProcessInfo, { pod: unknown; resource: SpanResource }>();
  /** The record being replayed: replay is synchronous, so a span built now is this record's. */
  private current: HttpRecord | undefined;
  /**
   * The start of every replayed exchange, filled in per record rather than allocated: an exchange
   * reads it only until it ends, within replay, and nothing keeps one past that.
   */
  private readonly start: ExchangeStart = {
    direction: 'inbound',
    protocolVersion: '1.1',
    method: '',
    target: '',
    headers: [],
    authority: undefined,
    client: { address: '', port: 0 },
    server: { address: '', port: 0 },
    startMs: 0,
    scheme: 'http',
    attributes: undefined,
    resource: undefined,
    heads: undefined,
  };

  constructor(private readonly deps: SpanReplayerDeps) {
    // The exchange sees only the body bytes the kernel copied; the record knows the full sizes,
    // its stream id and whether it is partial, put on the span where it leaves the exchange
    // (sink and tap). copiesBytesBelow is read once (it is readonly): forwarded through a getter
    // (and the export queue's own), it was read through two accessor calls per span.
    const sink: SpanSink = {
      submit: (span) => deps.sink.submit(this.sizes(span)),
      copiesBytesBelow: deps.sink.copiesBytesBelow,
    };
    const tap = deps.tap;
    const wrappedTap: TapHub | undefined =
      tap === undefined
        ? undefined
        : {
            get active() {
              return tap.active;
            },
            publish: (span) => tap.publish(this.sizes(span)),
          };
    this.exchanges = createReplayExchangeFactory({ ...deps, sink, tap: wrappedTap });
  }

  replay(conn: ConnView, rec: HttpRecord): void {
    const { clock } = this.deps;
    const server = conn.requestDir === 'ingress';
    const identity = this.identity(conn);
    this.current = rec;
    const start = this.start;
    start.direction = server ? 'inbound' : 'outbound';
    start.protocolVersion = rec.protocolVersion;
    start.method = rec.method;
    start.target = rec.target;
    start.headers = rec.requestHeaders;
    start.authority = rec.authority;
    start.client = server ? conn.remote : conn.local;
    start.server = server ? conn.local : conn.remote;
    start.startMs = clock.toEpochMs(rec.startNs);
    start.scheme = conn.source === 'tls' ? 'https' : 'http';
    start.attributes = identity.attributes;
    start.resource = identity.resource;
    if (identity.memoTarget === rec.target && identity.memoRequest === rec.requestHeaders && identity.memoResponse === rec.responseHeaders) {
      start.heads = identity.heads;
    } else if (headChars(rec) <= MEMO_HEAD_CHARS) {
      identity.memoTarget = rec.target;
      identity.memoRequest = rec.requestHeaders;
      identity.memoResponse = rec.responseHeaders;
      start.heads = identity.heads;
    } else {
      start.heads = undefined;
    }
    try {
      const ex = this.exchanges.start(start);
      for (const c of rec.requestBody) ex.requestBody(c.data, clock.toEpochMs(c.tsNs));
      ex.requestEnd(rec.requestTrailers);
      const endMs = clock.toEpochMs(rec.endNs);
      if (isTunnel(rec)) {
        // Upgrades and CONNECT end at the handshake, as in the proxy; what follows is opaque.
        ex.tunnelEstablished(rec.status, rec.responseHeaders, endMs);
        return;
      }
      if (rec.status > 0) ex.responseHead(rec.status, rec.responseHeaders);
      for (const c of rec.responseBody) ex.responseBody(c.data, clock.toEpochMs(c.tsNs));
      if (rec.error !== undefined) ex.fail(rec.error, undefined, endMs);
      else ex.responseEnd(rec.responseTrailers, endMs);
    } finally {
      this.current = undefined;
    }
  }

  private identity(conn: ConnView): IdentityEntry {
    const info = this.deps.process(conn.pid, conn.comm);
    const podUid = info.cgroup?.podUid;
    // Pod names can arrive after a connection's first span (the pod list is fetched async).
    const pod = podUid === undefined ? undefined : this.deps.pods?.(podUid);
    const cached = this.identities.get(conn);
    if (cached !== undefined && cached.info === info && cached.pod === pod && cached.source === conn.source) return cached;
    let res = this.resources.get(info);
    if (res === undefined || res.pod !== pod) {
      res = { pod, resource: { attributes: processResource(conn.pid, conn.comm, info, this.deps.pods, this.deps.sharedResource) } };
      this.resources.set(info, res);
    }
    const attributes: Attributes = { 'sidetrace.capture.source': conn.source === 'tls' ? 'ebpf-tls' : 'ebpf' };
    if (conn.local.address !== '') {
      attributes['network.local.address'] = conn.local.address;
      attributes['network.local.port'] = conn.local.port;
    }
    const entry: IdentityEntry = {
      info,
      pod,
      source: conn.source,
      resource: res.resource,
      attributes,
      heads: new HeadMemo(),
      memoTarget: '',
      memoRequest: undefined,
      memoResponse: undefined,
    };
    this.identities.set(conn, entry);
    return entry;
  }

  private sizes(span: SpanRecord): SpanRecord {
    const rec = this.current;
    if (rec !== undefined) {
      bodySize(span.attributes, REQUEST_BODY, rec.requestBodySize);
      bodySize(span.attributes, RESPONSE_BODY, rec.responseBodySize);
      // Per record, so set on the finished span rather than on a copy of the connection's
      // identity made for every HTTP/2 record.
      if (rec.partial) span.attributes['sidetrace.capture.partial'] = true;
      if (rec.streamId !== undefined) span.attributes['sidetrace.http2.stream_id'] = rec.streamId;
    }
    return span;
  }
}

function isTunnel(rec: HttpRecord): boolean {
  return rec.status === 101 || (rec.method === 'CONNECT' && rec.status >= 200 && rec.status < 300);
}

/** Full body size, and `truncated` when content was recorded but bytes were not captured. */
function bodySize(attrs: Attributes, keys: BodyKeys, size: number): void {
  if (size === 0) return;
  const seen = attrs[keys.size];
  if (typeof seen === 'number' && seen >= size) return;
  attrs[keys.size] = size;
  if (attrs[keys.content] !== undefined) attrs[keys.truncated] = true;
}
