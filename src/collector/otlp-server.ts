// The OTLP/gRPC receiver: TraceService/Export over grpc-js. Requests arrive as raw bytes
// (identity (de)serializers) so a bad payload becomes a clear INVALID_ARGUMENT answer
// instead of an opaque failure inside the gRPC library, and the server keeps serving.

import * as grpc from '@grpc/grpc-js';
import { decodeExportRequest, encodeExportResponse, OtlpDecodeError } from './otlp-decode.js';
import type { StoredSpan } from './model.js';
import { rawUnaryMethod } from './raw-grpc.js';

export const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
/** Default cap on one Export request, after decompression. */
export const DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024;

export interface OtlpReceiverOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  maxBatchBytes?: number;
  onSpans(spans: StoredSpan[]): void;
}

export interface OtlpReceiver {
  /** host:port actually bound. */
  address: string;
  port: number;
  /** Export calls answered with an error (malformed or oversized). */
  readonly rejectedRequests: number;
  close(): Promise<void>;
}


export async function startOtlpReceiver(opts: OtlpReceiverOptions): Promise<OtlpReceiver> {
  const maxBatchBytes = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  // grpc-js enforces the size limit itself, answering RESOURCE_EXHAUSTED with
  // "Received message larger than max (N vs. M)" before any bytes reach the handler.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxBatchBytes });
  let rejected = 0;
  const service: grpc.ServiceDefinition = { Export: rawUnaryMethod(EXPORT_PATH) };
  const exportHandler: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    try {
      const batch = decodeExportRequest(call.request);
      if (batch.spans.length) opts.onSpans(batch.spans);
      callback(null, encodeExportResponse(batch.rejected, batch.rejectReason));
    } catch (err) {
      rejected++;
      const code = err instanceof OtlpDecodeError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL;
      const prefix = err instanceof OtlpDecodeError ? err.code : 'ST_COLLECTOR_INTERNAL';
      callback({ code, details: `${prefix}: ${(err as Error).message}` });
    }
  };
  server.addService(service, { Export: exportHandler as grpc.UntypedHandleCall });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(opts.address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  const host = opts.address.slice(0, opts.address.lastIndexOf(':'));
  return {
    address: `${host}:${port}`,
    port,
    get rejectedRequests() {
      return rejected;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Exporters may hold connections open; don't let shutdown wait on them.
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}
