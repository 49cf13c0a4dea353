// Schemaless protobuf wire-format decoding, like `protoc --decode_raw`, so captured gRPC
// messages read as JSON keyed by field number without the service's .proto files.
//
// Rendering (a schema is what tells these apart, so the raw form is shown):
// - varint, fixed64 → unsigned integer: a number up to 2^53 - 1, else a decimal string.
//   Negative int32/int64 therefore show as 64-bit two's complement ("18446744073709551615"
//   for -1), sint32/sint64 as their zigzag encoding, bool/enum as integers.
// - fixed32 → unsigned integer. double/float/sfixed show as their raw unsigned bits.
// - length-delimited → a nested message if it parses fully as one and is plausible (see
//   lengthDelimited), else a string if it is printable UTF-8, else "bytes:<base64>".
//   Packed repeated scalars are therefore strings/bytes; an empty field is "".
// - a field seen more than once → an array, in wire order.
// - groups (wire types 3/4) → a nested message.
// Keys are field numbers, plus "error" (first invalid byte; what came before is kept) and
// "truncated" (output limit reached). Never throws.

import { isUtf8 } from 'node:buffer';

export type DecodedValue = number | string | DecodedMessage | DecodedValue[];
export interface DecodedMessage {
  [field: string]: DecodedValue;
}

export interface DecodeOptions {
  /** Nesting levels rendered as messages; deeper length-delimited fields render as strings/bytes. */
  maxDepth?: number;
  /** Bound on the length of JSON.stringify(result); long values are cut (ending in "…"). */
  maxOutput?: number;
}

const DEFAULT_MAX_DEPTH = 32;
export const DEFAULT_MAX_OUTPUT = 64 * 1024;
/** Smallest output bound honoured: room for the "error"/"truncated" note itself. */
export const MIN_OUTPUT = 256;
/** Budget kept back for the "error" or "truncated" key (their messages stay under this). */
const NOTE_RESERVE = 160;

const MAX_FIELD_NUMBER = 2 ** 29 - 1;
const TWO_32 = 2 ** 32;
/** hi words below this keep hi * 2^32 + lo within Number.MAX_SAFE_INTEGER. */
const SAFE_HI = 2 ** 21;
const ELLIPSIS = '…';
const BYTES_PREFIX = 'bytes:';
// C0 controls other than \t \n \r, DEL and C1 controls: their presence means "not text".
const NON_PRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

const NOT_TEXT = -1;
const NON_ASCII = -2;

const VARINT_TRUNCATED = -1;
const VARINT_TOO_LONG = -2;
const VARINT_OVERFLOW = -3;

/** Decodes `buf` as a protobuf message without a schema. Never throws. */
export function decodeProtobuf(buf: Buffer, opts: DecodeOptions = {}): DecodedMessage {
  const maxOutput = Math.max(opts.maxOutput ?? DEFAULT_MAX_OUTPUT, MIN_OUTPUT);
  const decoder = new WireDecoder(buf, Math.max(1, opts.maxDepth ?? DEFAULT_MAX_DEPTH), maxOutput - NOTE_RESERVE);
  const out: DecodedMessage = {};
  decoder.spend(2);
  decoder.message(0, buf.length, 0, 0, out);
  if (decoder.error !== undefined) out.error = decoder.error;
  else if (decoder.truncatedAt >= 0) {
    out.truncated = `output limit of ${maxOutput} chars reached at byte ${decoder.truncatedAt}`;
  }
  return out;
}

/** decodeProtobuf rendered as JSON of at most `maxLen` (≥ MIN_OUTPUT) characters. */
export function decodeProtobufToJson(buf: Buffer, maxLen: number = DEFAULT_MAX_OUTPUT): string {
  return JSON.stringify(decodeProtobuf(buf, { maxOutput: maxLen }));
}

/**
 * Hand-written rather than protobufjs's Reader: the Reader throws on every malformed or
 * truncated input (exceptions as control flow on a hot-ish path), yields 64-bit values as
 * Long objects, and does not report where decoding failed, which the output must say.
 */
class WireDecoder {
  /** Low and high 32 bits of the last varint read. */
  private lo = 0;
  private hi = 0;
  error: string | undefined;
  truncatedAt = -1;

  constructor(
    private readonly buf: Buffer,
    private readonly maxDepth: number,
    private budget: number,
  ) {}

  private get stopped(): boolean {
    return this.error !== undefined || this.truncatedAt >= 0;
  }

  /** Charges `n` output characters; false (and decoding stops) when they do not fit. */
  spend(n: number, at = 0): boolean {
    if (n > this.budget) {
      if (this.truncatedAt < 0) this.truncatedAt = at;
      this.budget = 0;
      return false;
    }
    this.budget -= n;
    return true;
  }

  /** Records the first error (decoding then stops) and returns `at` for the caller to return. */
  private fail(at: number, reason: string): number {
    if (this.error === undefined) this.error = `invalid protobuf at byte ${at}: ${reason}`;
    return at;
  }

