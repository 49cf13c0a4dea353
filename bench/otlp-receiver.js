// The bench's span sink: a bare grpc-js OTLP trace receiver that only counts spans, run as a
// child process (pinned beside the load generator) so its decoding never lands on the proxy's core.
// Protocol with the parent (IPC): it sends {port} once listening; on 'count' it answers {spans, requests}.
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';

const require = createRequire(import.meta.url);
const { ExportTraceServiceRequest } =
  require('otlp-proto/build/src/generated/root.js').opentelemetry.proto.collector.trace.v1;

let spans = 0;
let requests = 0;
let decodeErrors = 0;

const identity = (b) => b;
const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
server.addService(
  {
    Export: {
      path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  },
  {
    Export(call, callback) {
      requests++;
      try {
        const req = ExportTraceServiceRequest.decode(call.request);
        for (const rs of req.resourceSpans) for (const ss of rs.scopeSpans) spans += ss.spans.length;
      } catch {
        decodeErrors++;
      }
      // An empty ExportTraceServiceResponse encodes to zero bytes.
      callback(null, Buffer.alloc(0));
    },
  },
);

server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(`otlp-receiver: ${err.message}`);
    process.exit(1);
  }
  process.send({ port });
});

process.on('message', (msg) => {
  if (msg === 'count') process.send({ spans, requests, decodeErrors });
});
process.on('disconnect', () => server.tryShutdown(() => process.exit(0)));
