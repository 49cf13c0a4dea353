import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultPolicy, parsePolicy } from './parse.js';
import {
  BUILTIN_REDACT_BODY_KEYS,
  BUILTIN_REDACT_QUERY,
  isRedactedHeader,
  redactBody,
  redactForm,
  redactHeaderValue,
  redactJsonText,
  redactQuery,
} from './redact.js';

const rule = defaultPolicy().match({ method: 'GET', path: '/' }).rule;
const custom = parsePolicy(`
default:
  redact: { headers: [x-api-key], query: [session], jsonKeys: [pin], formFields: [otp] }
`).match({ method: 'GET', path: '/' }).rule;

describe('headers and gRPC metadata', () => {
  it.each([
    'authorization', 'proxy-authorization', 'cookie', 'set-cookie',
    'x-auth-bin', 'grpc-token-bin', 'my-secret-bin', 'api-key-bin', 'password-bin', 'x-credentials-bin', 'session-cookie-bin',
  ])('%s is always redacted', (name) => {
    expect(isRedactedHeader(rule, name)).toBe(true);
    expect(redactHeaderValue(rule, name, 'Bearer abc')).toBe('REDACTED');
  });

  it.each(['content-type', 'x-request-id', 'grpc-status-details-bin', 'trace-bin', 'x-token', 'x-api-key'])(
    '%s is kept by default',
    (name) => {
      expect(isRedactedHeader(rule, name)).toBe(false);
      expect(redactHeaderValue(rule, name, 'v')).toBe('v');
    },
  );

  it('policy headers add to the built-ins', () => {
    expect(redactHeaderValue(custom, 'x-api-key', 'k')).toBe('REDACTED');
    expect(redactHeaderValue(custom, 'cookie', 'c=1')).toBe('REDACTED');
  });
});

describe('redactQuery', () => {
  it.each([
    ['a=1&token=s3cr3t', 'a=1&token=REDACTED'],
    ['?a=1&token=s3cr3t', '?a=1&token=REDACTED'],
    ['TOKEN=x&Token=y&token=z', 'TOKEN=REDACTED&Token=REDACTED&token=REDACTED'],
    ['AWSAccessKeyId=AKIA&Signature=abc%2Bdef%3D&Expires=1', 'AWSAccessKeyId=REDACTED&Signature=REDACTED&Expires=1'],
    ['sig=1&X-Goog-Signature=2&x-goog-signature=3', 'sig=REDACTED&X-Goog-Signature=REDACTED&x-goog-signature=REDACTED'],
    ['password=a&passwd=b&access_token=c&refresh_token=d&api_key=e&apikey=f&secret=g&client_secret=h',
      'password=REDACTED&passwd=REDACTED&access_token=REDACTED&refresh_token=REDACTED&api_key=REDACTED&apikey=REDACTED&secret=REDACTED&client_secret=REDACTED'],
    // percent-encoded names are compared decoded; values are never re-encoded
    ['%74oken=abc&q=%E2%9C%93', '%74oken=REDACTED&q=%E2%9C%93'],
    ['api%5Fkey=1', 'api%5Fkey=REDACTED'],
    ['q=a+b&token=a%20b%26c', 'q=a+b&token=REDACTED'],
    // empty values and bare names have nothing to hide
    ['token=&token&a=1', 'token=&token&a=1'],
    ['a=token&b=password', 'a=token&b=password'],
    ['token==x', 'token=REDACTED'],
    ['&&token=x&&', '&&token=REDACTED&&'],
    ['', ''],
    ['%zz=1&token=2', '%zz=1&token=REDACTED'],
  ])('%s', (input, expected) => {
    expect(redactQuery(rule, input)).toBe(expected);
  });

  it('returns the input itself when nothing is secret', () => {
    const q = 'a=1&b=2';
    expect(redactQuery(rule, q)).toBe(q);
  });

  it('stays linear on a long run of separators without "="', () => {
    // Quadratic scanning would take tens of seconds here; linear takes about a millisecond.
    const text = '&'.repeat(200_000) + 'token=x';
    const t0 = performance.now();
    expect(redactForm(rule, text)).toBe('&'.repeat(200_000) + 'token=REDACTED');
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('uses the policy list', () => {
    expect(redactQuery(custom, 'session=1&token=2&x=3')).toBe('session=REDACTED&token=REDACTED&x=3');
  });

  // Names: a mix of secret names (in any case) and others, so both branches are exercised.
  const secretNames = [...BUILTIN_REDACT_QUERY, 'Token', 'PASSWORD', 'AWSAccessKeyId', '%74oken'];
  const name = fc.oneof(fc.constantFrom(...secretNames), fc.stringMatching(/^[A-Za-z0-9_.~%+-]{0,8}$/));
  const value = fc.stringMatching(/^[A-Za-z0-9_.~%+=-]{0,12}$/);
  const param = fc.oneof(fc.tuple(name, value).map(([n, v]) => `${n}=${v}`), name);
  const query = fc.array(param, { maxLength: 8 }).map((ps) => ps.join('&'));
  const isSecret = (n: string): boolean => {
    let d = n;
    try {
      d = decodeURIComponent(n.replaceAll('+', ' '));
    } catch {
      // undecodable names are compared as written
    }
    return rule.redact.query.has(n.toLowerCase()) || rule.redact.query.has(d.toLowerCase());
  };

  it('property: only values of redacted names change, and never leak', () => {
    fc.assert(
      fc.property(query, (q) => {
        const out = redactQuery(rule, q);
        const inParts = q.split('&');
        const outParts = out.split('&');
        expect(outParts.length).toBe(inParts.length);
        inParts.forEach((p, i) => {
          const o = outParts[i]!;
          const eq = p.indexOf('=');
          if (eq < 0 || eq === p.length - 1 || !isSecret(p.slice(0, eq))) {
            expect(o).toBe(p);
          } else {
            expect(o).toBe(`${p.slice(0, eq)}=REDACTED`);
          }
        });
      }),
      { numRuns: 500 },
    );
  });
});

/** The oracle for redactJsonText on valid JSON: the same rule applied to the parsed tree. */
function redactTree(keys: ReadonlySet<string>, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => redactTree(keys, v));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, keys.has(k) || keys.has(k.toLowerCase()) ? 'REDACTED' : redactTree(keys, v)]),
  );
}

