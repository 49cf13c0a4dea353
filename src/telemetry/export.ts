// Span export, wired from three parts (opentelemetry-js's shape): a serializer (our SpanRecord →
// OTLP protobuf writer), a transport (OTLP/gRPC over node:http2 under the official export
// delegate, or JSON lines for --console), and the bounded BatchQueue wrapped around them. The OTLP
// transport encodes each span as it is queued (the queue holds a number naming its bytes, see
// EncodedSpan), and a batch is those bytes behind one header.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { ExportResultCode } from '@opentelemetry/core';
import { createOtlpNetworkExportDelegate, type IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { createOtlpGrpcExporterMetrics } from '@opentelemetry/otlp-grpc-exporter-base';
import type { ISerializer, IExportTraceServiceResponse } from '@opentelemetry/otlp-transformer';
import { BatchQueue, estimateSpanBytes, type BatchTransport, type ExportCounters } from './batch-queue.js';
import { GRPC_PREFIX_BYTES, GrpcH2Transport, type GrpcTls } from './grpc-h2-transport.js';
import type { ExportConfig } from './otel-env.js';
import { OtlpTraceSerializer, REFERENCE_MIN_BYTES, type EncodedSpan } from './otlp-serializer.js';
import { RetryingTransport } from './retrying-transport.js';
import { spanToJson } from './span-json.js';
import type { SpanRecord, SpanSink } from './span.js';
import { VERSION } from './version.js';
import type { ProxyMetrics } from '../proxy/proxy-metrics.js';

export type { ExportCounters } from './batch-queue.js';

export interface SpanExporterOptions {
  config: ExportConfig;
  /** Resource attributes (see detectResource). */
  resource: Record<string, string>;
  counters: ExportCounters;
  /** Where the console exporter writes; stdout by default. */
  out?: Writable;
  /** Export failures, at most one line per 30 s (the counters have the totals). */
  log?: (line: string) => void;
}

export interface SpanExporter extends SpanSink {
  /** Sends everything queued and waits for in-flight exports to finish. */
  flush(): Promise<void>;
  /** Drops later submits (counted), flushes for at most timeoutMs (default: the export timeout), closes the connection. */
  shutdown(timeoutMs?: number): Promise<void>;
  /** Spans waiting in the queue. */
  readonly queued: number;
  /** Their size (encoded bytes for OTLP, estimated for the console); bounded by batch.maxQueueBytes. */
  readonly queuedBytes: number;
  /** A span submitted now would be dropped (queue full, or shut down). */
  readonly full: boolean;
}

/** The proxy's counters. Not spansSubmitted: the exchange counts what it hands to the sink. */
export function exportCounters(metrics: ProxyMetrics): ExportCounters {
  return { exported: metrics.spansExported, dropped: metrics.spansDropped };
}

export function createSpanExporter(opts: SpanExporterOptions): SpanExporter {
  const { config } = opts;
  if (config.exporter === 'none') return NONE;
  if (config.exporter === 'console') return new BatchQueue(new ConsoleTransport(opts.out ?? process.stdout), config.batch, opts.counters);
  return new BatchQueue(new OtlpGrpcTransport(config, opts.resource, opts.log), config.batch, opts.counters);
}

const NONE: SpanExporter = {
  submit() {},
  flush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
  queued: 0,
  queuedBytes: 0,
  full: false,
};

const FAILURE_LOG_INTERVAL_MS = 30_000;

// What OTLPTraceExporter gives the official delegate (exporter-trace-otlp-grpc 0.223), so its
// self-observability metrics are the official ones.
const COMPONENT_TYPE = 'otlp_grpc_span_exporter';
const SPAN_METRICS_HELPER = { name: 'span' as const, countItems: (spans: EncodedSpan[]) => spans.length };
const GRPC_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

// The official exporter's user agent names the OTLP exporter packages' version; ours comes first.
const require = createRequire(import.meta.url);
const OTLP_EXPORTER_VERSION = (
  JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve('@opentelemetry/otlp-exporter-base')), '../../package.json'), 'utf8')) as { version: string }
).version;
const USER_AGENT = `sidetrace/${VERSION} OTel-OTLP-Exporter-JavaScript/${OTLP_EXPORTER_VERSION}`;

class OtlpGrpcTransport implements BatchTransport<EncodedSpan> {
  private readonly serializer: OtlpTraceSerializer;
  private readonly wire: RetryingTransport;
  private readonly exporter: IOtlpExportDelegate<EncodedSpan[]>;
  private lastFailureLog = -Infinity;
  /** Spans the last reply rejected (OTLP partial success); read right after the delegate parses it. */
  private rejected = 0;