  /** Reads a varint at `pos` into lo/hi; returns the position after it or a VARINT_* code. */
  private varint(pos: number, end: number): number {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) return VARINT_TRUNCATED;
      const b = buf[pos++];
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >> 4;
      } else if (i < 9) hi |= (b & 0x7f) << (7 * i - 32);
      else {
        if (b & 0x80) return VARINT_TOO_LONG;
        if (b > 1) return VARINT_OVERFLOW;
        hi |= b << 31;
      }
      if ((b & 0x80) === 0) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return pos;
      }
    }
    return VARINT_TOO_LONG;
  }

  private varintError(code: number): string {
    if (code === VARINT_TRUNCATED) return 'truncated varint';
    if (code === VARINT_TOO_LONG) return 'varint longer than 10 bytes';
    return 'varint overflows 64 bits';
  }

  private unsigned(lo: number, hi: number): number | string {
    if (hi === 0) return lo;
    if (hi < SAFE_HI) return hi * TWO_32 + lo;
    return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
  }

  /**
   * Decodes fields in [pos, end) into `into`. Inside a group (`group` = its field number) it
   * stops after the matching end-group and returns the position after it.
   */
  message(pos: number, end: number, depth: number, group: number, into: DecodedMessage): number {
    const buf = this.buf;
    while (pos < end && !this.stopped) {
      const at = pos;
      let p = this.varint(pos, end);
      if (p < 0) return this.fail(at, `tag: ${this.varintError(p)}`);
      if (this.hi !== 0 || this.lo >>> 3 > MAX_FIELD_NUMBER) return this.fail(at, 'field number above 2^29-1');
      const field = this.lo >>> 3;
      const wire = this.lo & 7;
      if (field === 0) return this.fail(at, 'field number 0');
      if (wire === 4) {
        if (field === group) return p;
        return this.fail(at, `end-group for field ${field} without matching start-group`);
      }
      if (!this.slot(into, field, at)) return end;
      let value: DecodedValue;
      switch (wire) {
        case 0: {
          const q = this.varint(p, end);
          if (q < 0) return this.fail(at, `field ${field}: ${this.varintError(q)}`);
          value = this.unsigned(this.lo, this.hi);
          p = q;
          break;
        }
        case 1:
          if (end - p < 8) return this.fail(at, `field ${field} (fixed64) needs 8 bytes, ${end - p} remain`);
          value = this.unsigned(buf.readUInt32LE(p), buf.readUInt32LE(p + 4));
          p += 8;
          break;
        case 5:
          if (end - p < 4) return this.fail(at, `field ${field} (fixed32) needs 4 bytes, ${end - p} remain`);
          value = buf.readUInt32LE(p);
          p += 4;
          break;
        case 2: {
          const q = this.varint(p, end);
          if (q < 0) return this.fail(at, `field ${field} length: ${this.varintError(q)}`);
          if (this.hi !== 0 || this.lo > end - q) {
            const len = this.unsigned(this.lo, this.hi);
            return this.fail(at, `field ${field} declares ${len} bytes, ${end - q} remain`);
          }
          p = q + this.lo;
          value = this.lengthDelimited(q, p, depth, at);
          break;
        }
        case 3: {
          if (depth + 1 >= this.maxDepth) return this.fail(at, `groups nested deeper than ${this.maxDepth}`);
          const inner: DecodedMessage = {};
          this.spend(2, at);
          p = this.message(p, end, depth + 1, field, inner);
          value = inner;
          break;
        }
        default:
          return this.fail(at, `invalid wire type ${wire} (field ${field})`);
      }
      if (wire !== 2 && wire !== 3 && !this.spend(jsonValueLength(value), at)) return end;
      add(into, field, value);
      pos = p;
    }
    if (group !== 0 && !this.stopped) this.fail(end, `group for field ${group} not closed`);
    return pos;
  }

  /** Charges the key, comma and (for a repeat) array brackets of a field about to be added. */
  private slot(into: DecodedMessage, field: number, at: number): boolean {
    const existing = into[field];
    if (existing === undefined) return this.spend(digits(field) + 4, at);
    return this.spend(Array.isArray(existing) ? 1 : 3, at);
  }

  /**
   * A length-delimited field is shown as a message when it parses fully as one and is not
   * better read as text. Printable text that also parses (short words often do: "hi" is
   * field 13 = 105) is taken as a message only when it starts with \t, \n or \r, which is the
   * tag of field 1 (the common first field) and rare at the start of real text.
   */
  private lengthDelimited(start: number, end: number, depth: number, at: number): DecodedValue {
    const buf = this.buf;
    const canNest = end > start && depth + 1 < this.maxDepth && this.parses(start, end, depth + 1);
    // A first byte below 0x20 is a control character or \t \n \r: a message either way.
    if (canNest && buf[start] < 0x20) return this.nested(start, end, depth, at);
    const ascii = asciiTextJsonLength(buf, start, end);
    if (ascii >= 0) return this.fitString(buf.toString('latin1', start, end), ascii, at);
    if (ascii === NON_ASCII) {
      const text = utf8Text(buf, start, end);
      if (text !== undefined) return this.fitString(text, jsonStringLength(text), at);
    }
    if (canNest) return this.nested(start, end, depth, at);
    return this.fitBytes(buf.subarray(start, end), at);
  }

  private nested(start: number, end: number, depth: number, at: number): DecodedMessage {
    const inner: DecodedMessage = {};
    if (this.spend(2, at)) this.message(start, end, depth + 1, 0, inner);
    return inner;
  }

  /** The whole string if it fits the budget, else the prefix that does, ending in "…". */
  private fitString(text: string, cost: number, at: number): string {
    if (cost <= this.budget) {
      this.budget -= cost;
      return text;
    }
    const room = this.budget - 3; // quotes and the ellipsis
    let n = 0;
    for (let used = 0; n < text.length; n++) {
      used += jsonCharLength(text.charCodeAt(n));
      if (used > room) break;
    }
    if (n > 0 && isHighSurrogate(text.charCodeAt(n - 1))) n--;
    this.spend(cost, at);
    return text.slice(0, n) + ELLIPSIS;
  }

  private fitBytes(bytes: Buffer, at: number): string {
    const cost = 2 + BYTES_PREFIX.length + 4 * Math.ceil(bytes.length / 3);
    if (cost <= this.budget) {
      this.budget -= cost;
      return BYTES_PREFIX + bytes.toString('base64');
    }
    const keep = Math.max(0, Math.floor((this.budget - 3 - BYTES_PREFIX.length) / 4) * 3);
    this.spend(cost, at);
    return BYTES_PREFIX + bytes.subarray(0, keep).toString('base64') + ELLIPSIS;
  }

  /** Whether [start, end) is structurally a complete message (no values built). */
  private parses(start: number, end: number, depth: number): boolean {
    let groups: number[] | undefined;
    let pos = start;
    while (pos < end) {
      let p = this.varint(pos, end);
      if (p < 0 || this.hi !== 0) return false;
      const field = this.lo >>> 3;
      const wire = this.lo & 7;
      if (field === 0 || field > MAX_FIELD_NUMBER) return false;
      switch (wire) {
        case 0:
          p = this.varint(p, end);
          if (p < 0) return false;
          break;
        case 1:
          p += 8;
          break;
        case 5:
          p += 4;
          break;
        case 2:
          p = this.varint(p, end);
          if (p < 0 || this.hi !== 0 || this.lo > end - p) return false;
          p += this.lo;
          break;
        case 3:
          groups ??= [];
          groups.push(field);
          if (depth + groups.length >= this.maxDepth) return false;
          break;
        case 4:
          if (groups === undefined || groups.pop() !== field) return false;
          break;
        default:
          return false;
      }
      if (p > end) return false;
      pos = p;
    }
    return groups === undefined || groups.length === 0;
  }
}

