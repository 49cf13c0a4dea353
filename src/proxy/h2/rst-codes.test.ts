import http2 from 'node:http2';
import { expect, it } from 'vitest';
import { rstCodeName } from './rst-codes.js';

it('names every RFC 9113 error code as node:http2 numbers them, and unknown ones in hex', () => {
  const c = http2.constants;
  expect(rstCodeName(c.NGHTTP2_NO_ERROR)).toBe('NO_ERROR');
  expect(rstCodeName(c.NGHTTP2_REFUSED_STREAM)).toBe('REFUSED_STREAM');
  expect(rstCodeName(c.NGHTTP2_CANCEL)).toBe('CANCEL');
  expect(rstCodeName(c.NGHTTP2_ENHANCE_YOUR_CALM)).toBe('ENHANCE_YOUR_CALM');
  expect(rstCodeName(c.NGHTTP2_HTTP_1_1_REQUIRED)).toBe('HTTP_1_1_REQUIRED');
  expect(rstCodeName(0xff)).toBe('0xff');
});
