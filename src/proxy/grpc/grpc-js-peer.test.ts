// Reads what real grpc-js peers send over h2 the way the proxy does at span end: the captured
// DATA bytes split into frames, inflated when compressed, then schemaless decoding.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { inflateGrpcPayload, readGrpcFrames } from './frame-reader.js';
import { decodeProtobuf } from './protobuf-decode.js';

const root = protobuf.parse(`
syntax = "proto3";
package t;
message Req { string text = 1; int32 count = 2; }
message Item { int32 index = 1; string text = 2; repeated int64 values = 3; Tag tag = 4; }
message Tag { string key = 1; bytes raw = 2; }
`).root.resolveAll();
const Req = root.lookupType('t.Req');
const Item = root.lookupType('t.Item');

function item(index: number, text: string) {
  return { index, text: `${text} #${index} ${'pad '.repeat(index * 50)}`, values: [-index, index * 1000], tag: { key: 'k', raw: Buffer.from([0, 255, index]) } };
}
// What the schemaless decoder should say about item(i): raw field numbers, packed int64s as bytes.
function expectedItem(index: number, text: string) {
  const packed = Buffer.from(protobuf.Writer.create().int64(-index).int64(index * 1000).finish());
  return {
    1: index,
    2: item(index, text).text,
    3: `bytes:${packed.toString('base64')}`,
    4: { 1: 'k', 2: `bytes:${Buffer.from([0, 255, index]).toString('base64')}` },
  };
}

let server: grpc.Server;
let port: number;

beforeAll(async () => {
  server = new grpc.Server();
  const list: grpc.MethodDefinition<protobuf.Message, protobuf.Message> = {
    path: '/t.Svc/List',
    requestStream: false,
    responseStream: true,
    requestSerialize: (m) => Buffer.from(Req.encode(m).finish()),
    requestDeserialize: (b) => Req.decode(b),
    responseSerialize: (m) => Buffer.from(Item.encode(m).finish()),
    responseDeserialize: (b) => Item.decode(b),
  };
  server.addService({ List: list }, {
    List: (call: grpc.ServerWritableStream<protobuf.Message, protobuf.Message>) => {
      const req = Req.toObject(call.request) as { text: string; count: number };
      for (let i = 0; i < req.count; i++) call.write(Item.fromObject(item(i, req.text)));
      call.end();
    },
  });
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
});

afterAll(() => {
  server?.forceShutdown();
});

/** One raw h2 call: returns response headers and the DATA chunks exactly as they arrived. */
async function call(body: Buffer, headers: http2.OutgoingHttpHeaders) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const req = session.request({
      ':method': 'POST',
      ':path': '/t.Svc/List',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'gzip',
      ...headers,
    });
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.end(body);
    await new Promise<void>((resolve, reject) => {
      req.on('end', resolve);
      req.on('error', reject);
    });
    return { head, trailers, chunks };
  } finally {
    session.close();
  }
}

function frameOf(payload: Buffer, compressed: boolean): Buffer {
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

describe('frames from a real grpc-js server', () => {
  it.each([
    ['plain request', false],
    ['gzip request', true],
  ])('decodes a server stream (%s)', async (_name, gzipRequest) => {
    const count = 6;
    const reqMsg = Buffer.from(Req.encode(Req.fromObject({ text: 'hello', count })).finish());
    const body = frameOf(gzipRequest ? zlib.gzipSync(reqMsg) : reqMsg, gzipRequest);
    const { trailers, chunks } = await call(body, gzipRequest ? { 'grpc-encoding': 'gzip' } : {});
    // The server understood the request framed and compressed as the reader reads it.
    expect(trailers['grpc-status']).toBe('0');
    const [reqFrame] = readGrpcFrames(body).frames;
    const reqPayload = reqFrame.compressed ? inflateGrpcPayload(reqFrame.payload, 'gzip') : { ok: true as const, data: reqFrame.payload };
    expect(reqPayload.ok && decodeProtobuf(reqPayload.data)).toEqual({ 1: 'hello', 2: count });

    const { frames, error, truncated } = readGrpcFrames(Buffer.concat(chunks));
    expect(error).toBeUndefined();
    expect(truncated).toBeUndefined();
    expect(frames).toHaveLength(count);
    frames.forEach((f, i) => expect(decodeProtobuf(f.payload)).toEqual(expectedItem(i, 'hello')));
  });

  it('reads a response cut by a capture limit as complete frames plus the truncated one', async () => {
    const reqMsg = Buffer.from(Req.encode(Req.fromObject({ text: 'cut', count: 4 })).finish());
    const { chunks } = await call(frameOf(reqMsg, false), { 'grpc-accept-encoding': 'identity' });
    const whole = Buffer.concat(chunks);
    const all = readGrpcFrames(whole).frames;
    const limit = all[2].offset + 5 + 40;
    const cut = readGrpcFrames(whole.subarray(0, limit));
    expect(cut.frames).toHaveLength(2);
    expect(cut.truncated).toMatchObject({ offset: all[2].offset, declaredLength: all[2].length });
    const partial = decodeProtobuf(cut.truncated!.payload);
    expect(partial).toMatchObject({ 1: 2, error: expect.stringMatching(/^invalid protobuf at byte 2: field 2 declares \d+ bytes, 35 remain$/) });
  });

  it.each(['gzip', 'deflate'] as const)('decodes a %s-compressed client stream from a grpc-js client', async (algorithm) => {
    const seen: { encoding?: string; chunks: Buffer[] } = { chunks: [] };
    const h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      seen.encoding = String(headers['grpc-encoding']);
      stream.on('data', (c: Buffer) => seen.chunks.push(c));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frameOf(Buffer.from(Req.encode(Req.fromObject({ text: 'done' })).finish()), false));
      });
    });
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const h2Port = (h2.address() as { port: number }).port;
    const client = new grpc.Client(`127.0.0.1:${h2Port}`, grpc.credentials.createInsecure(), {
      'grpc.default_compression_algorithm': grpc.compressionAlgorithms[algorithm],
    });
    try {
      const items = [0, 1, 2, 3].map((i) => item(i, algorithm));
      await new Promise<void>((resolve, reject) => {
        const upload = client.makeClientStreamRequest(
          '/t.Svc/Upload',
          (m: Record<string, unknown>) => Buffer.from(Item.encode(Item.fromObject(m)).finish()),
          (b: Buffer) => Req.decode(b),
          (err) => (err ? reject(err) : resolve()),
        );
        for (const m of items) upload.write(m);
        upload.end();
      });
      expect(seen.encoding).toBe(algorithm);
      const { frames } = readGrpcFrames(Buffer.concat(seen.chunks));
      expect(frames.map((f) => f.compressed)).toEqual([true, true, true, true]);
      frames.forEach((f, i) => {
        const inflated = inflateGrpcPayload(f.payload, seen.encoding!);
        expect(inflated.ok && decodeProtobuf(inflated.data)).toEqual(expectedItem(i, algorithm));
      });
    } finally {
      client.close();
      await new Promise((resolve) => h2.close(resolve));
    }
  });
});
