// W3C Trace Context (traceparent / tracestate) parsing and formatting, per
// https://www.w3.org/TR/trace-context/ ; lenient on future versions, strict on version 00.

export interface TraceParent {
  traceId: string;
  parentId: string;
  /** The trace-flags byte; bit 0 is `sampled`. */
  flags: number;
}

const TRACEPARENT_LEN = 55; // 2 + 1 + 32 + 1 + 16 + 1 + 2

/** Lowercase hex digit value, or -1 (uppercase hex is invalid in traceparent). */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** True when s[start, end) is lowercase hex and not all zeros (the rule for W3C and B3 ids). */
export function isNonZeroHex(s: string, start: number, end: number): boolean {
  let nonZero = false;
  for (let i = start; i < end; i++) {
    const v = hexValue(s.charCodeAt(i));
    if (v < 0) return false;
    if (v !== 0) nonZero = true;
  }
  return nonZero;
}

/** Parses one traceparent value; undefined when invalid (the caller then starts a new trace). */
export function parseTraceparent(raw: string): TraceParent | undefined {
  const value = trimOws(raw);
  if (value.length < TRACEPARENT_LEN) return undefined;
  const v0 = hexValue(value.charCodeAt(0));
  const v1 = hexValue(value.charCodeAt(1));
  if (v0 < 0 || v1 < 0) return undefined;
  const version = v0 * 16 + v1;
  if (version === 0xff) return undefined;
  // Version 00 is exactly 55 chars; a future version may append fields after a '-'.
  if (version === 0 ? value.length !== TRACEPARENT_LEN : value.length > TRACEPARENT_LEN && value.charCodeAt(TRACEPARENT_LEN) !== 45) {
    return undefined;
  }
  if (value.charCodeAt(2) !== 45 || value.charCodeAt(35) !== 45 || value.charCodeAt(52) !== 45) return undefined;
  if (!isNonZeroHex(value, 3, 35) || !isNonZeroHex(value, 36, 52)) return undefined;
  const f0 = hexValue(value.charCodeAt(53));
  const f1 = hexValue(value.charCodeAt(54));
  if (f0 < 0 || f1 < 0) return undefined;
  return { traceId: value.slice(3, 35), parentId: value.slice(36, 52), flags: f0 * 16 + f1 };
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

const MAX_TRACESTATE_MEMBERS = 32;
/** Same bound as OpenTelemetry JS: a longer header is discarded whole rather than cut. */
const MAX_TRACESTATE_LEN = 512;
const SIMPLE_KEY = /^[a-z][a-z0-9_\-*/]{0,255}$/;
const MULTI_TENANT_KEY = /^[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}$/;
// value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-7E except ',' and '='.
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * Validates a tracestate (multiple header values already joined with ',') like OpenTelemetry
 * JS: invalid list members are dropped, duplicates keep the first (leftmost, most recent)
 * entry, at most 32 members survive, and an over-long header is discarded.
 * Returns the normalized header, or undefined when nothing valid remains.
 */
export function parseTracestate(raw: string): string | undefined {
  if (raw.length > MAX_TRACESTATE_LEN) return undefined;
  const members = raw.split(',');
  const out: string[] = [];
  const keys = new Set<string>();
  for (const m of members) {
    if (out.length === MAX_TRACESTATE_MEMBERS) break;
    const member = trimOws(m);
    if (member === '') continue; // empty list members are allowed and ignored
    const eq = member.indexOf('=');
    if (eq <= 0) continue;
    const key = member.slice(0, eq);
    const value = member.slice(eq + 1);
    if (!(SIMPLE_KEY.test(key) || MULTI_TENANT_KEY.test(key)) || !VALUE.test(value)) continue;
    if (keys.has(key)) continue;
    keys.add(key);
    out.push(member);
  }
  return out.length === 0 ? undefined : out.join(',');
}

/** Strips optional whitespace (space / tab) as HTTP list syntax allows. */
function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 32 || s.charCodeAt(start) === 9)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}