  constructor(
    private readonly config: ExportConfig,
    resource: Record<string, string>,
    private readonly log?: (line: string) => void,
  ) {
    this.serializer = new OtlpTraceSerializer(resource, { name: 'sidetrace', version: VERSION });
    // Requests come out with the gRPC message prefix free in front (see GrpcH2Transport).
    const serializer: ISerializer<EncodedSpan[], IExportTraceServiceResponse> = {
      serializeRequest: (spans) => this.serializer.serializeEncoded(spans, GRPC_PREFIX_BYTES),
      deserializeResponse: (data) => {
        const response = this.serializer.deserializeResponse(data);
        this.rejected = Number(response.partialSuccess?.rejectedSpans ?? 0);
        return response;
      },
    };
    this.wire = new RetryingTransport(
      new GrpcH2Transport({
        endpoint: config.endpoint,
        path: GRPC_PATH,
        metadata: config.headers,
        compression: config.compression,
        tls: config.insecure ? {} : tlsFromEnv(process.env, log),
        userAgent: USER_AGENT,
      }),
    );
    this.exporter = createOtlpNetworkExportDelegate(
      {
        // The queue's watchdog is only a backstop: the gRPC deadline should end a call first.
        timeoutMillis: Math.min(config.timeoutMs, config.batch.exportTimeoutMs),
        // One spare slot so a call outliving the queue's watchdog does not make the next one fail.
        concurrencyLimit: config.batch.maxConcurrentExports + 1,
        compression: config.compression,
      },
      serializer,
      // the global meter provider, as OTLPTraceExporter without selfObsMeterProvider
      createOtlpGrpcExporterMetrics(COMPONENT_TYPE, SPAN_METRICS_HELPER, config.endpoint, undefined),
      this.wire,
    );
  }

  /** encodeSpan copies smaller bytes values into the encoded span and references larger ones. */
  readonly copiesBytesBelow = REFERENCE_MIN_BYTES;

  prepare(span: SpanRecord): EncodedSpan {
    return this.serializer.encodeSpan(span);
  }

  size(encoded: EncodedSpan): number {
    return this.serializer.encodedLength(encoded);
  }

  discard(encoded: EncodedSpan): void {
    this.serializer.release(encoded);
  }

  send(batch: EncodedSpan[]): Promise<number> {
    return new Promise((resolve) => {
      let request: Buffer | undefined;
      try {
        this.exporter.export(batch, (result) => {
          // The delegate reads the request until its last retry, and reports after that.
          if (request !== undefined) this.serializer.releaseRequest(request);
          if (result.code !== ExportResultCode.SUCCESS) {
            this.reportFailure(result.error);
            return resolve(0);
          }
          // The delegate parsed the reply (deserializeResponse) just before this callback, in the same turn.
          const rejected = Math.min(this.rejected, batch.length);
          this.rejected = 0;
          if (rejected > 0) this.reportFailure(new Error(`the backend rejected ${rejected} of ${batch.length} spans (partial success)`));
          resolve(batch.length - rejected);
        });
        request = this.serializer.takeLastRequest();
      } finally {
        // export() serializes synchronously (or refuses the batch): the spans are not read again.
        this.serializer.releaseEncoded(batch);
      }
    });
  }

  private reportFailure(err: Error | undefined): void {
    if (!this.log) return;
    const now = Date.now();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS) return;
    this.lastFailureLog = now;
    this.log(
      `sidetrace: span export to ${this.config.endpoint} failed: ${err?.message ?? 'unknown error'} ` +
        `(spans lost are counted in sidetrace_spans_dropped_total; next report in ${FAILURE_LOG_INTERVAL_MS / 1000} s at most)`,
    );
  }

  closing(): void {
    this.wire.stopRetrying();
  }

  shutdown(): Promise<void> {
    return this.exporter.shutdown();
  }
}

/**
 * TLS material named by OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE, _CLIENT_KEY and
 * _CLIENT_CERTIFICATE, read from process.env as the official exporter reads them: the traces
 * variable wins, paths are relative to the working directory, an unreadable file is reported and
 * left out, and a client key without its certificate (or the reverse) leaves only the CA.
 */
function tlsFromEnv(env: NodeJS.ProcessEnv, log?: (line: string) => void): GrpcTls {
  const read = (suffix: string): Buffer | undefined => {
    for (const name of [`OTEL_EXPORTER_OTLP_TRACES_${suffix}`, `OTEL_EXPORTER_OTLP_${suffix}`]) {
      const file = env[name]?.trim();
      if (!file) continue;
      try {
        return fs.readFileSync(path.resolve(file));
      } catch (err) {
        log?.(`sidetrace: cannot read ${name} (${file}): ${(err as Error).message}; exporting without it`);
        return undefined;
      }
    }
    return undefined;
  };
  const ca = read('CERTIFICATE');
  const key = read('CLIENT_KEY');
  const cert = read('CLIENT_CERTIFICATE');
  const tls: GrpcTls = {};
  if (ca !== undefined) tls.ca = ca;
  if (key !== undefined && cert !== undefined) Object.assign(tls, { key, cert });
  else if (key !== undefined || cert !== undefined) log?.('sidetrace: a client key and certificate must both be set for mutual TLS; using neither');
  return tls;
}

// Past this much unwritten output (a stalled terminal or pipe), batches are dropped, not buffered.
const CONSOLE_MAX_BUFFERED = 8 * 1024 * 1024;

class ConsoleTransport implements BatchTransport<SpanRecord> {
  constructor(private readonly out: Writable) {}

  prepare(span: SpanRecord): SpanRecord {
    return span;
  }

  size(span: SpanRecord): number {
    return estimateSpanBytes(span);
  }

  send(batch: SpanRecord[]): Promise<number> {
    if (this.out.writableLength > CONSOLE_MAX_BUFFERED) return Promise.resolve(0);
    let text = '';
    for (const span of batch) text += spanToJson(span) + '\n';
    this.out.write(text);
    return Promise.resolve(batch.length);
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
