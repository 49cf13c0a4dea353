// Header recording as semconv `http.{request,response}.{header,trailer}.<name>` string[]
// attributes: all values kept in order, secrets redacted, only the names the rule selects.
// The arrays are complete when record returns and never changed after: exchanges of one
// connection share them between spans of a repeated head (HeadMemo in exchange-impl.ts).

import { isRedactedHeader, REDACTED } from '../../policy/redact.js';
import type { CaptureRule, HeaderSelector } from '../../policy/types.js';
import type { RawHeaders } from '../exchange.js';
import type { AttributeBuilder } from './attributes.js';
import { internalize } from './intern.js';

interface Names {
  raw: string;
  lower: string;
  key: string;
  /** Whether `redactedBy` redacts this name: the same rule serves request after request. */
  redactedBy: CaptureRule | undefined;
  redacted: boolean;
}

/** Direct-mapped slots in front of the map, indexed by length and end characters (a power of 2). */
const SLOTS = 256;

/** Bound on distinct raw names cached per prefix, so odd clients cannot grow memory. */
const MAX_CACHED_NAMES = 2048;

/**
 * Attribute keys for one prefix. Every kept span records its headers, and the same few dozen
 * names recur: caching the lowercase name and the concatenated key per raw spelling saves two
 * string allocations per header.
 */
class HeaderRecorder {
  private readonly names = new Map<string, Names>();
  /**
   * Parsers hand over fresh strings, which a map must hash in full on every lookup; a slot needs
   * three characters and one comparison (~2x faster per header, measured).
   */
  private readonly slots: Array<Names | undefined> = new Array<Names | undefined>(SLOTS).fill(undefined);

  constructor(private readonly prefix: string) {}

  private namesFor(raw: string): Names {
    const len = raw.length;
    const slot = (len * 31 + raw.charCodeAt(0) * 7 + raw.charCodeAt(len - 1)) & (SLOTS - 1);
    const cached = this.slots[slot];
    if (cached !== undefined && cached.raw === raw) return cached;
    let n = this.names.get(raw);
    if (n === undefined) {
      if (this.names.size >= MAX_CACHED_NAMES) this.names.clear();
      const lower = raw.toLowerCase();
      const kept = internalize(raw);
      n = { raw: kept, lower, key: internalize(this.prefix + lower), redactedBy: undefined, redacted: false };
      this.names.set(kept, n);
    }
    this.slots[slot] = n;
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
