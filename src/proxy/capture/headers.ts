// Header recording as semconv `http.{request,response}.{header,trailer}.<name>` string[]
// attributes: all values kept in order, secrets redacted, only the names the rule selects.

import { isRedactedHeader, REDACTED } from '../../policy/redact.js';
import type { CaptureRule, HeaderSelector } from '../../policy/types.js';
import type { RawHeaders } from '../exchange.js';
import type { AttributeBuilder } from './attributes.js';
import { internalize } from './intern.js';

interface Names {
  lower: string;
  key: string;
  /** Whether `redactedBy` redacts this name: the same rule serves request after request. */
  redactedBy: CaptureRule | undefined;
  redacted: boolean;
}

/** Bound on distinct raw names cached per prefix, so odd clients cannot grow memory. */
const MAX_CACHED_NAMES = 2048;

/**
 * Attribute keys for one prefix. Every kept span records its headers, and the same few dozen
 * names recur: caching the lowercase name and the concatenated key per raw spelling saves two
 * string allocations per header.
 */
class HeaderRecorder {
  /**
   * By raw spelling, in a dictionary object rather than a Map: parsers hand over fresh strings,
   * mostly slices of the head's text, and comparing a slice with a cached name (a Map's key check,
   * or a direct-mapped slot's) is a runtime call, ~50 ns per header. A property lookup finds the
   * name through V8's string table instead, and turns the string it was given into a reference to
   * the table's copy, so the same string object is found by pointer next time (a parser that reuses
   * a repeated head's strings hands over the same ones); measured ~15 ns whatever the length.
   */
  private names: Record<string, Names> = Object.create(null) as Record<string, Names>;
  private count = 0;

  constructor(private readonly prefix: string) {}

  private namesFor(raw: string): Names {
    const cached = this.names[raw];
    if (cached !== undefined) return cached;
    if (this.count >= MAX_CACHED_NAMES) {
      this.names = Object.create(null) as Record<string, Names>;
      this.count = 0;
    }
    // toLowerCase may return `raw` itself, a slice of a whole head.
    const lower = internalize(raw.toLowerCase());
    const n: Names = { lower, key: internalize(this.prefix + lower), redactedBy: undefined, redacted: false };
    this.names[raw] = n;
    this.count++;
    return n;
  }

  record(attrs: AttributeBuilder, headers: RawHeaders, selector: HeaderSelector, rule: CaptureRule): void {
    // Keys under this prefix come only from this call, so a repeated name is looked for among them.
    const first = attrs.size;
    for (let i = 0; i < headers.length; i += 2) {
      const names = this.namesFor(headers[i]);
      const { lower, key } = names;
      if (lower.charCodeAt(0) === 58 /* : */) continue; // HTTP/2 pseudo-headers are recorded as url.* / status
      // grpc-status/grpc-message define the call's outcome, so they are kept whatever the selector.
      if (selector !== 'all' && !selector.has(lower) && lower !== 'grpc-status' && lower !== 'grpc-message') continue;
      if (names.redactedBy !== rule) {
        names.redacted = isRedactedHeader(rule, lower);
        names.redactedBy = rule;
      }
      const value = names.redacted ? REDACTED : headers[i + 1];
      const at = attrs.indexOf(key, first);
      if (at < 0) attrs.add(key, [value]);
      else (attrs.valueAt(at) as string[]).push(value);
    }
  }
}

export const requestHeaders = new HeaderRecorder('http.request.header.');
export const requestTrailers = new HeaderRecorder('http.request.trailer.');
export const responseHeaders = new HeaderRecorder('http.response.header.');
export const responseTrailers = new HeaderRecorder('http.response.trailer.');
