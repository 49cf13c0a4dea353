import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRedactedHeader, REDACTED } from '../../policy/redact.js';
import { compilePolicy } from '../../policy/parse.js';
import type { CaptureRule, HeaderSelector } from '../../policy/types.js';
import type { Attributes } from '../../telemetry/span.js';
import { AttributeBuilder } from './attributes.js';
import { requestHeaders, responseTrailers } from './headers.js';

const RULE: CaptureRule = compilePolicy({}).match({ method: 'GET', path: '/' }).rule;

/** What recording means, written plainly: lowercase keys, values in order, secrets redacted. */
function oracle(prefix: string, headers: string[], selector: HeaderSelector, rule: CaptureRule): Attributes {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i].toLowerCase();
    if (lower.startsWith(':')) continue;
    if (selector !== 'all' && !selector.has(lower) && lower !== 'grpc-status' && lower !== 'grpc-message') continue;
    const key = prefix + lower;
    // Own keys only: '__proto__' and friends are header names like any other.
    if (!Object.prototype.hasOwnProperty.call(out, key)) Object.defineProperty(out, key, { value: [], enumerable: true, writable: true });
    out[key].push(isRedactedHeader(rule, lower) ? REDACTED : headers[i + 1]);
  }
  return out;
}

function recorded(recorder: typeof requestHeaders, headers: string[], selector: HeaderSelector): Attributes {
  const attrs = new AttributeBuilder();
  recorder.record(attrs, headers, selector, RULE);
  return attrs.finish();
}

// Names cut from a head's text, as parsers hand them over (slices, not literals), in any case,
// with names an object's prototype has and names of any length.
const NAMES = ['Host', 'User-Agent', 'Content-Length', 'Accept-Encoding', 'X-Forwarded-Proto', 'authorization', 'Cookie', ':path', 'grpc-status', '__proto__', 'constructor', 'toString', '0', 'x-token-bin'];
const name = fc.oneof(
  fc.tuple(fc.constantFrom(...NAMES), fc.array(fc.boolean(), { minLength: 20, maxLength: 20 })).map(([n, up]) => [...n].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join('')),
  fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/),
);
// Values mostly from a few, so that they repeat as real ones do.
const value = fc.oneof(fc.constantFrom('127.0.0.1:8080', 'nginx', 'fortio.org/fortio-1.69.1', '', 'x', 'Sat, 21 Nov 2026 17:00:00 GMT'), fc.string({ maxLength: 30 }));
const headerList = fc.array(fc.tuple(name, value), { maxLength: 12 }).map((pairs) => {
  const text = pairs.map(([n, v]) => `${n}: ${v}\r\n`).join('');
  const out: string[] = [];
  let at = 0;
  for (const [n, v] of pairs) {
    out.push(text.slice(at, at + n.length), text.slice(at + n.length + 2, at + n.length + 2 + v.length));
    at += n.length + v.length + 4;
  }
  return out;
});

describe('header recording', () => {
  it('records what the plain definition says, whatever names and values it met before', () => {
    fc.assert(
      fc.property(fc.array(headerList, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(3), { maxLength: 12 }), fc.boolean(), (lists, order, some) => {
        const selector: HeaderSelector = some ? new Set(['host', 'cookie', '__proto__', 'content-length']) : 'all';
        // Lists recur, as a connection's heads do.
        const sequence = [...lists, ...order.map((i) => lists[i % lists.length])];
        const results = sequence.map((headers) => recorded(requestHeaders, headers, selector));
        // Compared once all are recorded: an array changed by a later span would show.
        sequence.forEach((headers, i) => expect(results[i]).toEqual(oracle('http.request.header.', headers, selector, RULE)));
      }),
    );
  });

  it('keeps recording correctly once more names than it caches have been seen', () => {
    for (let i = 0; i < 5000; i++) {
      const headers = [`X-Name-${i}`, String(i), 'Host', 'h'];
      expect(recorded(responseTrailers, headers, 'all')).toEqual(oracle('http.response.trailer.', headers, 'all', RULE));
    }
  });
});