describe('redactJsonText (whole documents)', () => {
  const keys = rule.redact.jsonKeys;
  it('replaces values of secret keys at any depth, case-insensitively', () => {
    const input = JSON.stringify({
      user: 'ann',
      Password: 'p1',
      nested: { deeper: [{ token: 't1', keep: 1 }, { ACCESS_TOKEN: { any: 'shape' } }] },
      list: [[{ client_secret: 's' }], 'token'],
      api_key: 42,
      apikey: null,
    });
    const out = redactJsonText(keys, input);
    expect(JSON.parse(out)).toEqual({
      user: 'ann',
      Password: 'REDACTED',
      nested: { deeper: [{ token: 'REDACTED', keep: 1 }, { ACCESS_TOKEN: 'REDACTED' }] },
      list: [[{ client_secret: 'REDACTED' }], 'token'],
      api_key: 'REDACTED',
      apikey: 'REDACTED',
    });
    for (const secret of ['p1', 't1', 'shape', '"s"', '42']) expect(out).not.toContain(secret);
  });

  it('every built-in key is redacted', () => {
    for (const k of BUILTIN_REDACT_BODY_KEYS) {
      expect(JSON.parse(redactJsonText(keys, JSON.stringify({ [k]: 'v', [k.toUpperCase()]: 'v' })))).toEqual({ [k]: 'REDACTED', [k.toUpperCase()]: 'REDACTED' });
    }
  });

  it('returns the text itself when nothing matches', () => {
    const text = '{ "a": 1.000000000000000000001 }';
    expect(redactJsonText(keys, text)).toBe(text);
  });

  it('uses the policy list', () => {
    expect(JSON.parse(redactJsonText(custom.redact.jsonKeys, '{"pin":"1234","password":"x"}'))).toEqual({ pin: 'REDACTED', password: 'REDACTED' });
  });

  it('copes with nesting deeper than the call stack', () => {
    const depth = 20000;
    const text = '['.repeat(depth) + '{"token":"deep"}' + ']'.repeat(depth);
    const out = redactJsonText(keys, text);
    expect(out).not.toContain('deep');
    expect(out).toContain('{"token":"REDACTED"}');
  });
});

