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
  /** One-value arrays of values seen again, by value (see valueArray). */
  arrays: Record<string, readonly string[]> | undefined;
  kept: number;
  /** Fingerprint of the last value not found among them. */
  missed: number;
}

/**
 * Most headers repeat their value span after span (a client's Host and User-Agent, a server's
 * Server and Content-Type), and each value is recorded as a one-element array: a frozen array per
 * repeating value serves every span, where a new one per header per span was the largest
 * allocation of span building. Found by a property lookup, as names are (namesFor), for the same
 * reason: a parser's values are slices, and comparing them is slow. A value is kept on its second
 * sighting in a row (by fingerprint, so per-request values such as request ids are never kept),
 * as the string table's copy, which keeps no head text alive.
 */
const MAX_KEPT_VALUES = 8;
/** Longer values are not kept: bounds what the caches hold. */
const MAX_KEPT_VALUE_LENGTH = 256;

/** Length and three characters: values of one header mostly differ in one of them. */
function fingerprint(v: string): number {
  const len = v.length;
  return len === 0 ? 0 : (len * 31 + v.charCodeAt(0)) * 961 + v.charCodeAt(len >> 1) * 31 + v.charCodeAt(len - 1);
}

/** `[value]`, frozen and shared while `value` repeats under these names. */
function valueArray(names: Names, value: string): readonly string[] {
  const arrays = names.arrays;
  if (arrays !== undefined) {
    const kept = arrays[value];
    if (kept !== undefined) return kept;
  }
  if (value.length > MAX_KEPT_VALUE_LENGTH) return [value];
  const fp = fingerprint(value);
  if (fp !== names.missed) {
    names.missed = fp;
    return [value];
  }
  if (arrays === undefined || names.kept >= MAX_KEPT_VALUES) {
    names.arrays = Object.create(null) as Record<string, readonly string[]>;
    names.kept = 0;
  }
  const own = internalize(value);
  const array = Object.freeze([own]);
  names.arrays![own] = array;
  names.kept++;
  return array;
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
    const n: Names = { lower, key: internalize(this.prefix + lower), redactedBy: undefined, redacted: false, arrays: undefined, kept: 0, missed: -1 };
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
      // A repeated name extends a copy: the array recorded first may be a shared one.
      if (at < 0) attrs.add(key, valueArray(names, value) as string[]);
      else attrs.setValueAt(at, [...(attrs.valueAt(at) as string[]), value]);
    }
  }
}

export const requestHeaders = new HeaderRecorder('http.request.header.');
export const requestTrailers = new HeaderRecorder('http.request.trailer.');
export const responseHeaders = new HeaderRecorder('http.response.header.');
export const responseTrailers = new HeaderRecorder('http.response.trailer.');
