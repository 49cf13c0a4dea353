// A grpc-js unary method that hands message bytes through untouched: the collector decodes OTLP
// itself (with its own errors), and tests use it for schemaless gRPC peers.
import type * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;

export function rawUnaryMethod(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}
