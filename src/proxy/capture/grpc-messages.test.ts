import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readGrpcFrames } from '../grpc/frame-reader.js';
import { GrpcMessageSizes } from './grpc-messages.js';

function frame(flag: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h[0] = flag;
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
}

const stream = Buffer.concat([frame(0, Buffer.from('hello')), frame(1, Buffer.alloc(300, 7)), frame(0, Buffer.alloc(0)), frame(0, Buffer.from('x'))]);
const expected = [5 * 2, 300 * 2 + 1, 0, 2];

describe('GrpcMessageSizes', () => {
  it('counts messages in one chunk', () => {
    const s = new GrpcMessageSizes();
    s.add(stream, 1);
    expect(s.messages).toEqual(expected);
    expect(s.times).toEqual([1, 1, 1, 1]);
  });

  it('gives the same result for every split point', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const s = new GrpcMessageSizes();
      s.add(stream.subarray(0, cut), 1);
      s.add(stream.subarray(cut), 2);
      expect(s.messages, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('gives the same result byte by byte', () => {
    const s = new GrpcMessageSizes();
    for (let i = 0; i < stream.length; i++) s.add(stream.subarray(i, i + 1), i);
    expect(s.messages).toEqual(expected);
  });

  it('stops on an invalid flag', () => {
    const s = new GrpcMessageSizes();
    s.add(Buffer.concat([frame(0, Buffer.from('a')), Buffer.from([2, 0, 0, 0, 1, 0])]), 1);
    expect(s.invalid).toBe(true);
    expect(s.messages).toEqual([2]);
  });

  it('counts lengths above 2^31', () => {
    const s = new GrpcMessageSizes();
    s.add(Buffer.from([0, 0xff, 0xff, 0xff, 0xff]), 1);
    expect(s.messages).toEqual([0xffffffff * 2]);
  });

  it('property: any chunking of any frame stream (valid, cut or corrupt) counts what readGrpcFrames reads whole', () => {
    // Every message whose 5-byte prefix arrived is counted, including one cut short by the end.
    const expected = (stream: Buffer) => {
      const whole = readGrpcFrames(stream);
      const messages = whole.frames.map((f) => f.length * 2 + (f.compressed ? 1 : 0));
      const t = whole.truncated;
      if (t?.declaredLength !== undefined) messages.push(t.declaredLength * 2 + (t.compressed ? 1 : 0));
      return { messages, invalid: whole.error !== undefined };
    };
    const frames = fc.array(fc.record({ flag: fc.constantFrom(0, 1), payload: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 8 });
    fc.assert(
      fc.property(frames, fc.constantFrom('whole', 'cut', 'corrupt'), fc.nat(), fc.array(fc.nat(), { maxLength: 20 }), (fs, mode, at, rawCuts) => {
        let stream = Buffer.concat(fs.map((f) => frame(f.flag, Buffer.from(f.payload))));
        if (mode === 'cut' && stream.length > 0) stream = stream.subarray(0, at % stream.length);
        if (mode === 'corrupt' && stream.length > 0) {
          stream = Buffer.from(stream);
          stream[at % stream.length] = 2 + (at % 250);
        }
        const cuts = rawCuts.map((c) => c % (stream.length + 1)).sort((x, y) => x - y);
        const s = new GrpcMessageSizes();
        let from = 0;
        for (const cut of [...cuts, stream.length]) {
          s.add(stream.subarray(from, cut), 1);
          from = cut;
        }
        expect({ messages: s.messages, invalid: s.invalid }).toEqual(expected(stream));
      }),
      { numRuns: 300 },
    );
  });
});
