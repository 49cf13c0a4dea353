import http2 from 'node:http2';
import fc from 'fast-check';
import type { AddressInfo } from 'node:net';
import grpc from '@grpc/grpc-js';
import { beforeAll, describe, expect, test } from 'vitest';
import type { AgentEvent, DataEvent } from '../../events.js';
import { recordTraffic } from '../../test-support/record.js';
import { runBatches, summary } from '../../test-support/run.js';
import { connEvents, type Write } from '../../test-support/synthetic.js';
import { createH2State, detectH2, findH2Boundary, parseH2Frame, PREFACE } from './parse.js';
import { rawUnaryMethod } from '../../../collector/raw-grpc.js';

// Real peers: node:http2 client and server, recorded through a loopback relay.
let h2Writes: Write[];
let grpcWrites: Write[];

beforeAll(async () => {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const path = headers[':path'];
      if (path === '/reset') {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      stream.respond({ ':status': path === '/missing' ? 404 : 200, 'content-type': 'text/plain', 'x-seen': String(Buffer.concat(chunks).length) }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc' }));
      stream.end(`you asked for ${path} with ${Buffer.concat(chunks).toString()}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const rec = await recordTraffic((server.address() as AddressInfo).port);
  const client = http2.connect(`http://127.0.0.1:${rec.port}`);
  const request = (path: string, method: string, body?: string) =>
    new Promise<void>((resolve) => {
      const req = client.request({ ':path': path, ':method': method, 'x-custom': 'v1' });
      req.on('data', () => {});
      req.on('close', () => resolve());
      req.on('error', () => resolve());
      req.end(body);
    });
  await request('/first?a=1', 'GET');
  await request('/second', 'POST', 'payload-2');
  await request('/missing', 'GET');
  await request('/reset', 'PUT', 'x');
  client.close();
  await rec.settled();
  h2Writes = rec.connections[0];
  await rec.close();
  await new Promise<void>((r) => server.close(() => r()));

  // grpc-js with a schemaless (raw bytes) unary method.
  const def = { echo: rawUnaryMethod('/demo.Echo/Say') };
  const gserver = new grpc.Server();
  gserver.addService(def, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([Buffer.from([0x0a, 0x02]), Buffer.from('ok')])),
  });
  const gport = await new Promise<number>((resolve, reject) =>
    gserver.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  const grec = await recordTraffic(gport);
  const Client = grpc.makeGenericClientConstructor(def, 'Echo');
  const gclient = new Client(`127.0.0.1:${grec.port}`, grpc.credentials.createInsecure()) as unknown as {
    echo(req: Buffer, cb: (err: Error | null, res?: Buffer) => void): void;
    close(): void;
  };
  await new Promise<void>((resolve, reject) => gclient.echo(Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63]), (err) => (err ? reject(err) : resolve())));
  gclient.close();
  await grec.settled();
  grpcWrites = grec.connections[0];
  await grec.close();
  gserver.forceShutdown();
}, 20_000);


function events(writes: Write[], connId = 1): AgentEvent[] {
  return connEvents({ connId, role: 'client' }, writes);
}

