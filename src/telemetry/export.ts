// Span export, wired from three parts (opentelemetry-js's shape): a serializer (our SpanRecord →
// OTLP protobuf writer), a transport (the official OTLP/gRPC export delegate, or JSON lines for
// --console), and the bounded BatchQueue wrapped around them. The OTLP transport encodes each span
// as it is queued, and a batch is those bytes behind one header.

import type { Writable } from 'node:stream';
import grpc from '@grpc/grpc-js';
import { ExportResultCode } from '@opentelemetry/core';
import type { IOtlpExportDelegate } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate, type OTLPGRPCExporterConfigNode } from '@opentelemetry/otlp-grpc-exporter-base';
import { BatchQueue, estimateSpanBytes, type BatchTransport, type ExportCounters } from './batch-queue.js';
import type { ExportConfig } from './otel-env.js';
import { encodedLength, OtlpTraceSerializer, type EncodedSpan, type EncodedSpansSerializer } from './otlp-serializer.js';
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
};

const FAILURE_LOG_INTERVAL_MS = 30_000;

// What OTLPTraceExporter passes to createOtlpGrpcExportDelegate (exporter-trace-otlp-grpc 0.223),
// so the transport, its self-observability metrics and the wire call are the official ones.
const COMPONENT_TYPE = 'otlp_grpc_span_exporter';
const SPAN_METRICS_HELPER = { name: 'span' as const, countItems: (spans: EncodedSpan[]) => spans.length };
const GRPC_NAME = 'TraceExportService';
const GRPC_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

class OtlpGrpcTransport implements BatchTransport<EncodedSpan> {
  private readonly serializer: OtlpTraceSerializer;
  private readonly exporter: IOtlpExportDelegate<EncodedSpan[]>;
  private lastFailureLog = -Infinity;

  constructor(
    private readonly config: ExportConfig,
    resource: Record<string, string>,
    private readonly log?: (line: string) => void,
  ) {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(config.headers)) metadata.set(k, v);
    const options: OTLPGRPCExporterConfigNode = {
      url: config.endpoint,
      metadata,
      // No credentials: the endpoint's scheme (http/https, normalized by otel-env) decides TLS,
      // and the exporter then honours OTEL_EXPORTER_OTLP_CERTIFICATE / CLIENT_KEY / CLIENT_CERTIFICATE.
      compression: config.compression as OTLPGRPCExporterConfigNode['compression'],
      // The queue's watchdog is only a backstop: the gRPC deadline should end a call first.
      timeoutMillis: Math.min(config.timeoutMs, config.batch.exportTimeoutMs),
      // One spare slot so a call outliving the queue's watchdog does not make the next one fail.
      concurrencyLimit: config.batch.maxConcurrentExports + 1,
    };
    this.serializer = new OtlpTraceSerializer(resource, { name: 'sidetrace', version: VERSION });
    const encoded: EncodedSpansSerializer = this.serializer.encodedSpans;
    this.exporter = createOtlpGrpcExportDelegate(
      convertLegacyOtlpGrpcOptions(options, 'TRACES'),
      encoded,
      COMPONENT_TYPE,
      SPAN_METRICS_HELPER,
      undefined, // the global meter provider, as OTLPTraceExporter without selfObsMeterProvider
      GRPC_NAME,
      GRPC_PATH,
    );
  }

  prepare(span: SpanRecord): EncodedSpan {
    return this.serializer.encodeSpan(span);
  }

  size(encoded: EncodedSpan): number {
    return encodedLength(encoded);
  }

  send(batch: EncodedSpan[]): Promise<boolean> {
    return new Promise((resolve) => {
      let request: Buffer | undefined;
      this.exporter.export(batch, (result) => {
        // The delegate reads the request until its last retry, and reports after that.
        if (request !== undefined) this.serializer.releaseRequest(request);
        const ok = result.code === ExportResultCode.SUCCESS;
        if (!ok) this.reportFailure(result.error);
        resolve(ok);
      });
      // export() serializes synchronously (or refuses the batch): the spans are not read again.
      request = this.serializer.takeLastRequest();
      this.serializer.releaseEncoded(batch);
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

  shutdown(): Promise<void> {
    return this.exporter.shutdown();
  }
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

  send(batch: SpanRecord[]): Promise<boolean> {
    if (this.out.writableLength > CONSOLE_MAX_BUFFERED) return Promise.resolve(false);
    let text = '';
    for (const span of batch) text += spanToJson(span) + '\n';
    this.out.write(text);
    return Promise.resolve(true);
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
