import { describe, expect, it } from 'vitest';
import { parsePathTemplate } from './match.js';
import { parsePolicy } from './parse.js';
import type { MatchInput } from './types.js';

// Each route sets a distinct maxBodyBytes, so the matched route is identified by it; 65536 = default.
const policy = parsePolicy(`
default: { maxBodyBytes: 65536 }
routes:
  - match: { path: /healthz }
    maxBodyBytes: 1
  - match: { pathPrefix: /static/ }
    maxBodyBytes: 2
  - match: { pathTemplate: "/books/:id", methods: [get, PUT] }
    maxBodyBytes: 3
  - match: { pathTemplate: "/books/:id/chapters/:n" }
    maxBodyBytes: 4
  - match: { pathTemplate: "/files/*" }
    maxBodyBytes: 5
  - match: { grpc: "shop.Cart/AddItem" }
    maxBodyBytes: 6
  - match: { grpc: "shop.Cart/*" }
    maxBodyBytes: 7
  - match: { path: /books/special }
    maxBodyBytes: 8
  - match: { pathTemplate: "/" }
    maxBodyBytes: 9
  - match: { pathTemplate: "/dir/" }
    maxBodyBytes: 10
  - match: { pathPrefix: /, methods: [DELETE] }
    maxBodyBytes: 11
`);

describe('match', () => {
  const cases: Array<[string, MatchInput, number, string | undefined]> = [
    ['exact', { method: 'GET', path: '/healthz' }, 1, undefined],
    ['exact is not a prefix', { method: 'GET', path: '/healthz/x' }, 65536, undefined],
    ['exact is case-sensitive', { method: 'GET', path: '/HEALTHZ' }, 65536, undefined],
    ['prefix', { method: 'POST', path: '/static/css/a.css' }, 2, undefined],
    ['prefix itself', { method: 'GET', path: '/static/' }, 2, undefined],
    ['prefix needs the slash', { method: 'GET', path: '/static' }, 65536, undefined],
    ['template + route', { method: 'GET', path: '/books/42' }, 3, '/books/:id'],
    ['template, method from list', { method: 'PUT', path: '/books/42' }, 3, '/books/:id'],
    ['template, other method falls through', { method: 'POST', path: '/books/42' }, 65536, undefined],
    ['methods are case-sensitive on the wire', { method: 'get', path: '/books/42' }, 65536, undefined],
    ['param needs a non-empty segment', { method: 'GET', path: '/books/' }, 65536, undefined],
    ['param is one segment only', { method: 'GET', path: '/books/1/2' }, 65536, undefined],
    ['no trailing slash match', { method: 'GET', path: '/books/1/' }, 65536, undefined],
    ['two params', { method: 'GET', path: '/books/1/chapters/2' }, 4, '/books/:id/chapters/:n'],
    ['two params, missing one', { method: 'GET', path: '/books/1/chapters' }, 65536, undefined],
    ['first match wins over a later exact', { method: 'GET', path: '/books/special' }, 3, '/books/:id'],
    ['later exact when the earlier method filter fails', { method: 'POST', path: '/books/special' }, 8, undefined],
    ['rest matches deep paths', { method: 'GET', path: '/files/a/b/c.txt' }, 5, '/files/*'],
    ['rest matches empty rest', { method: 'GET', path: '/files/' }, 5, '/files/*'],
    ['rest needs its slash', { method: 'GET', path: '/files' }, 65536, undefined],
    ['literal must be whole segment', { method: 'GET', path: '/filesx/a' }, 65536, undefined],
    ['root template', { method: 'GET', path: '/' }, 9, '/'],
    ['trailing-slash template', { method: 'GET', path: '/dir/' }, 10, '/dir/'],
    ['trailing-slash template, no slash', { method: 'GET', path: '/dir' }, 65536, undefined],
    ['grpc exact method', { method: 'POST', path: '/shop.Cart/AddItem', grpcMethod: 'shop.Cart/AddItem' }, 6, undefined],
    ['grpc service wildcard', { method: 'POST', path: '/shop.Cart/Remove', grpcMethod: 'shop.Cart/Remove' }, 7, undefined],
    ['grpc other service', { method: 'POST', path: '/shop.Carts/X', grpcMethod: 'shop.Carts/X' }, 65536, undefined],
    ['grpc method prefix is not the method', { method: 'POST', path: '/shop.Cart/AddItems', grpcMethod: 'shop.Cart/AddItems' }, 7, undefined],
    ['grpc rules need grpcMethod', { method: 'POST', path: '/shop.Cart/AddItem' }, 65536, undefined],
    ['path rules apply to gRPC too', { method: 'DELETE', path: '/shop.Other/X', grpcMethod: 'shop.Other/X' }, 11, undefined],
    ['method-only prefix route', { method: 'DELETE', path: '/anything' }, 11, undefined],
  ];
  it.each(cases)('%s', (_name, input, maxBodyBytes, route) => {
    const m = policy.match(input);
    expect(m.rule.maxBodyBytes).toBe(maxBodyBytes);
    expect(m.route).toBe(route);
  });

  it('returns the same pre-built object on every call', () => {
    const a = policy.match({ method: 'GET', path: '/books/1' });
    const b = policy.match({ method: 'GET', path: '/books/2' });
    expect(a).toBe(b);
    expect(policy.match({ method: 'GET', path: '/nope' })).toBe(policy.match({ method: 'HEAD', path: '/nope2' }));
    expect(Object.isFrozen(a) && Object.isFrozen(a.rule)).toBe(true);
  });

  it('a gRPC wildcard route accepts the leading-slash form in the policy', () => {
    const p = parsePolicy('routes: [{ match: { grpc: "/a.b.C/*" }, spans: false }]');
    expect(p.match({ method: 'POST', path: '/a.b.C/M', grpcMethod: 'a.b.C/M' }).rule.spans).toBe(false);
    expect(p.match({ method: 'POST', path: '/a.b.C/', grpcMethod: 'a.b.C/' }).rule.spans).toBe(true);
  });
});

describe('parsePathTemplate', () => {
  it('parses literals, params and a final rest', () => {
    expect(parsePathTemplate('/a/:id/*')).toEqual([
      { kind: 'literal', text: 'a' },
      { kind: 'param', name: 'id' },
      { kind: 'rest' },
    ]);
    expect(parsePathTemplate('/v1/books:batchGet')).toEqual([
      { kind: 'literal', text: 'v1' },
      { kind: 'literal', text: 'books:batchGet' },
    ]);
  });
  it.each(['a', '/a/*/b', '/:1x', '/a//b', '/x*', '/:a/:a', '/a#b'])('rejects %s', (t) => {
    expect(typeof parsePathTemplate(t)).toBe('string');
  });
});
