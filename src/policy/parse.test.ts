import { describe, expect, it } from 'vitest';
import { compilePolicy, defaultPolicy, formatPath, parsePolicy } from './parse.js';
import { PolicyError, type CaptureRule } from './types.js';

const GET = (path: string) => ({ method: 'GET', path });

function ruleOf(text: string, path = '/x'): CaptureRule {
  return parsePolicy(text).match(GET(path)).rule;
}

describe('parsePolicy: well-formed', () => {
  it('an empty document is the built-in default', () => {
    for (const text of ['', '   \n', '# only a comment\n', '{}', 'null']) {
      expect(parsePolicy(text).effective).toEqual(defaultPolicy().effective);
    }
    const r = defaultPolicy().match(GET('/anything')).rule;
    expect(r).toMatchObject({
      spans: true, requestBody: true, responseBody: true, maxBodyBytes: 65536,
      requestHeaders: 'all', responseHeaders: 'all', sample: 1, keepSlowerThanMs: 500,
    });
    expect(r.redact.headers.has('authorization')).toBe(true);
    expect(r.redact.query.has('awsaccesskeyid')).toBe(true);
    expect(r.redact.jsonKeys.has('client_secret')).toBe(true);
    expect(r.redact.formFields.has('passwd')).toBe(true);
    expect(defaultPolicy().match(GET('/')).route).toBeUndefined();
  });

  const cases: Array<[string, string, Partial<Record<keyof CaptureRule, unknown>>]> = [
    ['spans off', 'default: { spans: false }', { spans: false }],
    ['bodies off', 'default: { requestBody: false, responseBody: false }', { requestBody: false, responseBody: false }],
    ['max body 0', 'default: { maxBodyBytes: 0 }', { maxBodyBytes: 0 }],
    ['max body 16 MiB', 'default: { maxBodyBytes: 16777216 }', { maxBodyBytes: 16777216 }],
    ['sample bounds', 'default: { sample: 0 }', { sample: 0 }],
    ['sample 1', 'default: { sample: 1 }', { sample: 1 }],
    ['keepSlowerThanMs', 'default: { keepSlowerThanMs: 0 }', { keepSlowerThanMs: 0 }],
    ['header list, lowercased', 'default: { headers: { request: [Content-Type, X-Req-ID] } }', { requestHeaders: new Set(['content-type', 'x-req-id']), responseHeaders: 'all' }],
    ['no headers', 'default: { headers: { response: [] } }', { requestHeaders: 'all', responseHeaders: new Set() }],
    ['JSON document', '{"default": {"sample": 0.25, "spans": true}}', { sample: 0.25, spans: true }],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    expect(ruleOf(text)).toMatchObject(expected);
  });

  it('redact lists add to the built-ins, lowercased', () => {
    const r = ruleOf('default: { redact: { headers: [X-Api-Key], query: [SessionID], jsonKeys: [PIN], formFields: [Otp] } }');
    expect(r.redact.headers).toEqual(new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']));
    expect(r.redact.query.has('sessionid') && r.redact.query.has('token')).toBe(true);
    expect(r.redact.jsonKeys.has('pin') && r.redact.jsonKeys.has('password')).toBe(true);
    expect(r.redact.formFields.has('otp') && r.redact.formFields.has('password')).toBe(true);
  });

  it('routes inherit unset fields from default; route redact adds to the default one', () => {
    const p = parsePolicy(`
default:
  sample: 0.5
  maxBodyBytes: 100
  headers: { request: [a], response: [b] }
  redact: { headers: [x-default-secret] }
routes:
  - match: { path: /r }
    maxBodyBytes: 7
    headers: { response: ["*"] }
    redact: { headers: [x-route-secret] }
`);
    const r = p.match(GET('/r')).rule;
    expect(r).toMatchObject({ sample: 0.5, maxBodyBytes: 7, requestHeaders: new Set(['a']), responseHeaders: 'all' });
    expect(r.redact.headers.has('x-default-secret') && r.redact.headers.has('x-route-secret') && r.redact.headers.has('cookie')).toBe(true);
    const d = p.match(GET('/other')).rule;
    expect(d.maxBodyBytes).toBe(100);
    expect(d.redact.headers.has('x-route-secret')).toBe(false);
  });

  it('the example document from the schema comment parses', () => {
    const p = parsePolicy(`
default:
  spans: true
  requestBody: true
  responseBody: true
  maxBodyBytes: 65536
  headers:
    request: ["*"]
    response: ["*"]
  redact:
    headers: [x-api-key]
    query: [token]
    jsonKeys: [password]
    formFields: [password]
  sample: 1.0
  keepSlowerThanMs: 500
routes:
  - match: { path: /healthz }
    spans: false
  - match: { pathPrefix: /static/ }
    responseBody: false
  - match: { pathTemplate: "/books/:id", methods: [GET, PUT] }
    sample: 0.1
  - match: { grpc: "shop.Cart/AddItem" }
    maxBodyBytes: 1048576
`);
    expect(p.match(GET('/healthz')).rule.spans).toBe(false);
    expect(p.match(GET('/static/a.css')).rule.responseBody).toBe(false);
    expect(p.match(GET('/books/7'))).toMatchObject({ route: '/books/:id', rule: { sample: 0.1 } });
    expect(p.match({ method: 'POST', path: '/shop.Cart/AddItem', grpcMethod: 'shop.Cart/AddItem' }).rule.maxBodyBytes).toBe(1048576);
  });

  it('the effective policy is a valid document that compiles to itself', () => {
    const p = parsePolicy(`
default: { sample: 0.3, headers: { request: [x-a] }, redact: { query: [q] } }
routes:
  - match: { pathTemplate: "/u/:id/*", methods: [get] }
    spans: false
  - match: { grpc: "/pkg.Svc/*" }
  - match: { pathPrefix: /p }
    redact: { jsonKeys: [k] }
`);
    const again = parsePolicy(JSON.stringify(p.effective));
    expect(again.effective).toEqual(p.effective);
    const routes = (p.effective as { routes: Array<{ match: unknown }> }).routes;
    expect(routes.map((r) => r.match)).toEqual([
      { pathTemplate: '/u/:id/*', methods: ['GET'] },
      { grpc: 'pkg.Svc/*' },
      { pathPrefix: '/p' },
    ]);
  });

  it('compilePolicy takes already-parsed objects', () => {
    const p = compilePolicy({ routes: [{ match: { path: '/a' }, spans: false }] });
    expect(p.match(GET('/a')).rule.spans).toBe(false);
    expect(p.match(GET('/b')).rule.spans).toBe(true);
  });
});

