import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import { PASSIVE_EXCHANGE, type Exchange } from '../exchange.js';
import { forwardBlock, forwardRequestHeaders, requestHead, sensitiveOf, withoutPseudo } from './headers.js';

function exchange(forward: Array<[string, string]> = [], replaces: string[] = forward.map(([n]) => n)): Exchange {
  return { ...PASSIVE_EXCHANGE, forwardHeaders: forward, replacesHeaders: new Set(replaces) };
}

const RAW = [':method', 'POST', ':scheme', 'http', ':authority', 'api:8080', ':path', '/v1/x?y=1', 'content-type', 'application/json', 'x-a', '1', 'x-a', '2', 'cookie', 'a=1', 'cookie', 'b=2'];

describe('requestHead', () => {
  it('takes method, target and authority from the pseudo-headers and keeps the rest in order', () => {
    expect(requestHead(RAW)).toEqual({
      method: 'POST',
      target: '/v1/x?y=1',
      authority: 'api:8080',
      headers: ['content-type', 'application/json', 'x-a', '1', 'x-a', '2', 'cookie', 'a=1', 'cookie', 'b=2'],
    });
  });

  it('uses :authority as the target of CONNECT (which has no :path)', () => {
    expect(requestHead([':method', 'CONNECT', ':authority', 'db:5432'])).toMatchObject({ method: 'CONNECT', target: 'db:5432' });
  });
});

describe('forwardRequestHeaders', () => {
  it('forwards every field, repeated names as arrays, pseudo-headers included', () => {
    const out = forwardRequestHeaders(RAW, exchange(), undefined);
    expect(out).toEqual({
      ':method': 'POST',
      ':scheme': 'http',
      ':authority': 'api:8080',
      ':path': '/v1/x?y=1',
      'content-type': 'application/json',
      'x-a': ['1', '2'],
      cookie: ['a=1', 'b=2'],
    });
  });

  it('replaces trace headers with the exchange ones and drops what it replaces', () => {
    const raw = [':method', 'GET', ':path', '/', 'traceparent', 'old', 'b3', 'x', 'x-keep', 'k'];
    const out = forwardRequestHeaders(raw, exchange([['traceparent', 'new']], ['traceparent', 'b3']), undefined);
    expect(out).toEqual({ ':method': 'GET', ':path': '/', 'x-keep': 'k', traceparent: 'new' });
  });

  it('drops connection-specific fields but keeps te: trailers', () => {
    const raw = [':method', 'GET', ':path', '/', 'connection', 'close', 'keep-alive', '5', 'transfer-encoding', 'chunked', 'upgrade', 'h2c', 'te', 'trailers'];
    expect(forwardRequestHeaders(raw, exchange(), undefined)).toEqual({ ':method': 'GET', ':path': '/', te: 'trailers' });
    expect(forwardRequestHeaders([':path', '/', 'te', 'gzip'], exchange(), undefined)).toEqual({ ':path': '/' });
  });

  it('keeps never-indexed names never-indexed', () => {
    const out = forwardRequestHeaders([':path', '/', 'authorization', 'secret'], exchange(), ['authorization']);
    expect((out as Record<symbol, unknown>)[http2.sensitiveHeaders]).toEqual(['authorization']);
  });
});

describe('forwardBlock and withoutPseudo', () => {
  it('forwards a response head as received', () => {
    expect(forwardBlock([':status', '200', 'set-cookie', 'a', 'set-cookie', 'b', 'grpc-status', '0'], undefined)).toEqual({
      ':status': '200',
      'set-cookie': ['a', 'b'],
      'grpc-status': '0',
    });
  });

  it('strips pseudo-headers for the exchange', () => {
    expect(withoutPseudo([':status', '200', 'x', '1'])).toEqual(['x', '1']);
  });

  it('reads never-indexed names from an incoming block', () => {
    const h = { 'x-a': '1' } as http2.IncomingHttpHeaders;
    (h as Record<symbol, unknown>)[http2.sensitiveHeaders] = ['x-a'];
    expect(sensitiveOf(h)).toEqual(['x-a']);
  });
});
