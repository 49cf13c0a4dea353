import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { AgentEvent, DataEvent } from '../../events.js';
import { connEvents, type Write } from '../../test-support/synthetic.js';
import { runBatches, summary } from '../../test-support/run.js';
import { createH1State, detectH1, findH1Boundary, headEnd, headFraming, headHeaders, IRREGULAR, parseH1Frame, scanHead, scannedHead, textHead } from './parse.js';
import type { H1Frame } from './types.js';

const opts = { midStream: false, maxBodyBytes: 1 << 20 };

function parseAll(type: 'request' | 'response', text: string, methods: string[] = []): { frames: H1Frame[]; rest: number; error?: string } {
  const state = createH1State(opts);
  state.pendingMethods.push(...methods);
  state.pendingStarts.push(...methods.map(() => 0));
  let buf = Buffer.from(text, 'latin1');
  const frames: H1Frame[] = [];
  for (;;) {
    const r = parseH1Frame(type, buf, state);
    if (r.kind === 'needs-more-data') return { frames, rest: buf.length };
    if (r.kind === 'invalid') return { frames, rest: buf.length, error: r.reason };
    if (r.kind === 'success') frames.push(r.frame);
    buf = buf.subarray(r.consumed);
  }
}

describe('HTTP/1 parseFrame: well-formed', () => {
  const cases: Array<{ name: string; type: 'request' | 'response'; text: string; methods?: string[]; kinds: string[] }> = [
    { name: 'GET without body', type: 'request', text: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', kinds: ['request-head'] },
    { name: 'POST content-length', type: 'request', text: 'POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc', kinds: ['request-head', 'body'] },
    { name: 'chunked with trailers', type: 'request', text: 'PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nab\r\n1\r\nc\r\n0\r\nX-T: 1\r\n\r\n', kinds: ['request-head', 'body', 'body', 'end'] },
    { name: 'pipelined requests', type: 'request', text: 'GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n', kinds: ['request-head', 'request-head'] },
    { name: 'response to HEAD has no body', type: 'response', text: 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n', methods: ['HEAD', 'GET'], kinds: ['response-head', 'response-head'] },
    { name: '304 has no body', type: 'response', text: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n', methods: ['GET'], kinds: ['response-head'] },
    { name: '100 continue then final', type: 'response', text: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', methods: ['POST'], kinds: ['response-head', 'response-head', 'body'] },
    { name: 'close-delimited 1.0 body', type: 'response', text: 'HTTP/1.0 200 OK\r\n\r\nall of it', methods: ['GET'], kinds: ['response-head', 'body'] },
    { name: 'obs-fold header', type: 'request', text: 'GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n', kinds: ['request-head'] },
    { name: 'leading CRLF between messages', type: 'request', text: '\r\nGET / HTTP/1.1\r\n\r\n', kinds: ['request-head'] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = parseAll(c.type, c.text, c.methods);
      expect(r.error).toBeUndefined();
      expect(r.frames.map((f) => f.kind)).toEqual(c.kinds);
      expect(r.rest).toBe(0);
    });
  }

  test('header values and folding', () => {
    const r = parseAll('request', 'GET /p?q=1 HTTP/1.0\r\nX-A: one\r\n two\r\nHost:  h:1 \r\n\r\n');
    expect(r.frames[0]).toMatchObject({ method: 'GET', target: '/p?q=1', version: '1.0', headers: ['X-A', 'one two', 'Host', 'h:1'], complete: true });
  });
});

describe('HTTP/1 heads: where the head ends', () => {
  // The end is scanned in JS over a head's first KiB and by indexOf beyond: every position of the
  // blank line around that limit, and every request line length, finds the same head.
  test('the blank line at every position around the scan limit', () => {
    for (let pad = 990; pad <= 1040; pad++) {
      const head = `GET /x HTTP/1.1\r\nX-Pad: ${'p'.repeat(pad - 28)}\r\n\r\n`;
      const r = parseAll('request', head + 'GET /y HTTP/1.1\r\n\r\n');
      expect(r.error).toBeUndefined();
      expect(r.frames.map((f) => (f.kind === 'request-head' ? f.target : f.kind))).toEqual(['/x', '/y']);
      expect(r.frames[0]).toMatchObject({ headers: ['X-Pad', 'p'.repeat(pad - 28)] });
    }
  });
  test('CR and LF inside header values do not end the head early', () => {
    const r = parseAll('response', 'HTTP/1.1 200 OK\r\nA: x\ry\r\nB: \n\r\nC: z\r\n\r\n', ['GET']);
    expect(r.frames[0]).toMatchObject({ kind: 'response-head', status: 200, headers: ['A', 'x\ry', 'B', '\n', 'C', 'z'] });
  });
  test('request lines checked as RFC 9112 states them', () => {
    const line = (l: string) => parseAll('request', `${l}\r\n\r\n`);
    expect(line('OPTIONS * HTTP/1.0').frames[0]).toMatchObject({ method: 'OPTIONS', target: '*', version: '1.0' });
    expect(line('GET /\xe9 HTTP/1.1').frames[0]).toMatchObject({ target: '/\xe9' });
    for (const bad of ['GET  / HTTP/1.1', 'GET / HTTP/1.1 ', 'GET /a b HTTP/1.1', 'GET / HTTP/1.2', 'GET / http/1.1', 'GET HTTP/1.1', 'GET /\x7f HTTP/1.1', `${'G'.repeat(33)} / HTTP/1.1`]) {
      expect(line(bad).error, bad).toMatch(/./);
    }
    expect(line('BREW /pot HTTP/1.1').error).toMatch(/not an HTTP\/1 request line/);
  });
});

describe('HTTP/1 heads: the one-pass scan agrees with the general path', () => {
  // Heads of random lines over the bytes that matter to either path (token bytes, colon, OWS,
  // CR and LF alone or paired, non-token and non-ASCII bytes), ended or not, cut anywhere, some
  // long enough to cross the scan's byte limit: wherever scanHead answers, it gives headEnd's end,
  // textHead's first line end, parseHeaderText's header list and bodyFraming's framing.
  const name = fc.array(fc.constantFrom('a', 'Z', '-', '!', '~', '1', ' ', '\t', '(', '\xe9', '\r', '\n'), { minLength: 0, maxLength: 6 }).map((c) => c.join(''));
  const value = fc.array(fc.constantFrom('v', 'W', ' ', '\t', ':', '\r', '\n', '\r\n', '\x00', '\xff'), { maxLength: 8 }).map((c) => c.join(''));
  const framingValue = fc.oneof(value, fc.constantFrom('12', '0', '007', ' 5 ', '1, 1', '9'.repeat(15), '9'.repeat(16), 'chunked', 'gzip, chunked'));
  const regular = fc.tuple(fc.constantFrom('Host', 'Content-Length', 'content-LENGTH', 'Transfer-Encoding', 'x', 'A-b'), fc.constantFrom(':', ': ', ':\t '), framingValue, fc.constant('\r\n')).map((p) => p.join(''));
  const odd = fc.tuple(fc.oneof(name, fc.constantFrom('Host', 'x')), fc.constantFrom(':', ': ', '', ' :'), value, fc.constantFrom('\r\n', '\n', '\r', '')).map((p) => p.join(''));
  const line = fc.oneof({ arbitrary: regular, weight: 12 }, { arbitrary: odd, weight: 1 });
  const head = fc.record({
    first: fc.constantFrom('HTTP/1.1 200 OK', 'GET / HTTP/1.1', '', 'X\r', ' '),
    lines: fc.oneof(fc.array(line, { maxLength: 8 }), fc.array(line, { maxLength: 70 })),
    ended: fc.boolean(),
    pad: fc.constantFrom(0, 0, 0, 900, 1000, 1020, 1030, 1100),
    tail: value,
    cut: fc.option(fc.nat(), { freq: 3 }),
  });

  test('same end, first line and headers on random heads', () => {
    let scanned = 0;
    let irregular = 0;
    fc.assert(
      fc.property(head, (h) => {
        const padLine = h.pad > 0 ? `X-Pad: ${'p'.repeat(h.pad)}\r\n` : '';
        let text = `${h.first}\r\n${padLine}${h.lines.join('')}${h.ended ? '\r\n' : ''}${h.tail}`;
        if (h.cut !== null) text = text.slice(0, h.cut % (text.length + 1));
        const buf = Buffer.from(text, 'latin1');
        const end = scanHead(buf);
        if (end === IRREGULAR) {
          irregular++;
          return;
        }
        expect(end).toBe(headEnd(buf));
        if (end < 0) return;
        scanned++;
        const fast = scannedHead(buf.toString('latin1', 0, end));
        const slow = textHead(buf.toString('latin1', 0, end));
        expect(fast.lineEnd).toBe(slow.lineEnd);
        const headers = headHeaders(slow);
        expect(headHeaders(fast)).toEqual(headers);
        if (typeof headers !== 'string') expect(headFraming(fast.framing, headers)).toEqual(headFraming(slow.framing, headers));
      }),
      { numRuns: 5000 },
    );
    // Both paths are exercised, not one of them alone.
    expect(scanned).toBeGreaterThan(200);
    expect(irregular).toBeGreaterThan(200);
  });
});

/** A copy of b at byte `offset` of memory of its own, with a byte on either side that differs
 * from b's neighbours. */
function placed(b: Buffer, offset: number): Buffer<ArrayBuffer> {
  const big = Buffer.alloc(b.length + offset + 1, 0x5a);
  b.copy(big, offset);
  return big.subarray(offset, offset + b.length);
}

describe('HTTP/1 heads: a repeated head reuses its parse', () => {
  const value = fc.array(fc.constantFrom('v', ' ', '\t', ':', '\r', '\n', '\x00', '\xe9', '7'), { maxLength: 8 }).map((c) => c.join(''));
  const line = fc.tuple(fc.constantFrom('Host', 'Content-Length', 'Transfer-Encoding', 'x', ' folded', 'bad name'), fc.constantFrom(':', ': ', ''), fc.oneof(value, fc.constantFrom('3', 'chunked', '0')), fc.constant('\r\n')).map((p) => p.join(''));
  // Heads of the same length that differ in one byte are likely: the cache must compare text.
  const first = fc.oneof(
    fc.record({ type: fc.constant('request' as const), first: fc.constantFrom('GET /a HTTP/1.1', 'GET /b HTTP/1.1', 'HEAD / HTTP/1.0', 'CONNECT h:1 HTTP/1.1', 'BREW / HTTP/1.1', 'GET  / HTTP/1.1') }),
    fc.record({ type: fc.constant('response' as const), first: fc.constantFrom('HTTP/1.1 200 OK', 'HTTP/1.1 201 OK', 'HTTP/1.0 204 No', 'HTTP/1.1 101 Up', 'HTTP/1.1 100 Continue', 'HTTP/1.1 2x0 OK', 'GET /a HTTP/1.1') }),
  );
  // What follows a head in its buffer (a body, the next message) or where the buffer is cut.
  const after = fc.oneof(fc.constantFrom('', '', 'abc', '\r\n', 'HTTP/1.1 200 OK\r\n\r\n', 'GET / HTTP/1.1\r\n\r\n'), fc.integer({ min: -6, max: -1 }));
  const head = fc
    .record({ first, lines: fc.array(line, { maxLength: 4 }), pad: fc.constantFrom(0, 0, 0, 490, 520), after })
    .map(({ first: f, lines, pad, after: a }) => ({ type: f.type, first: f.first, lines, pad, after: a }));

  test('heads of the same length that differ in one byte are told apart', () => {
    const seq = (type: 'request' | 'response', a: string, b: string) => {
      const state = createH1State(opts);
      for (const [k, text] of [a, a, a, b, b, a, b, a, a].entries()) {
        pendingGet(state);
        Object.assign(state[type], { mode: 'head', remaining: 0, lost: 0 });
        const fresh = createH1State(opts);
        pendingGet(fresh);
        // At every alignment: the repeat compare reads words.
        expect(parseH1Frame(type, placed(Buffer.from(text, 'latin1'), k % 4), state)).toEqual(parseH1Frame(type, Buffer.from(text, 'latin1'), fresh));
      }
    };
    seq('request', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n', 'GET /b HTTP/1.1\r\nHost: h\r\n\r\n');
    seq('request', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n', 'GET /a HTTP/1.0\r\nHost: h\r\n\r\n');
    seq('response', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n', 'HTTP/1.1 201 OK\r\nContent-Length: 1\r\n\r\n');
    seq('response', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n');
    // A buffer holding the cached head and more, or only part of it.
    seq('response', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n');
    seq('response', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r');
    seq('request', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /a HTTP/1.1\r\n');
  });

  test('a repeat is recognised at any alignment of its memory, and a head differing in any one byte is not', () => {
    fc.assert(
      fc.property(fc.nat({ max: 300 }), fc.nat({ max: 7 }), fc.nat(), (pad, offset, flip) => {
        const text = `GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: ${'p'.repeat(pad)}\r\n\r\n`;
        const state = createH1State(opts);
        const parse = (b: Buffer) => {
          Object.assign(state.request, { mode: 'head', remaining: 0, lost: 0 });
          return parseH1Frame('request', b, state);
        };
        parse(Buffer.from(text, 'latin1'));
        const cached = parse(Buffer.from(text, 'latin1'));
        // The very result object comes back: the cache answered, not a new parse.
        expect(parse(placed(Buffer.from(text, 'latin1'), offset))).toBe(cached);
        const other = Buffer.from(text, 'latin1');
        const at = flip % (other.length - 4);
        other[at] = other[at] === 0x70 ? 0x71 : 0x70;
        const got = parse(placed(other, offset));
        expect(got).not.toBe(cached);
        expect(got).toEqual(parseH1Frame('request', other, createH1State(opts)));
      }),
      { numRuns: 300 },
    );
  });

  test('each parse of a sequence of heads equals a first parse, and parsing never changes what it returned', () => {
    // Each step: which head, the method of the request a response answers (its framing), and
    // where in its memory the head sits (the repeat compare reads words at any alignment).
    const step = fc.tuple(fc.nat({ max: 5 }), fc.constantFrom('GET', 'GET', 'HEAD', 'CONNECT'), fc.nat({ max: 7 }));
    fc.assert(
      fc.property(fc.array(head, { minLength: 1, maxLength: 3 }), fc.array(step, { minLength: 3, maxLength: 12 }), (heads, order) => {
        const bufs = heads.map(({ type, first, lines, pad, after: a }) => {
          const padLine = pad > 0 ? `X-Pad: ${'p'.repeat(pad)}\r\n` : '';
          const text = `${first}\r\n${padLine}${lines.join('')}\r\n`;
          return { type, buf: Buffer.from(typeof a === 'number' ? text.slice(0, a) : text + a, 'latin1') };
        });
        // The same heads whole: cut ones alone would never be kept for reuse.
        bufs.push(...heads.map(({ type, first, lines, pad }) => ({ type, buf: Buffer.from(`${first}\r\n${pad > 0 ? `X-Pad: ${'p'.repeat(pad)}\r\n` : ''}${lines.join('')}\r\n`, 'latin1') })));
        // Everything but the reused heads starts afresh, as for a new message on a new connection.
        const parse = (state: ReturnType<typeof createH1State>, { type, buf }: (typeof bufs)[number], method: string) => {
          pendingGet(state, method);
          Object.assign(state.request, { mode: 'head', remaining: 0, lost: 0 });
          Object.assign(state.response, { mode: 'head', remaining: 0, lost: 0 });
          return parseH1Frame(type, buf, state);
        };
        const shared = createH1State(opts);
        for (const [i, method, offset] of order) {
          const h = { ...bufs[i % bufs.length], buf: placed(bufs[i % bufs.length].buf, offset) };
          const fresh = createH1State(opts);
          const expected = parse(fresh, h, method);
          const got = parse(shared, h, method);
          expect(got).toEqual(expected);
          expect(shared[h.type]).toEqual(fresh[h.type]);
          // A repeated head returns the same objects: frozen, any later write to them throws.
          if (got.kind === 'success' && 'headers' in got.frame) Object.freeze(Object.freeze(got.frame).headers);
          Object.freeze(got);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

/** One request (GET unless told) waiting for its response, as the only pending one. */
function pendingGet(state: ReturnType<typeof createH1State>, method = 'GET'): void {
  state.pendingMethods.splice(0, Infinity, method);
  state.pendingStarts.splice(0, Infinity, 0);
}

describe('HTTP/1 parseFrame: incomplete', () => {
  const cases: Array<[string, 'request' | 'response', string]> = [
    ['partial request line', 'request', 'GET /x HT'],
    ['head without blank line', 'request', 'GET /x HTTP/1.1\r\nHost: a\r\n'],
    ['method prefix', 'request', 'POS'],
    ['partial status line', 'response', 'HTTP/1.'],
    ['chunk size without CRLF', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1f'],
  ];
  for (const [name, type, text] of cases) {
    test(name, () => {
      const r = parseAll(type, text, ['GET']);
      expect(r.error).toBeUndefined();
      expect(r.rest).toBeGreaterThan(0);
    });
  }
  test('detect needs more bytes for a method prefix', () => {
    expect(detectH1('request', Buffer.from('GE'))).toBeUndefined();
    expect(detectH1('response', Buffer.from('HTTP/1.1 2'))).toBeUndefined();
  });
});

describe('HTTP/1 parseFrame: invalid', () => {
  const cases: Array<[string, 'request' | 'response', string]> = [
    ['binary garbage', 'request', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'],
    ['bad version', 'request', 'GET / HTTP/2.5\r\n\r\n'],
    ['header without colon', 'request', 'GET / HTTP/1.1\r\nbroken\r\n\r\n'],
    ['bad content-length', 'request', 'POST / HTTP/1.1\r\nContent-Length: x1\r\n\r\n'],
    ['bad chunk size', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['chunk data without CRLF', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY'],
    ['status line garbage', 'response', 'HTTP/1.1 2x0 OK\r\n\r\n'],
    ['not a response', 'response', 'SSH-2.0-OpenSSH\r\n'],
  ];
  for (const [name, type, text] of cases) {
    test(name, () => {
      const r = parseAll(type, text, ['GET']);
      expect(r.error).toMatch(/./);
    });
  }
  test('detect rejects non-HTTP', () => {
    expect(detectH1('request', Buffer.from('\x16\x03\x01\x00'))).toBe(false);
    expect(detectH1('request', Buffer.from('HELLO WORLD'))).toBe(false);
    expect(detectH1('response', Buffer.from('GET / HTTP/1.1'))).toBe(false);
  });
});

describe('HTTP/1 frame boundary', () => {
  test('finds the next request line after junk', () => {
    const buf = Buffer.from('ody bytes\r\nmore\nPOST /next HTTP/1.1\r\n\r\n');
    expect(buf.toString('latin1', findH1Boundary('request', buf, 0))).toMatch(/^POST \/next/);
  });
  test('finds a status line', () => {
    const buf = Buffer.from('xx\r\nHTTP/1.1 404 Not Found\r\n\r\n');
    expect(findH1Boundary('response', buf, 0)).toBe(4);
    expect(findH1Boundary('response', Buffer.from('no status here\r\n'), 0)).toBe(-1);
  });
});

// One keep-alive client connection exercising the framing rules end to end.
const KEEPALIVE: Write[] = [
  { direction: 'egress', data: 'GET /a?x=1 HTTP/1.1\r\nHost: svc\r\nUser-Agent: t\r\n\r\n' },
  { direction: 'ingress', data: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello' },
  { direction: 'egress', data: 'POST /b HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n3\r\n123\r\n0\r\nX-Sum: 7\r\n\r\n' },
  { direction: 'ingress', data: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n' },
  { direction: 'egress', data: 'HEAD /c HTTP/1.1\r\nHost: svc\r\n\r\nGET /d HTTP/1.1\r\nHost: svc\r\n\r\n' },
  { direction: 'ingress', data: 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n' },
  { direction: 'egress', data: 'DELETE /e HTTP/1.1\r\nHost: svc\r\n\r\n' },
  { direction: 'ingress', data: 'HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nbody until close' },
];

function flatten(writes: Write[]): AgentEvent[] {
  return connEvents({ connId: 1 }, writes);
}

function expectedKeepalive(): Record<string, unknown>[] {
  return runBatches([flatten(KEEPALIVE)]).records.map((r) => summary(r.record));
}

describe('HTTP/1 stitching', () => {
  test('keep-alive, chunked, 100-continue, HEAD, pipelining, 304, close-delimited', () => {
    const got = expectedKeepalive();
    expect(got.map((r) => [r.method, r.target, r.status])).toEqual([
      ['GET', '/a?x=1', 200],
      ['POST', '/b', 201],
      ['HEAD', '/c', 200],
      ['GET', '/d', 304],
      ['DELETE', '/e', 500],
    ]);
    expect(got[0]).toMatchObject({ responseBody: 'hello', responseBodySize: 5 });
    expect(got[1]).toMatchObject({ requestBody: 'wxyz123', requestTrailers: ['X-Sum', '7'], responseBody: 'ok' });
    expect(got[2]).toMatchObject({ responseBodySize: 0 });
    expect(got[4]).toMatchObject({ responseBody: 'body until close' });
  });

  test('split-point fuzzing: every cut of each direction gives the same records', () => {
    const expected = expectedKeepalive();
    const events = flatten(KEEPALIVE).filter((e): e is DataEvent => e.kind === 'data');
    const open = flatten(KEEPALIVE)[0];
    const close = flatten(KEEPALIVE).at(-1)!;
    for (const ev of events) {
      for (let cut = 1; cut < ev.data.length; cut++) {
        const batch: AgentEvent[] = [open];
        for (const e of events) {
          if (e !== ev) batch.push(e);
          else {
            batch.push({ ...e, size: cut, data: e.data.subarray(0, cut) });
            batch.push({ ...e, pos: e.pos + cut, size: e.size - cut, data: e.data.subarray(cut), tsNs: e.tsNs + 1 });
          }
        }
        batch.push(close);
        // Also across batches: the cut is a batch boundary.
        const i = batch.findIndex((e) => e.kind === 'data' && e.pos === ev.pos + cut && e.direction === ev.direction);
        const got1 = runBatches([batch]).records.map((r) => summary(r.record));
        const got2 = runBatches([batch.slice(0, i), batch.slice(i)]).records.map((r) => summary(r.record));
        expect(got1).toEqual(expected);
        expect(got2).toEqual(expected);
      }
    }
  });

  test('CONNECT and 101 turn both directions into an opaque tunnel', () => {
    const got = runBatches([connEvents({ connId: 2 }, [
      { direction: 'egress', data: 'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n\x16\x03\x01GET /x HTTP/1.1\r\n\r\n' },
      { direction: 'ingress', data: 'HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03HTTP/1.1 200 OK\r\n\r\n' },
    ])]).records.map((r) => [r.record.method, r.record.target, r.record.status]);
    expect(got).toEqual([['CONNECT', 'db:5432', 200]]);
  });

  test('a connection first seen mid-stream resynchronises at the next request line', () => {
    const events = flatten(KEEPALIVE).filter((e): e is DataEvent => e.kind === 'data');
    // Joined inside the first response's body: no open event, streams start past position 0.
    const late = events.slice(1).map((e, i) => (i === 0 ? { ...e, pos: e.pos + 40, size: e.size - 40, data: e.data.subarray(40) } : e));
    const got = runBatches([late]).records.map((r) => [r.record.method, r.record.target, r.record.status]);
    expect(got).toEqual([
      ['POST', '/b', 201],
      ['HEAD', '/c', 200],
      ['GET', '/d', 304],
    ]);
  });
});
