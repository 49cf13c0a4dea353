import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { HpackDecoder, HpackError, huffmanDecode } from './hpack.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  test('C.3 requests without Huffman, sharing a dynamic table', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d')).headers).toEqual([
      ':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com',
    ]);
    expect(d.decode(hex('8286 84be 5808 6e6f 2d63 6163 6865')).headers).toEqual([
      ':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com', 'cache-control', 'no-cache',
    ]);
    expect(d.decode(hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65')).headers).toEqual([
      ':method', 'GET', ':scheme', 'https', ':path', '/index.html', ':authority', 'www.example.com', 'custom-key', 'custom-value',
    ]);
    expect(d.tableBytes).toBe(164);
  });

  test('C.4 requests with Huffman', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')).headers).toEqual([
      ':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com',
    ]);
    expect(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')).headers.slice(-2)).toEqual(['cache-control', 'no-cache']);
    expect(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')).headers.slice(-2)).toEqual(['custom-key', 'custom-value']);
  });

  test('C.6 responses with Huffman and eviction (table size 256)', () => {
    const d = new HpackDecoder();
    d.decode(hex('3fe1 01')); // dynamic table size update to 256
    const first = d.decode(
      hex('4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3'),
    ).headers;
    expect(first).toEqual([':status', '302', 'cache-control', 'private', 'date', 'Mon, 21 Oct 2013 20:13:21 GMT', 'location', 'https://www.example.com']);
    const second = d.decode(hex('4883 640e ffc1 c0bf')).headers;
    expect(second).toEqual([':status', '307', 'cache-control', 'private', 'date', 'Mon, 21 Oct 2013 20:13:21 GMT', 'location', 'https://www.example.com']);
    expect(d.tableBytes).toBe(222);
  });
});

describe('HPACK decoder: invalid and unknown state', () => {
  test('index beyond a known table is an error', () => {
    expect(() => new HpackDecoder().decode(hex('be'))).toThrow(HpackError);
  });
  test('truncated string is an error naming the byte', () => {
    expect(() => new HpackDecoder().decode(hex('4005 6162'))).toThrow(/byte 2/);
  });
  test('bad Huffman padding is an error', () => {
    expect(() => huffmanDecode(hex('00'), 0, 1)).toThrow(HpackError);
  });
  test('a decoder that joined mid-way skips unknown dynamic references and says so', () => {
    const d = new HpackDecoder(false);
    const r = d.decode(hex('8286 84be 5808 6e6f 2d63 6163 6865'));
    expect(r.complete).toBe(false);
    expect(r.headers).toEqual([':method', 'GET', ':scheme', 'http', ':path', '/', 'cache-control', 'no-cache']);
    // What it learned since joining is usable.
    expect(d.decode(hex('be')).headers).toEqual(['cache-control', 'no-cache']);
  });
  test('never throws anything but HpackError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, synced) => {
        try {
          new HpackDecoder(synced).decode(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(HpackError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