describe('HTTP/2 from real node:http2 peers', () => {
  test('streams become records with headers, bodies, trailers and resets', () => {
    const got = runBatches([events(h2Writes)]).records.map((r) => summary(r.record));
    expect(got.map((r) => [r.method, r.target, r.status, r.error])).toEqual([
      ['GET', '/first?a=1', 200, undefined],
      ['POST', '/second', 200, undefined],
      ['GET', '/missing', 404, undefined],
      ['PUT', '/reset', 0, 'RST_STREAM:CANCEL'],
    ]);
    expect(got[1]).toMatchObject({ requestBody: 'payload-2', responseBody: 'you asked for /second with payload-2', responseTrailers: ['x-checksum', 'abc'] });
    expect(got[0].requestHeaders).toContain('x-custom');
    expect(got[0].responseHeaders).toEqual(expect.arrayContaining(['content-type', 'text/plain']));
    expect(got.every((r) => r.partial === undefined)).toBe(true);
  });

  test('split-point fuzzing: every cut gives the same records', () => {
    const all = events(h2Writes);
    const expected = runBatches([all]).records.map((r) => summary(r.record));
    const data = all.filter((e): e is DataEvent => e.kind === 'data');
    for (const ev of data) {
      const step = Math.max(1, Math.floor(ev.data.length / 40));
      for (let cut = 1; cut < ev.data.length; cut += step) {
        const batch: AgentEvent[] = [];
        for (const e of all) {
          if (e !== ev) batch.push(e);
          else batch.push({ ...ev, size: cut, data: ev.data.subarray(0, cut) }, { ...ev, pos: ev.pos + cut, size: ev.size - cut, data: ev.data.subarray(cut) });
        }
        expect(runBatches([batch]).records.map((r) => summary(r.record))).toEqual(expected);
      }
    }
  });

  test('a connection first seen mid-stream degrades to partial records with stream ids', () => {
    const all = events(h2Writes);
    const data = all.filter((e): e is DataEvent => e.kind === 'data');
    // Skip everything up to the second request's first egress bytes.
    const firstRes = data.findIndex((e) => e.direction === 'ingress' && e.pos > 0);
    const secondReq = data.findIndex((e, i) => i > firstRes && e.direction === 'egress');
    const late = data.slice(secondReq);
    const got = runBatches([late]).records.map((r) => r.record);
    expect(got.length).toBeGreaterThanOrEqual(2);
    expect(got.every((r) => r.partial === true)).toBe(true);
    expect(got.map((r) => r.streamId)).toEqual(expect.arrayContaining([5, 7]));
    const missing = got.find((r) => r.streamId === 5)!;
    expect(missing.status).toBe(404);
  });

  test('drops, shuffles and corruptions: no exception, bounded memory, later streams still decoded', () => {
    const all = events(h2Writes);
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (keep, flips) => {
        let i = 0;
        const kept = all
          .filter((e) => e.kind !== 'data' || keep[i++ % keep.length])
          .map((e): AgentEvent => (e.kind === 'data' ? { ...e, data: Buffer.from(e.data) } : e));
        const data = kept.filter((e): e is DataEvent => e.kind === 'data');
        for (const [at, byte] of flips) if (data.length > 0) data[at % data.length].data[at % data[at % data.length].data.length] = byte;
        const run = runBatches([kept.slice(0, -1)], { maxTotalBytes: 256 * 1024 });
        expect(run.table.totalBytes).toBeLessThanOrEqual(256 * 1024);
        run.table.handle(kept.slice(-1));
        expect(run.table.size).toBe(0);
        for (const { record } of run.records) {
          // Without corruption, whatever survives names a path the client asked for, or is marked partial.
          if (!record.partial && flips.length === 0) expect(['/first?a=1', '/second', '/missing', '/reset']).toContain(record.target);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('gRPC unary call from grpc-js: content-type, framed body, grpc-status trailer', () => {
    const got = runBatches([events(grpcWrites)]).records.map((r) => r.record);
    expect(got).toHaveLength(1);
    const r = got[0];
    expect(r.target).toBe('/demo.Echo/Say');
    expect(r.requestHeaders).toEqual(expect.arrayContaining(['content-type', 'application/grpc']));
    expect(Buffer.concat(r.requestBody.map((c) => c.data))).toEqual(Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x03, 0x61, 0x62, 0x63]));
    expect(r.responseTrailers).toEqual(expect.arrayContaining(['grpc-status', '0']));
  });
});

describe('HTTP/2 parseFrame tables', () => {
  const opts = { midStream: false, maxBodyBytes: 1024 };
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  test('well-formed: preface, SETTINGS ignored, padded DATA stripped', () => {
    const s = createH2State(opts);
    expect(parseH2Frame('request', PREFACE, s)).toEqual({ kind: 'ignored', consumed: 24 });
    expect(parseH2Frame('request', frame(4, 0, 0, Buffer.alloc(6)), s)).toEqual({ kind: 'ignored', consumed: 15 });
    const padded = frame(0, 0x9, 1, Buffer.from([2, 0x61, 0x62, 0, 0]));
    const r = parseH2Frame('request', padded, s);
    expect(r.kind === 'success' && r.frame.payload.toString()).toBe('ab');
  });
  test('incomplete: partial preface, header, payload', () => {
    const s = createH2State(opts);
    expect(parseH2Frame('request', PREFACE.subarray(0, 10), s).kind).toBe('needs-more-data');
    const m = createH2State({ ...opts, midStream: true });
    expect(parseH2Frame('response', frame(0, 0, 1, Buffer.alloc(20)).subarray(0, 5), m).kind).toBe('needs-more-data');
    expect(parseH2Frame('response', frame(0, 0, 1, Buffer.alloc(20)).subarray(0, 25), m).kind).toBe('needs-more-data');
  });
  test('invalid: wrong preface, reserved bit, DATA on stream 0, padding past the end', () => {
    expect(parseH2Frame('request', Buffer.from('GET / HTTP/1.1\r\n\r\n'), createH2State(opts)).kind).toBe('invalid');
    const m = () => createH2State({ ...opts, midStream: true });
    const reserved = frame(0, 0, 1, Buffer.alloc(1));
    reserved[5] |= 0x80;
    expect(parseH2Frame('response', reserved, m()).kind).toBe('invalid');
    expect(parseH2Frame('response', frame(0, 0, 0, Buffer.alloc(1)), m()).kind).toBe('invalid');
    expect(parseH2Frame('response', frame(0, 0x8, 1, Buffer.from([9, 1])), m()).kind).toBe('invalid');
    // PADDED with an empty payload has no pad length: invalid, even with the next frame's bytes
    // right behind it (they are not this frame's pad length).
    const empty = Buffer.concat([frame(0, 0x8, 1, Buffer.alloc(0)), frame(0, 0, 1, Buffer.from('x'))]);
    expect(parseH2Frame('response', empty, m())).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/without a pad length/) });
  });
  test('detect and boundary', () => {
    expect(detectH2('request', PREFACE)).toBe(true);
    expect(detectH2('request', PREFACE.subarray(0, 5))).toBeUndefined();
    expect(detectH2('request', Buffer.from('GET / HTTP/1.1\r\n'))).toBe(false);
    const two = Buffer.concat([Buffer.from('junk!'), frame(1, 4, 1, Buffer.from([0x82])), frame(0, 1, 1, Buffer.from('x'))]);
    expect(findH2Boundary('response', two, 0, createH2State({ ...opts, midStream: true }))).toBe(5);
  });
});
