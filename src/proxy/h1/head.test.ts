import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BodyKind, HEAD_DONE, NEED_MORE, newHeadState, parseHead, requestFraming, responseFraming, type H1Error, type HeadResult } from './head.js';

const LIMITS = { maxHeaderSize: 16384, maxRawHead: 131072 };

function parseReq(s: string): { r: HeadResult; st: ReturnType<typeof newHeadState> } {
  const st = newHeadState();
  return { r: parseHead(Buffer.from(s, 'latin1'), st, true, LIMITS), st };
}

describe('parseHead: well-formed requests', () => {
  const table: Array<[string, string, Partial<{ method: string; target: string; version: string; headers: string[] }>]> = [
    ['simple GET', 'GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n', { method: 'GET', target: '/a?b=1', version: '1.1', headers: ['Host', 'x'] }],
    ['HTTP/1.0, no headers', 'GET / HTTP/1.0\r\n\r\n', { version: '1.0', headers: [] }],
    ['OWS trimmed, case kept', 'GET / HTTP/1.1\r\nX-A:  \tv v \t\r\n\r\n', { headers: ['X-A', 'v v'] }],
    ['empty value', 'GET / HTTP/1.1\r\nX:\r\n\r\n', { headers: ['X', ''] }],
    ['obs-text value', 'GET / HTTP/1.1\r\nX: \xff\x80\r\n\r\n', { headers: ['X', '\xff\x80'] }],
    ['leading CRLF skipped', '\r\n\r\nGET / HTTP/1.1\r\n\r\n', { method: 'GET' }],
    ['absolute form', 'GET http://a/b HTTP/1.1\r\n\r\n', { target: 'http://a/b' }],
    ['authority form', 'CONNECT a:443 HTTP/1.1\r\n\r\n', { method: 'CONNECT', target: 'a:443' }],
    ['asterisk', 'OPTIONS * HTTP/1.1\r\n\r\n', { target: '*' }],
    ['repeated spaces in request line', 'GET  /  HTTP/1.1\r\n\r\n', { target: '/' }],
  ];
  for (const [name, input, want] of table) {
    it(name, () => {
      const { r, st } = parseReq(input);
      expect(r).toBe(HEAD_DONE);
      for (const [k, v] of Object.entries(want)) expect((st as unknown as Record<string, unknown>)[k]).toEqual(v);
      expect(st.blankLine + 2).toBe(input.length);
    });
  }
});

describe('parseHead: incomplete input needs more', () => {
  const full = 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n';
  it('every proper prefix', () => {
    for (let i = 1; i < full.length; i++) expect(parseReq(full.slice(0, i)).r, `prefix ${i}`).toBe(NEED_MORE);
  });
  it('resumes where it stopped as bytes are appended', () => {
    const st = newHeadState();
    let r: HeadResult = NEED_MORE;
    for (let i = 1; i <= full.length; i++) r = parseHead(Buffer.from(full.slice(0, i), 'latin1'), st, true, LIMITS);
    expect(r).toBe(HEAD_DONE);
    expect(st.headers).toEqual(['Host', 'a', 'Content-Length', '3']);
    expect(st.lineStarts).toEqual([18, 27]);
  });
});

describe('parseHead: invalid input (what llhttp rejects)', () => {
  const table: Array<[string, string, string, number]> = [
    ['bare LF', 'GET / HTTP/1.1\nHost: a\n\n', 'ST_H1_BARE_LF', 400],
    ['obs-fold', 'GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n', 'ST_H1_OBS_FOLD', 400],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 'ST_H1_INVALID_HEADER', 400],
    ['bad name byte', 'GET / HTTP/1.1\r\nHo(st: a\r\n\r\n', 'ST_H1_INVALID_HEADER', 400],
    ['empty name', 'GET / HTTP/1.1\r\n: a\r\n\r\n', 'ST_H1_INVALID_HEADER', 400],
    ['no colon', 'GET / HTTP/1.1\r\nHost\r\n\r\n', 'ST_H1_INVALID_HEADER', 400],
    ['CTL in value', 'GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n', 'ST_H1_INVALID_HEADER', 400],
    ['DEL in value', 'GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n', 'ST_H1_INVALID_HEADER', 400],
    ['bare CR in value', 'GET / HTTP/1.1\r\nX: a\rb\r\n\r\n', 'ST_H1_INVALID_HEADER', 400],
    ['unknown method', 'FOO / HTTP/1.1\r\n\r\n', 'ST_H1_INVALID_METHOD', 400],
    ['lower-case method', 'get / HTTP/1.1\r\n\r\n', 'ST_H1_INVALID_METHOD', 400],
    ['space in target', 'GET /a b HTTP/1.1\r\n\r\n', 'ST_H1_INVALID_VERSION', 400],
    ['obs-text in target', 'GET /\xff HTTP/1.1\r\n\r\n', 'ST_H1_INVALID_TARGET', 400],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\n\r\n', 'ST_H1_INVALID_VERSION', 400],
    ['no version', 'GET /\r\n\r\n', 'ST_H1_INVALID_TARGET', 400],
    ['header fields at the limit', `GET / HTTP/1.1\r\nX: ${'a'.repeat(16382)}\r\n\r\n`, 'ST_H1_HEADER_OVERFLOW', 431],
  ];
  for (const [name, input, code, status] of table) {
    it(name, () => {
      const { r } = parseReq(input);
      expect(typeof r).toBe('object');
      expect((r as H1Error).code).toBe(code);
      expect((r as H1Error).status).toBe(status);
    });
  }
  it('one byte under the limit is accepted (Node counts target + names + values)', () => {
    expect(parseReq(`GET / HTTP/1.1\r\nX: ${'a'.repeat(16381)}\r\n\r\n`).r).toBe(HEAD_DONE);
  });
  it('raw head without a line end beyond the hard cap', () => {
    expect((parseReq('GET /' + 'a'.repeat(140000)).r as H1Error).status).toBe(431);
  });
});