describe('parsePolicy: invalid', () => {
  const cases: Array<[string, string, string]> = [
    ['unknown top-level key', 'defaults: {}', 'defaults'],
    ['typo in default', 'default: { smaple: 0.5 }', 'default.smaple'],
    ['typo in route', 'routes: [{ match: { path: /a }, respnseBody: false }]', 'routes[0].respnseBody'],
    ['typo in match', 'routes: [{ match: { paht: /a } }]', 'routes[0].match.paht'],
    ['typo in headers', 'default: { headers: { req: [a] } }', 'default.headers.req'],
    ['typo in redact', 'default: { redact: { json: [a] } }', 'default.redact.json'],
    ['not an object', '"just a string"', ''],
    ['routes not a list', 'routes: { match: { path: /a } }', 'routes'],
    ['sample too big', 'default: { sample: 1.5 }', 'default.sample'],
    ['sample negative', 'default: { sample: -0.1 }', 'default.sample'],
    ['sample as string', 'default: { sample: "0.5" }', 'default.sample'],
    ['spans as yes (YAML 1.2: a string)', 'default: { spans: yes }', 'default.spans'],
    ['maxBodyBytes fractional', 'default: { maxBodyBytes: 1.5 }', 'default.maxBodyBytes'],
    ['maxBodyBytes too big', 'default: { maxBodyBytes: 16777217 }', 'default.maxBodyBytes'],
    ['maxBodyBytes negative', 'default: { maxBodyBytes: -1 }', 'default.maxBodyBytes'],
    ['keepSlowerThanMs negative', 'default: { keepSlowerThanMs: -5 }', 'default.keepSlowerThanMs'],
    ['bad header name', 'default: { headers: { request: [ok, "bad name"] } }', 'default.headers.request[1]'],
    ['star mixed with names', 'default: { headers: { response: [a, "*"] } }', 'default.headers.response[1]'],
    ['bad redact header', 'default: { redact: { headers: ["x:y"] } }', 'default.redact.headers[0]'],
    ['empty redact key', 'default: { redact: { jsonKeys: [""] } }', 'default.redact.jsonKeys[0]'],
    ['match missing', 'routes: [{ spans: false }]', 'routes[0].match'],
    ['match empty', 'routes: [{ match: {} }]', 'routes[0].match'],
    ['match with two kinds', 'routes: [{ match: { path: /a }}, { match: { path: /a, pathPrefix: /b } }]', 'routes[1].match'],
    ['only methods', 'routes: [{ match: { methods: [GET] } }]', 'routes[0].match'],
    ['path without slash', 'routes: [{ match: { path: healthz } }]', 'routes[0].match.path'],
    ['prefix without slash', 'routes: [{ match: { pathPrefix: static } }]', 'routes[0].match.pathPrefix'],
    ['template without slash', 'routes: [{ match: { pathTemplate: "books/:id" } }]', 'routes[0].match.pathTemplate'],
    ['template star in the middle', 'routes: [{ match: { pathTemplate: "/a/*/b" } }]', 'routes[0].match.pathTemplate'],
    ['template glob in a segment', 'routes: [{ match: { pathTemplate: "/a/*.png" } }]', 'routes[0].match.pathTemplate'],
    ['template unnamed param', 'routes: [{ match: { pathTemplate: "/a/:" } }]', 'routes[0].match.pathTemplate'],
    ['template duplicate param', 'routes: [{ match: { pathTemplate: "/a/:id/:id" } }]', 'routes[0].match.pathTemplate'],
    ['template empty segment', 'routes: [{ match: { pathTemplate: "/a//b" } }]', 'routes[0].match.pathTemplate'],
    ['template with query', 'routes: [{ match: { pathTemplate: "/a?b=1" } }]', 'routes[0].match.pathTemplate'],
    ['grpc without method', 'routes: [{ match: { grpc: "shop.Cart" } }]', 'routes[0].match.grpc'],
    ['grpc bad method', 'routes: [{ match: { grpc: "shop.Cart/Add-Item" } }]', 'routes[0].match.grpc'],
    ['bad method token', 'routes: [{ match: { path: /a, methods: [GET, "PO ST"] } }]', 'routes[0].match.methods[1]'],
    ['empty methods', 'routes: [{ match: { path: /a, methods: [] } }]', 'routes[0].match.methods'],
    ['methods not a list', 'routes: [{ match: { path: /a, methods: GET } }]', 'routes[0].match.methods'],
    ['error deep in a later route', `
routes:
  - match: { path: /a }
  - match: { path: /b }
  - match: { path: /c, methods: [GET, 7] }
`, 'routes[2].match.methods[1]'],
  ];
  it.each(cases)('%s → %s', (_name, text, path) => {
    let err: unknown;
    try {
      parsePolicy(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    const pe = err as PolicyError;
    expect(pe.path).toBe(path);
    expect(pe.code).toBe('ST_POLICY_INVALID');
    expect(pe.message).toContain(`at ${path || '(root)'}:`);
    expect(pe.message).not.toContain('\n');
  });

  it('YAML and JSON syntax errors say where, in one line', () => {
    for (const [text, where] of [
      ['a: [', 'line 1, column 5'],
      ['default:\n  sample: 1\n  sample: 2', 'line 3, column 3'],
      ['{"default": {"sample": 1', 'line 1'],
    ] as const) {
      expect(() => parsePolicy(text)).toThrow(PolicyError);
      try {
        parsePolicy(text);
      } catch (e) {
        expect((e as PolicyError).path).toBe('');
        expect((e as Error).message).toContain(where);
        expect((e as Error).message).not.toContain('\n');
      }
    }
  });

  it('an unresolved alias is a PolicyError, not a crash', () => {
    expect(() => parsePolicy('default: *nope')).toThrow(PolicyError);
  });

  it('reports how many other problems there are', () => {
    expect(() => parsePolicy('default: { sample: 2, spans: 1 }')).toThrow(/at default\.spans: .*\(and 1 more problem\)$/);
  });
});

describe('formatPath', () => {
  it.each([
    [[], ''],
    [['routes', 2, 'match', 'methods', 0], 'routes[2].match.methods[0]'],
    [['default', 'sample'], 'default.sample'],
    [['default', 'odd key'], 'default["odd key"]'],
  ] as Array<[PropertyKey[], string]>)('%j → %s', (path, expected) => {
    expect(formatPath(path)).toBe(expected);
  });
});
