import { describe, expect, it } from 'vitest';
import { spanFromJson, spanToJson } from './span-json.js';
import { SpanKind, StatusCode, type SpanRecord } from './span.js';

const span: SpanRecord = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  parentSpanId: '00f067aa0ba902b7',
  traceState: 'k=v',
  sampled: false,
  name: 'GET /x',
  kind: SpanKind.CLIENT,
  startMs: 1_763_700_000_123.456,
  endMs: 1_763_700_000_124.5,
  attributes: { s: 'line\nbreak', i: 7, d: 0.5, b: false, a: ['x', 'y'], body: new Uint8Array([0, 255, 10]) },
  events: [{ name: 'e', timeMs: 1_763_700_000_124, attributes: { raw: Buffer.from('hi') } }],
  status: { code: StatusCode.ERROR, message: 'boom' },
};

describe('span JSON lines', () => {
  it('writes one line, bytes as { base64 }, and reads back the same span', () => {
    const line = spanToJson(span);
    expect(line).not.toContain('\n');
    const o = JSON.parse(line);
    expect(o.attributes.body).toEqual({ base64: 'AP8K' });
    expect(o.events[0].attributes.raw).toEqual({ base64: 'aGk=' });
    expect(o.attributes.s).toBe('line\nbreak');
    const back = spanFromJson(line);
    expect(back).toEqual({ ...span, attributes: { ...span.attributes, body: Buffer.from([0, 255, 10]) } });
  });

  it('carries a span\'s own resource, and reads it back', () => {
    const own = { ...span, resource: { attributes: { 'service.name': 'nginx', 'process.pid': 812 } } };
    const line = spanToJson(own);
    expect(JSON.parse(line).resource).toEqual({ attributes: { 'service.name': 'nginx', 'process.pid': 812 } });
    expect(spanFromJson(line).resource).toEqual(own.resource);
    expect(JSON.parse(spanToJson(span))).not.toHaveProperty('resource');
  });

  it('encodes a byte view with an offset into a larger buffer correctly', () => {
    const big = Buffer.from('xxxxHELLOyyyy');
    const line = spanToJson({ ...span, attributes: { body: big.subarray(4, 9) }, events: [] });
    expect(JSON.parse(line).attributes.body.base64).toBe(Buffer.from('HELLO').toString('base64'));
  });

  it('rejects a line that is not a span', () => {
    expect(() => spanFromJson('{"hello":1}')).toThrow(/not a span line/);
    expect(() => spanFromJson('null')).toThrow(/not a span line/);
  });
});