describe('redactJsonText (bodies, possibly truncated)', () => {
  const keys = rule.redact.jsonKeys;
  it.each([
    ['{"a":1,"password":"x","b":2}', '{"a":1,"password":"REDACTED","b":2}'],
    ['{ "Token" :  "x\\"y" , "b":[1]}', '{ "Token" :  "REDACTED" , "b":[1]}'],
    ['{"secret":{"a":[1,{"b":"}"}]},"n":1}', '{"secret":"REDACTED","n":1}'],
    ['{"api_key":12345678901234567890123,"x":1.50}', '{"api_key":"REDACTED","x":1.50}'],
    ['{"apikey":true}', '{"apikey":"REDACTED"}'],
    ['[{"token":"a"},{"token":"b"}]', '[{"token":"REDACTED"},{"token":"REDACTED"}]'],
    ['{"note":"the token is \\"password\\": here","k":"password"}', '{"note":"the token is \\"password\\": here","k":"password"}'],
    ['{"pass\\u0077ord":"x"}', '{"pass\\u0077ord":"REDACTED"}'],
    // cut at the capture limit
    ['{"user":"a","password":"hunt', '{"user":"a","password":"REDACTED"'],
    ['{"user":"a","secret":{"x":[1,2', '{"user":"a","secret":"REDACTED"'],
    ['{"password":', '{"password":'],
    ['{"passw', '{"passw'],
    // NDJSON: several documents
    ['{"token":"1"}\n{"token":"2"}\n', '{"token":"REDACTED"}\n{"token":"REDACTED"}\n'],
  ])('%s', (input, expected) => {
    expect(redactJsonText(keys, input)).toBe(expected);
  });

  it('property: on valid JSON it agrees with redacting the parsed tree', () => {
    const key = fc.oneof(fc.constantFrom('password', 'Token', 'SECRET', 'x', 'y', 'tokens'), fc.string({ maxLength: 4 }));
    const leaf = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true }));
    const tree = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(key, tie('node'), { maxKeys: 4 })),
    })).node;
    fc.assert(
      fc.property(tree, fc.boolean(), (value, pretty) => {
        const text = JSON.stringify(value, null, pretty ? 2 : undefined);
        const lexical = redactJsonText(keys, text);
        expect(JSON.parse(lexical)).toEqual(redactTree(keys, JSON.parse(text)));
      }),
      { numRuns: 300 },
    );
  });
});

describe('redactForm and redactBody', () => {
  it('form fields', () => {
    expect(redactForm(rule, 'user=ann&password=hunter2&Passwd=x&token=a%26b')).toBe('user=ann&password=REDACTED&Passwd=REDACTED&token=REDACTED');
    expect(redactForm(custom, 'otp=123456&x=1')).toBe('otp=REDACTED&x=1');
    expect(redactForm(rule, 'user=ann&password=hun')).toBe('user=ann&password=REDACTED');
  });

  it.each([
    ['application/json', '{"password":"x"}', '{"password":"REDACTED"}'],
    ['Application/JSON; charset=utf-8', '{"password":"x"}', '{"password":"REDACTED"}'],
    ['application/vnd.api+json', '{"token":"x"}', '{"token":"REDACTED"}'],
    ['application/x-ndjson', '{"token":"x"}\n', '{"token":"REDACTED"}\n'],
    ['application/x-www-form-urlencoded', 'password=x&a=1', 'password=REDACTED&a=1'],
    ['application/x-www-form-urlencoded;charset=UTF-8', 'password=x', 'password=REDACTED'],
    ['text/plain', 'password=x', 'password=x'],
    ['application/octet-stream', '{"password":"x"}', '{"password":"x"}'],
    [undefined, '{"password":"x"}', '{"password":"x"}'],
  ] as Array<[string | undefined, string, string]>)('%s', (ct, text, expected) => {
    expect(redactBody(rule, ct, text)).toBe(expected);
  });
});
