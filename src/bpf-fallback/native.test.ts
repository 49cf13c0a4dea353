// Pins the record layout of native/bpf/abi.h as decodeBatch reads it: records are built here
// byte by byte at the C offsets, so a layout change on either side fails this test.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBatch } from './native.js';

function header(type: number, size: number, fields: { pid: number; tid: number; fd: number; ts: bigint; conn: bigint }): Buffer {
  const r = Buffer.alloc(size);
  r.writeUInt32LE(type, 0);
  r.writeUInt32LE(fields.pid, 4);
  r.writeUInt32LE(fields.tid, 8);
  r.writeInt32LE(fields.fd, 12);
  r.writeBigUInt64LE(fields.ts, 16);
  r.writeBigUInt64LE(fields.conn, 24);
  return r;
}

function batch(...records: Buffer[]): Buffer {
  return Buffer.concat(records.flatMap((r) => [Buffer.from(Uint32Array.of(r.length).buffer), r]));
}

const base = { pid: 4242, tid: 4243, fd: 7, ts: 123_456_789_012n, conn: 2n ** 40n + 5n };

function open(family: number, local: number[], remote: number[], role: number): Buffer {
  const r = header(1, 88, base);
  r[32] = role;
  r[33] = family;
  r.writeUInt16LE(8080, 34);
  r.writeUInt16LE(51234, 36);
  Buffer.from(local).copy(r, 40);
  Buffer.from(remote).copy(r, 56);
  r.write('curl\0junk', 72, 'latin1');
  return r;
}

describe('decodeBatch', () => {
  it('decodes open, data, close, exec and exit records', () => {
    const data = header(2, 56 + 5, base);
    data.writeBigUInt64LE(2n ** 33n, 32); // pos
    data.writeBigUInt64LE(70_000n, 40); // size: more than was captured
    data.writeUInt32LE(5, 48);
    data[52] = 1;
    data[53] = 1;
    data.write('GET /', 56, 'latin1');
    const close = header(3, 48, base);
    close.writeBigUInt64LE(100n, 32);
    close.writeBigUInt64LE(200n, 40);
    const exec = header(4, 48, { ...base, fd: -1, conn: 0n });
    exec.write('python3', 32, 'latin1');
    const exit = header(5, 48, { ...base, fd: -1, conn: 0n });

    const events = decodeBatch(batch(open(2, [127, 0, 0, 1], [10, 1, 2, 3], 1), data, close, exec, exit));
    const common = { pid: 4242, tid: 4243, fd: 7, tsNs: 123_456_789_012, connId: 2 ** 40 + 5 };
    expect(events).toEqual([
      { kind: 'open', ...common, role: 'client', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '10.1.2.3', port: 51234 }, comm: 'curl' },
      { kind: 'data', ...common, direction: 'ingress', source: 'tls', pos: 2 ** 33, size: 70_000, data: Buffer.from('GET /') },
      { kind: 'close', ...common, bytesSent: 100, bytesReceived: 200 },
      { kind: 'exec', pid: 4242, tsNs: 123_456_789_012, comm: 'python3' },
      { kind: 'exit', pid: 4242, tsNs: 123_456_789_012 },
    ]);
  });

  it.each([
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 9], '::ffff:192.168.0.9'],
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], '2001:db8::1:0:0:1'],
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], '2001:db8:0:1::1'],
    [[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'fe80::'],
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], '2001:db8:0:1:1:1:1:1'],
  ])('formats IPv6 %j as RFC 5952 %s', (bytes, text) => {
    const [ev] = decodeBatch(batch(open(10, bytes, bytes, 2)));
    expect(ev).toMatchObject({ role: 'server', local: { address: text }, remote: { address: text } });
  });

  it('stops at a truncated record instead of reading past the batch', () => {
    const whole = batch(open(2, [1, 2, 3, 4], [5, 6, 7, 8], 0));
    expect(decodeBatch(whole.subarray(0, whole.length - 1))).toEqual([]);
    expect(decodeBatch(whole)[0]).toMatchObject({ role: 'unknown' });
  });

  it('reads any data record field as the Buffer readers do, at any alignment', () => {
    const u64 = fc.bigInt({ min: 0n, max: 2n ** 53n - 1n });
    const record = fc.record({ pid: fc.nat({ max: 2 ** 32 - 1 }), tid: fc.nat({ max: 2 ** 32 - 1 }), fd: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), ts: u64, conn: u64, pos: u64, size: u64, captured: fc.nat({ max: 70 }), len: fc.nat({ max: 64 }), direction: fc.nat({ max: 3 }), source: fc.nat({ max: 3 }) });
    fc.assert(
      fc.property(fc.array(record, { maxLength: 6 }), fc.nat({ max: 7 }), (recs, lead) => {
        const raw = recs.map((f) => {
          const r = header(2, 56 + f.len, f);
          r.writeBigUInt64LE(f.pos, 32);
          r.writeBigUInt64LE(f.size, 40);
          r.writeUInt32LE(f.captured, 48);
          r[52] = f.direction;
          r[53] = f.source;
          for (let i = 56; i < r.length; i++) r[i] = i;
          return r;
        });
        // Misaligned on purpose: a batch is records back to back at any offset of its memory.
        const buf = Buffer.concat([Buffer.alloc(lead), batch(...raw)]).subarray(lead);
        const expected = raw.map((r) => ({
          kind: 'data',
          pid: r.readUInt32LE(4),
          tid: r.readUInt32LE(8),
          fd: r.readInt32LE(12),
          tsNs: Number(r.readBigUInt64LE(16)),
          connId: Number(r.readBigUInt64LE(24)),
          pos: Number(r.readBigUInt64LE(32)),
          size: Number(r.readBigUInt64LE(40)),
          direction: r[52] === 0 ? 'egress' : 'ingress',
          source: r[53] === 0 ? 'syscall' : 'tls',
          data: r.subarray(56, 56 + Math.min(r.readUInt32LE(48), r.length - 56)),
        }));
        expect(decodeBatch(buf)).toEqual(expected);
      }),
    );
  });
});
