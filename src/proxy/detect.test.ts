import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { detectProtocol, H2_PREFACE, MAX_DETECT_BYTES, type Detection } from './detect.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('detectProtocol', () => {
  const wellFormed: Array<[string, Buffer, Detection]> = [
    ['GET origin form', b('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), 'h1'],
    ['POST with query', b('POST /books/purchase?x=1 HTTP/1.1\r\n'), 'h1'],
    ['HTTP/1.0', b('HEAD /x HTTP/1.0\r\n'), 'h1'],
    ['bare LF line end', b('GET / HTTP/1.1\n'), 'h1'],
    ['CONNECT authority form', b('CONNECT example.com:443 HTTP/1.1\r\n'), 'h1'],
    ['OPTIONS asterisk', b('OPTIONS * HTTP/1.1\r\n'), 'h1'],
    ['extension method', b('PROPFIND /dav HTTP/1.1\r\n'), 'h1'],
    ['h2 preface', H2_PREFACE, 'h2'],
    ['h2 preface + SETTINGS', Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]), 'h2'],
  ];
  const incomplete: Array<[string, Buffer]> = [
    ['empty', b('')],
    ['method only', b('GET')],
    ['method and space', b('GET ')],
    ['no version yet', b('GET /index.html')],
    ['partial version', b('GET / HTTP/1.')],
    ['version without line end', b('GET / HTTP/1.1')],
    ['partial preface', H2_PREFACE.subarray(0, 10)],
    ['P alone', b('P')],
    ['PRI prefix', b('PRI * HTTP/2.0\r\n')],
  ];
  const opaque: Array<[string, Buffer]> = [
    ['TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])],
    ['Redis inline', b('PING\r\n')],
    ['Redis inline with args', b('SET key value\r\n')],
    ['RESP array', b('*1\r\n$4\r\nPING\r\n')],
    ['HTTP/2 version in request line', b('GET / HTTP/2.0\r\n')],
    ['HTTP/1.x with letters', b('GET / HTTP/1.x\r\n')],
    ['extra token after version', b('GET / HTTP/1.1 x\r\n')],
    ['lowercase version', b('GET / http/1.1\r\n')],
    ['leading space', b(' GET / HTTP/1.1\r\n')],
    ['double space', b('GET  / HTTP/1.1\r\n')],
    ['control char in target', b('GET /\x01 HTTP/1.1\r\n')],
    ['NUL first', Buffer.from([0])],
    ['PRI preface mismatch', b('PRI * HTTP/2.0\r\n\r\nXX')],
    ['Postgres startup', Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])],
  ];

  it.each(wellFormed)('well-formed: %s', (_n, buf, want) => expect(detectProtocol(buf)).toBe(want));
  it.each(incomplete)('incomplete: %s', (_n, buf) => expect(detectProtocol(buf)).toBe('need-more'));
  it.each(opaque)('opaque: %s', (_n, buf) => expect(detectProtocol(buf)).toBe('opaque'));

  it('classifies an over-long but well-shaped request line as HTTP/1 (the handler answers it)', () => {
    expect(detectProtocol(b('GET /' + 'a'.repeat(MAX_DETECT_BYTES)))).toBe('h1');
  });

  it('is monotonic: once decided, more bytes never change the answer (any split point)', () => {
    const streams = fc.oneof(
      fc.constantFrom(...wellFormed.map((w) => w[1]), ...opaque.map((o) => o[1])),
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
      fc
        .tuple(fc.constantFrom('GET', 'POST', 'PUT', 'X'), fc.stringMatching(/^\/[a-z0-9/?=&]{0,20}$/), fc.constantFrom('0', '1'))
        .map(([m, t, v]) => b(`${m} ${t} HTTP/1.${v}\r\nHost: x\r\n\r\n`)),
    );
    fc.assert(
      fc.property(streams, (buf) => {
        const full = detectProtocol(buf);
        let decided: Detection | undefined;
        for (let i = 0; i <= buf.length; i++) {
          const d = detectProtocol(buf.subarray(0, i));
          if (decided) expect(d).toBe(decided);
          else if (d !== 'need-more') decided = d;
        }
        if (decided) expect(full).toBe(decided);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (a) => void detectProtocol(a)), { numRuns: 2000 });
  });
});