function add(into: DecodedMessage, field: number, value: DecodedValue): void {
  const existing = into[field];
  if (existing === undefined) into[field] = value;
  else if (Array.isArray(existing)) existing.push(value);
  else into[field] = [existing, value];
}

/**
 * JSON length of [start, end) as a string when it is printable ASCII, NOT_TEXT at the first
 * control byte, NON_ASCII at the first byte ≥ 0x80. Most fields are short ASCII or binary, and
 * this byte loop settles them without the allocations of a UTF-8 decode.
 */
function asciiTextJsonLength(buf: Buffer, start: number, end: number): number {
  let len = 2 + end - start;
  for (let i = start; i < end; i++) {
    const b = buf[i];
    if (b >= 0x20 && b < 0x7f) {
      if (b === 0x22 || b === 0x5c) len++;
    } else if (b === 0x09 || b === 0x0a || b === 0x0d) len++;
    else return b >= 0x80 ? NON_ASCII : NOT_TEXT;
  }
  return len;
}

function utf8Text(buf: Buffer, start: number, end: number): string | undefined {
  const bytes = buf.subarray(start, end);
  if (!isUtf8(bytes)) return undefined;
  const text = bytes.toString('utf8');
  return NON_PRINTABLE.test(text) ? undefined : text;
}

/** Decimal digits of a non-negative integer, without building its string. */
function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

function jsonValueLength(value: DecodedValue): number {
  return typeof value === 'number' ? digits(value) : jsonStringLength(value as string);
}

/** Length of JSON.stringify(s) for printable text (only ", \, \t, \n, \r get escaped). */
function jsonStringLength(s: string): number {
  let len = 2;
  for (let i = 0; i < s.length; i++) len += jsonCharLength(s.charCodeAt(i));
  return len;
}

function jsonCharLength(c: number): number {
  return c === 0x22 || c === 0x5c || c === 0x09 || c === 0x0a || c === 0x0d ? 2 : 1;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
