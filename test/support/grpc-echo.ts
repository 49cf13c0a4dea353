// A real grpc-js server and client for test/fixtures/grpc-echo.proto, used to run the same calls
// through the proxy and directly. The server echoes request metadata back (x-* as initial
// metadata) and always sends trailing metadata, including a -bin entry.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/grpc-echo.proto');
/** Room for the 4 MiB message tests plus framing. */
const MAX_MESSAGE = 16 * 1024 * 1024;

export interface EchoRequest {
  text?: string;
  payload?: Buffer;
  count?: number;
  failCode?: number;
  delayMs?: number;
  hang?: boolean;
}

export interface EchoReply {
  text: string;
  payload: Buffer;
  index: number;
}

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client;

function loadEcho(): { Echo: Ctor & { service: grpc.ServiceDefinition } } {
  const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { sidetrace: { test: { Echo: Ctor & { service: grpc.ServiceDefinition } } } };
  return { Echo: pkg.sidetrace.test.Echo };
}

export interface GrpcEchoServer {
  port: number;
  /** Method names of calls the server saw cancelled. */
  cancelled: string[];
  /** Calls the server received. */
  calls: number;
  /** Request metadata of the latest call. */
  lastMetadata?: grpc.Metadata;
  close(): Promise<void>;
}

export async function startGrpcEcho(): Promise<GrpcEchoServer> {
  const { Echo } = loadEcho();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE, 'grpc.max_send_message_length': MAX_MESSAGE });
  const state: GrpcEchoServer = { port: 0, cancelled: [], calls: 0, close: async () => {} };

  const trailing = (md: grpc.Metadata): grpc.Metadata => {
    const t = new grpc.Metadata();
    t.set('x-trailer', 'bye');
    t.set('x-trailer-bin', Buffer.from([0, 1, 2, 255]));
    const req = md.get('x-request-bin');
    if (req.length > 0) t.set('x-echo-bin', req[0] as Buffer);
    return t;
  };
  const initial = (md: grpc.Metadata): grpc.Metadata => {
    const out = new grpc.Metadata();
    for (const [k, v] of Object.entries(md.getMap())) if (k.startsWith('x-')) out.set(`echo-${k}`, v as string | Buffer);
    return out;
  };
  const watch = (name: string, call: { metadata: grpc.Metadata; on(ev: 'cancelled', f: () => void): unknown }): void => {
    state.lastMetadata = call.metadata;
    call.on('cancelled', () => state.cancelled.push(name));
  };
  const failure = (req: EchoRequest, md: grpc.Metadata): Partial<grpc.StatusObject> => ({
    code: req.failCode as grpc.status,
    details: req.text ?? '',
    metadata: trailing(md),
  });
  const later = (req: EchoRequest, f: () => void): void => {
    if (req.hang) return;
    if (req.delayMs) setTimeout(f, req.delayMs);
    else f();
  };

  server.addService(Echo.service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      state.calls++;
      watch('Unary', call);
      const req = call.request;
      call.sendMetadata(initial(call.metadata));
      later(req, () => {
        if (req.failCode) cb(failure(req, call.metadata));
        else cb(null, { text: req.text ?? '', payload: req.payload ?? Buffer.alloc(0), index: 0 }, trailing(call.metadata));
      });
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      state.calls++;
      watch('ClientStream', call);
      const texts: string[] = [];
      let bytes = 0;
      let failWith: EchoRequest | undefined;
      call.on('data', (req: EchoRequest) => {
        texts.push(req.text ?? '');
        bytes += req.payload?.length ?? 0;
        if (req.failCode) failWith = req;
        if (req.hang) failWith = req;
      });
      call.on('end', () => {
        if (failWith?.hang) return;
        if (failWith) return cb(failure(failWith, call.metadata));
        cb(null, { text: texts.join('|'), payload: Buffer.alloc(0), index: bytes }, trailing(call.metadata));
      });
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      state.calls++;
      watch('ServerStream', call);
      const req = call.request;
      call.sendMetadata(initial(call.metadata));
      let i = 0;
      const next = (): void => {
        if (call.cancelled) return;
        if (i < (req.count ?? 0)) {
          call.write({ text: `${req.text ?? ''} ${i}`, payload: req.payload ?? Buffer.alloc(0), index: i });
          i++;
          later(req, next);
          return;
        }
        if (req.hang) return;
        if (req.failCode) call.emit('error', failure(req, call.metadata));
        else call.end(trailing(call.metadata));
      };
      later(req, next);
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      state.calls++;
      watch('Bidi', call);
      call.sendMetadata(initial(call.metadata));
      let i = 0;
      call.on('data', (req: EchoRequest) => {
        if (req.failCode) {
          call.emit('error', failure(req, call.metadata));
          return;
        }
        if (!req.hang) call.write({ text: `echo ${req.text ?? ''}`, payload: req.payload ?? Buffer.alloc(0), index: i++ });
      });
      call.on('end', () => {
        if (!call.cancelled) call.end(trailing(call.metadata));
      });
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  state.close = () =>
    new Promise<void>((resolve) => {
      server.forceShutdown();
      resolve();
    });
  return state;
}

/** An Echo client; `grpc.use_local_subchannel_pool` keeps each client on its own connection. */
export function echoClient(port: number): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  const { Echo } = loadEcho();
  return new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE,
    'grpc.max_send_message_length': MAX_MESSAGE,
    'grpc.use_local_subchannel_pool': 1,
  }) as grpc.Client & Record<string, (...args: unknown[]) => unknown>;
}
