// The benches' span sink: an OTLP/gRPC trace receiver that counts spans by walking the
// protobuf's length-delimited fields (ExportTraceServiceRequest.resource_spans=1 →
// ResourceSpans.scope_spans=2 → ScopeSpans.spans=2) without decoding them. It runs as a child
// process pinned beside the load generator; a full decode there could not keep up with 20k
// spans/s and would make the process under test drop spans for the receiver's sake.
// Protocol with the parent (IPC): it sends {port} once listening; on 'count' it answers {spans, requests, decodeErrors}.
import * as grpc from '@grpc/grpc-js';

let spans = 0;
let requests = 0;
let decodeErrors = 0;

function varint(buf, at) {
  let value = 0;
  let mul = 1;
  for (;;) {
    if (at.i >= buf.length) throw new Error('truncated varint');
    const b = buf[at.i++];
    value += (b & 0x7f) * mul;
    if (b < 0x80) return value;
    mul *= 128;
  }
}

/** Calls `fn(start, end)` for each length-delimited field `field` in buf[start, end). */
function each(buf, start, end, field, fn) {
  const at = { i: start };
  while (at.i < end) {
    const key = varint(buf, at);
    const wire = key & 7;
    if (wire === 0) varint(buf, at);
    else if (wire === 1) at.i += 8;
    else if (wire === 5) at.i += 4;
    else if (wire === 2) {
      const len = varint(buf, at);
      if (key >>> 3 === field) fn(at.i, at.i + len);
      at.i += len;
    } else throw new Error(`wire type ${wire}`);
  }
  if (at.i !== end) throw new Error('field overruns its message');
}

function countSpans(buf) {
  let n = 0;
  each(buf, 0, buf.length, 1, (rs, rsEnd) => each(buf, rs, rsEnd, 2, (ss, ssEnd) => each(buf, ss, ssEnd, 2, () => n++)));
  return n;
}

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
        spans += countSpans(call.request);
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