describe('framing', () => {
  const frame = (s: string) => {
    const { r, st } = parseReq(s);
    expect(r).toBe(HEAD_DONE);
    return requestFraming(st);
  };
  it('Content-Length, chunked, none, close, upgrade', () => {
    expect(frame('POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n')).toMatchObject({ kind: BodyKind.Length, length: 12, close: false });
    expect(frame('POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n')).toMatchObject({ kind: BodyKind.Chunked });
    expect(frame('GET / HTTP/1.1\r\nConnection: close\r\n\r\n')).toMatchObject({ kind: BodyKind.None, close: true });
    expect(frame('GET / HTTP/1.0\r\n\r\n')).toMatchObject({ close: true });
    expect(frame('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n')).toMatchObject({ close: false });
    expect(frame('GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nHost: h\r\n\r\n')).toMatchObject({ upgrade: true, host: 'h' });
  });
  const smuggling: Array<[string, string]> = [
    ['CL + TE', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['differing CL', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n'],
    ['repeated CL', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n'],
    ['CL list', 'POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n'],
    ['CL sign', 'POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n'],
    ['CL huge', 'POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n'],
    ['TE not ending in chunked', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'],
    ['TE gzip only', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['TE chunked twice', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n'],
  ];
  for (const [name, input] of smuggling) {
    it(`rejects ${name}`, () => {
      const f = frame(input);
      expect('code' in f && f.status).toBe(400);
      // The message names the offending header.
      expect('code' in f && f.message).toMatch(/Content-Length|Transfer-Encoding/);
    });
  }
  it('responses: HEAD, 1xx, 204, 304 have no body; no framing means until close', () => {
    const res = (s: string, method: string) => {
      const st = newHeadState();
      expect(parseHead(Buffer.from(s, 'latin1'), st, false, LIMITS)).toBe(HEAD_DONE);
      return responseFraming(st, method);
    };
    expect(res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'HEAD')).toMatchObject({ kind: BodyKind.None });
    expect(res('HTTP/1.1 204 No Content\r\n\r\n', 'GET')).toMatchObject({ kind: BodyKind.None });
    expect(res('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', 'GET')).toMatchObject({ kind: BodyKind.None });
    expect(res('HTTP/1.1 200 OK\r\n\r\n', 'GET')).toMatchObject({ kind: BodyKind.UntilClose, close: true });
    expect(res('HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n', 'GET')).toMatchObject({ kind: BodyKind.Chunked, keepAliveSec: 5 });
    expect(res('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n', 'GET')).toMatchObject({ close: true });
  });
});

describe('never throws', () => {
  it('on arbitrary bytes, requests and responses, in any number of steps', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.nat(300), (bytes, isRequest, cut) => {
        const buf = Buffer.from(bytes);
        const st = newHeadState();
        parseHead(buf.subarray(0, Math.min(cut, buf.length)), st, isRequest, { maxHeaderSize: 64, maxRawHead: 256 });
        const r = parseHead(buf, st, isRequest, { maxHeaderSize: 64, maxRawHead: 256 });
        if (r === HEAD_DONE) (isRequest ? requestFraming(st) : responseFraming(st, 'GET'));
      }),
      { numRuns: 3000 },
    );
  });
  it('on HTTP-shaped random heads', () => {
    const piece = fc.constantFrom('GET', 'POST', ' ', '/', 'HTTP/1.1', 'HTTP/1.0', '\r\n', '\n', ':', 'Content-Length', 'Transfer-Encoding', 'chunked', '5', ',', '\t', 'Host', '\x00', '\xff');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (parts) => {
        const st = newHeadState();
        if (parseHead(Buffer.from(parts.join(''), 'latin1'), st, true, LIMITS) === HEAD_DONE) requestFraming(st);
      }),
      { numRuns: 3000 },
    );
  });
});
