// SpanRecord[] → ExportTraceServiceRequest protobuf bytes, for the official OTLP gRPC transport.
// Hand-written rather than otlp-transformer's ProtobufTraceSerializer because that one needs SDK
// ReadableSpans (an object graph per span built just to be read once), sizes every message twice
// (estimator pass + writer pass) and copies strings char by char; at saturation it was ~40% of
// the proxy's busy time. This writes each batch in one pass into a reused buffer (long strings
// such as bodies with Buffer#write, short ones in JS), resource and scope pre-encoded once, ids
// straight from hex (or from the id pool's bytes when just issued), attributes that repeat
// earlier spans' copied as the bytes those made. The output is byte for byte what the official
// serializer emits for the same spans (otlp-serializer.test.ts checks that, and the decoded
// fields, on random batches).

import { ProtobufTraceSerializer, type IExportTraceServiceResponse, type ISerializer } from '@opentelemetry/otlp-transformer';
import { issuedSpanId, issuedTraceId } from './issued-ids.js';
import type { AttrValue, Attributes, SpanRecord, SpanResource } from './span.js';

export interface InstrumentationScopeInfo {
  name: string;
  version?: string;
}

// Span.flags bits (OTLP trace.proto SpanFlags): the context's remoteness is known, and remote.
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;
const SAMPLED = 1;

const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;
const TWO_32 = 0x100000000;

// Span lengths usually need 2 varint bytes (128 B .. 16 KiB); events 1. A wrong guess costs one
// copyWithin of that message, not a second sizing pass over everything.
const SPAN_LEN_GUESS = 2;
const EVENT_LEN_GUESS = 1;
// The outermost two lengths (ResourceSpans, ScopeSpans) are written last, right before the spans.
const MAX_VARINT32 = 5;

// The scratch buffer is shared by all serializers: serializeRequest is synchronous and never
// re-entered, and each result is copied out, so one buffer (grown to the largest batch) serves all.
let buf: Buffer = Buffer.allocUnsafe(64 * 1024);
let pos = 0;

// encodeSpan writes spans one after another into a slab. A new slab is started when the room left
// is less than four times the last span (spans of a process are alike in size, and a string is
// given room for 3 UTF-8 bytes per unit before it is known to be ASCII), so a span rarely outgrows
// its slab (ensure() then moves the slab to a bigger copy). Each slab counts the spans in it not
// yet released (serialized into a request, or dropped: releaseEncoded); at 0, once encodeSpan
// has moved on, the slab is reused: a fresh one would cost page faults on first touch and,
// counted as external memory, push V8 into more major GCs.
const SLAB_SIZE = 256 * 1024;
const SLAB_MIN_ROOM = 4 * 1024;
const SPARE_SLABS = 4;
// Requests from serializeEncoded are reused the same way once their export has finished.
const SPARE_REQUESTS = 2;

// Bytes values this big (binary bodies: a copy the exchange made, or a view it detached that
// fills at least half of its buffer, so keeping it pins at most about twice its size) are not
// copied by encodeSpan: the encoded span is the slab's bytes around them and the
// values themselves, joined when the batch is serialized. Positions in `buf` where each goes:
export const REFERENCE_MIN_BYTES = 2048;
let referencing = false;
const refAt: number[] = [];
const refBytes: Uint8Array[] = [];
let refTotal = 0;

/**
 * A span from encodeSpan: a small integer naming its bytes in the serializer's tables (which slab,
 * where, which resource), valid until releaseEncoded. Not an object: the export queue holds spans
 * for 50-300 ms, long enough to survive scavenges, and an object per span (a view, a resource
 * pair) would be copied by each and then promoted, feeding old-generation collections.
 */
export type EncodedSpan = number;

/** Bytes values an encoded span references instead of holding (see REFERENCE_MIN_BYTES); rare. */
interface References {
  /** Where each goes: offsets in the span's slab, ascending. */
  readonly at: number[];
  readonly bytes: Uint8Array[];
  readonly total: number;
}

/** A stack of free small integers 0 .. capacity - 1 (ids of slots in typed-array tables). */
class IdPool {
  private free: Int32Array;
  private count: number;

  constructor(capacity: number) {
    this.free = new Int32Array(capacity);
    this.count = 0;
    this.addIds(0, capacity);
  }

  /** Ids in use. */
  get used(): number {
    return this.free.length - this.count;
  }

  /** A free id; -1 when all are taken (the caller grows its tables with grow()). */
  take(): number {
    return this.count === 0 ? -1 : this.free[--this.count];
  }

  give(id: number): void {
    this.free[this.count++] = id;
  }

  /** Doubles the capacity; returns it. */
  grow(): number {
    const old = this.free.length;
    const next = new Int32Array(2 * old);
    next.set(this.free.subarray(0, this.count));
    this.free = next;
    this.addIds(old, 2 * old);
    return 2 * old;
  }

  /** Lowest ids taken first. */
  private addIds(from: number, to: number): void {
    for (let id = to - 1; id >= from; id--) this.free[this.count++] = id;
  }
}

function grown(a: Int32Array, capacity: number): Int32Array {
  const next = new Int32Array(capacity);
  next.set(a);
  return next;
}

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const next = Buffer.allocUnsafe(size);
  buf.copy(next, 0, 0, pos);
  // The lists kept intact are at the same offsets in the copy.
  if (intactBuf === buf) intactBuf = next;
  buf = next;
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Unsigned 32-bit varint; the caller has ensured room. */
function putVarint32(v: number): void {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
}

/** int64 varint of an integral double, two's complement when negative (as the official writer). */
function putVarint64(value: number): void {
  if (value >= 0 && value < TWO_32) return putVarint32(value);
  let low: number;
  let high: number;
  if (value >= 0) {
    low = value >>> 0;
    high = (value / TWO_32) >>> 0;
  } else {
    const abs = -value;
    low = ~(abs >>> 0) >>> 0;
    high = ~((abs / TWO_32) >>> 0) >>> 0;
    low = (low + 1) >>> 0;
    if (low === 0) high = (high + 1) >>> 0;
  }
  while (high > 0 || low > 0x7f) {
    buf[pos++] = (low & 0x7f) | 0x80;
    low = ((low >>> 7) | (high << 25)) >>> 0;
    high >>>= 7;
  }
  buf[pos++] = low;
}

function putFixed32(v: number): void {
  buf[pos++] = v & 0xff;
  buf[pos++] = (v >>> 8) & 0xff;
  buf[pos++] = (v >>> 16) & 0xff;
  buf[pos++] = (v >>> 24) & 0xff;
}

/**
 * Fractional epoch ms → fixed64 nanoseconds, rounded to the µs nowMs() resolves. Whole µs since
 * the epoch are exact in a double; ns are not (> 2^53), so the ×1000 is done in two 32-bit halves.
 */
function putTimeMs(ms: number): void {
  const us = Math.round(ms * 1000);
  const usHigh = Math.floor(us / TWO_32);
  const lowProduct = (us >>> 0) * 1000;
  putFixed32(lowProduct >>> 0);
  putFixed32((usHigh * 1000 + Math.floor(lowProduct / TWO_32)) >>> 0);
}

// Hex digit → value; ids are validated lowercase hex, uppercase costs nothing extra to accept.
const HEX = new Int8Array(128).fill(0);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[97 + i] = HEX[65 + i] = 10 + i;

/**
 * Length-delimited bytes decoded from a hex id (no intermediate Uint8Array), or copied from where
 * the id was issued when it is the last one issued (issued-ids.ts).
 */
function putHexField(tag: number, hex: string): void {
  const n = hex.length >>> 1;
  ensure(2 + n);
  // buf and pos are module variables: in locals, the loop keeps them in registers.
  const b = buf;
  let at = pos;
  b[at++] = tag;
  b[at++] = n;
  const issued = n === 16 ? issuedTraceId : issuedSpanId;
  const known = issued.hex;
  // Another id of the same length is compared char by char in a runtime call; one char first
  // tells most apart (a span of an earlier request, an id from a header) for the price of two
  // loads. The same string (or an equal one: same bytes) is copied.
  if (hex.charCodeAt(1) === known.charCodeAt(1) && hex === known) {
    const from = issued.bytes;
    for (let i = 0, j = issued.at; i < n; i++) b[at++] = from[j++];
  } else {
    for (let i = 0; i < n; i++) b[at++] = (HEX[hex.charCodeAt(2 * i) & 0x7f] << 4) | HEX[hex.charCodeAt(2 * i + 1) & 0x7f];
  }
  pos = at;
}

// Below this many UTF-16 units a JS loop beats a call into C++ (Buffer.byteLength, Buffer#write);
// most attribute keys and values are this short, bodies are not.
const SHORT_STRING = 48;

/** UTF-8 length of `s`, lone surrogates counted as the U+FFFD they are written as. */
function utf8Length(s: string): number {
  const len = s.length;
  if (len > SHORT_STRING) return Buffer.byteLength(s, 'utf8');
  let n = len;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a surrogate pair: 2 units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}

/** Writes a string of known UTF-8 length `n` (no length prefix); the caller has ensured room. */
function putStringBytes(s: string, n: number): void {
  const len = s.length;
  if (n === len) {
    if (len <= SHORT_STRING) {
      for (let i = 0; i < len; i++) buf[pos++] = s.charCodeAt(i);
      return;
    }
    buf.write(s, pos, n, 'latin1');
  } else buf.write(s, pos, n, 'utf8');
  pos += n;
}

/** tag, length, UTF-8 bytes. `tag` must be a one-byte tag (field < 16). */
function putStringField(tag: number, s: string): void {
  const n = utf8Length(s);
  ensure(1 + MAX_VARINT32 + n);
  buf[pos++] = tag;
  putVarint32(n);
  putStringBytes(s, n);
}

/** Encoded size of an AnyValue's content (without its own tag and length). */
function anyValueSize(v: unknown): number {
  switch (typeof v) {
    case 'string': {
      const n = utf8Length(v);
      return 1 + varintSize(n) + n;
    }
    case 'boolean':
      return 2;
    case 'number':
      return Number.isInteger(v) && v >= MIN_INT64 && v < MAX_INT64 ? 1 + int64Size(v) : 9;
    default:
      if (v instanceof Uint8Array) return 1 + varintSize(v.byteLength) + v.byteLength;
      if (Array.isArray(v)) {
        const n = arrayContentSize(v);
        return 1 + varintSize(n) + n;
      }
      // The official writer writes nothing for values it does not know (undefined, null, ...).
      return 0;
  }
}

function int64Size(v: number): number {
  if (v < 0) return 10;
  if (v < TWO_32) return varintSize(v);
  let n = 5;
  for (let x = Math.floor(v / 2 ** 35); x > 0; x = Math.floor(x / 128)) n++;
  return n;
}

function arrayContentSize(arr: unknown[]): number {
  let n = 0;
  for (let i = 0; i < arr.length; i++) {
    const s = anyValueSize(arr[i]);
    n += 1 + varintSize(s) + s;
  }
  return n;
}

/** Content length of a length-delimited field whose whole size (tag, length, content) is `size`. */
function contentLength(size: number): number {
  let n = size - 2;
  while (1 + varintSize(n) + n !== size) n--;
  return n;
}

/** Whether a bytes value of `n` bytes is referenced rather than copied into the slab now. */
function isReferenced(n: number): boolean {
  return referencing && n >= REFERENCE_MIN_BYTES;
}

/** AnyValue.bytes_value of `v` (`n` bytes long), copied or referenced; room ensured by the caller. */
function putBytesValue(v: Uint8Array, n: number): void {
  buf[pos++] = 0x3a; // bytes_value = 7
  putVarint32(n);
  if (isReferenced(n)) {
    refAt.push(pos);
    refBytes.push(v);
    refTotal += n;
  } else {
    buf.set(v, pos);
    pos += n;
  }
}

/** AnyValue content of `size` bytes (from anyValueSize), room already ensured by the caller. */
function putAnyValue(v: unknown, size: number): void {
  switch (typeof v) {
    case 'string': {
      const n = utf8Length(v);
      buf[pos++] = 0x0a; // string_value = 1
      putVarint32(n);
      putStringBytes(v, n);
      return;
    }
    case 'boolean':
      buf[pos++] = 0x10; // bool_value = 2
      buf[pos++] = v ? 1 : 0;
      return;
    case 'number':
      if (Number.isInteger(v) && v >= MIN_INT64 && v < MAX_INT64) {
        buf[pos++] = 0x18; // int_value = 3
        putVarint64(v);
      } else {
        buf[pos++] = 0x21; // double_value = 4
        buf.writeDoubleLE(v, pos);
        pos += 8;
      }
      return;
    default:
      if (v instanceof Uint8Array) putBytesValue(v, v.byteLength);
      else if (Array.isArray(v)) {
        buf[pos++] = 0x2a; // array_value = 5
        putVarint32(contentLength(size));
        for (let i = 0; i < v.length; i++) {
          const item = v[i] as unknown;
          const itemSize = anyValueSize(item);
          buf[pos++] = 0x0a; // ArrayValue.values = 1
          putVarint32(itemSize);
          putAnyValue(item, itemSize);
        }
      }
  }
}

// Attribute keys repeat span after span (a few dozen semantic-convention and header names), and
// so do most of their values (a connection's addresses, the method, most header values). So each
// key has a memo: its encoded KeyValue.key field (tag, length, UTF-8), copied instead of being
// sized and copied char by char per span, and the last value written under it with the KeyValue
// it made: when a later span has the same value, that KeyValue is copied instead of being sized
// and encoded again. A busy agent gets spans from many connections and both sides in turn, so a
// key whose value keeps changing (a port: 16 connections' in turn, or the client's then the
// server's) gets WIDE_SLOTS values, each in the slot a hash of it picks. Keys come from for-in,
// so they are internalized strings with a cached hash: a lookup is cheap. Header names are chosen
// by clients, so the memos are bounded: they start over when full, overlong keys are not kept,
// and at most MAX_WIDE_KEYS keys have more than one value slot.
const KEY_CACHE_MAX = 2048;
const KEY_CACHE_MAX_LENGTH = 256;
// KeyValues are memoised up to this many bytes, for strings, numbers, booleans and arrays of up
// to MEMO_MAX_ITEMS strings (header values); bytes are not (comparing them costs about what
// copying them does). A slot holds a KeyValue of at most this size and a value of at most twice
// it in memory (UTF-16), so memos hold at most (KEY_CACHE_MAX + MAX_WIDE_KEYS * WIDE_SLOTS) *
// 3 * MEMO_MAX_BYTES = 3 MiB, plus each kept key's encoded key field (at most KEY_CACHE_MAX of
// KEY_CACHE_MAX_LENGTH UTF-16 units: ~1.5 MiB) and object headers.
const MEMO_MAX_BYTES = 256;
const MEMO_MAX_ITEMS = 4;
// A key whose memoised value was replaced MEMO_MAX_MISSES times in a row gets WIDE_SLOTS slots
// (while fewer than MAX_WIDE_KEYS keys have them); a key with them whose values still keep
// replacing each other (a timestamp, a request id) is not memoised for its next MEMO_PAUSE
// values: keeping them would cost a copy each and save nothing.
const MEMO_MAX_MISSES = 4;
const MEMO_PAUSE = 64;
const WIDE_SLOTS = 32;
const WIDE_SHIFT = 27; // 32 - log2(WIDE_SLOTS): the top bits of a multiplicative hash
const MAX_WIDE_KEYS = 64;
const NO_KEY_VALUE = new Uint8Array(0);

/** One value memoised under a key. */
class ValueMemo {
  /** The KeyValue written for it, less its tag. */
  keyValue: Uint8Array = NO_KEY_VALUE;
  /** The string, number or boolean, or `items` for an array of strings. */
  value: unknown = undefined;
  /** The items of the array value, copied: the caller's array is not ours to keep. */
  readonly items: string[] = [];
  /** The span attribute list (lists' count) that last wrote this KeyValue in a slab, and where
   * (its tag); list 0: not in one. */
  list = 0;
  at = 0;
}

class KeyMemo {
  /** KeyValue.key = 1, tag and length included. */
  readonly field: Buffer;
  /** One slot, or WIDE_SLOTS indexed by slotOf; undefined: empty. */
  slots: (ValueMemo | undefined)[] = [undefined];
  /** Memoised values replaced in a row. */
  misses = 0;
  /** Values left to write without memoising them (see MEMO_PAUSE). */
  paused = 0;
  /** The key that followed this one in the last list that had it, and its memo. */
  nextKey: string | undefined = undefined;
  nextMemo: KeyMemo | undefined = undefined;

  constructor(key: string) {
    const n = Buffer.byteLength(key, 'utf8');
    const field = Buffer.allocUnsafe(1 + varintSize(n) + n);
    field[0] = 0x0a; // KeyValue.key = 1
    let at = 1;
    for (let v = n; ; v >>>= 7) {
      if (v < 0x80) {
        field[at++] = v;
        break;
      }
      field[at++] = (v & 0x7f) | 0x80;
    }
    field.write(key, at, n, 'utf8');
    this.field = field;
  }
}

/**
 * The slot of a wide memo for `v`: a multiplicative hash (its top bits) of the number, or of a
 * string's length and last and middle chars (a port, an address, a date differ there), so values
 * in a row (ports a connection apart) land in different slots. Cheap, not collision-free: a
 * collision costs a memo miss, never a wrong KeyValue (isMemoised compares the value).
 */
function slotOf(v: AttrValue): number {
  let h: number;
  if (typeof v === 'number') h = v | 0;
  else if (typeof v === 'string') h = stringHash(v);
  else if (Array.isArray(v)) h = v.length + (typeof v[0] === 'string' ? stringHash(v[0]) : 0);
  else h = v === true ? 1 : 0;
  return Math.imul(h, 0x9e3779b1) >>> WIDE_SHIFT;
}

function stringHash(s: string): number {
  const len = s.length;
  return len === 0 ? 0 : (len << 16) ^ (s.charCodeAt(len - 1) << 8) ^ s.charCodeAt(len >>> 1);
}

let wideKeys = 0;

// Attribute lists mostly list the same keys in the same order (those of one producer: a client
// span's, a server span's), so a key is first compared with the one that followed the previous
// key last time (internalized strings: by pointer), which is cheaper than a Map lookup. A list's
// first key is the one that followed FIRST_KEY.
const FIRST_KEY = new KeyMemo('');

const keyMemos = new Map<string, KeyMemo>();

function keyMemo(key: string): KeyMemo {
  let memo = keyMemos.get(key);
  if (memo !== undefined) return memo;
  memo = new KeyMemo(key);
  if (key.length <= KEY_CACHE_MAX_LENGTH) {
    if (keyMemos.size >= KEY_CACHE_MAX) {
      // Links from memos kept would keep the others alive.
      for (const m of keyMemos.values()) m.nextKey = m.nextMemo = undefined;
      FIRST_KEY.nextKey = FIRST_KEY.nextMemo = undefined;
      keyMemos.clear();
      wideKeys = 0;
      forgetListMemos();
    }
    keyMemos.set(key, memo);
  }
  return memo;
}

// In encodeSpan, KeyValues that repeat ones still intact in the slab are copied from there, a run
// at a time with one copyWithin, rather than memo by memo: copying a memo is a TypedArray#set
// call, which costs as much as copying a few dozen bytes, and most of a span's KeyValues sit in
// the same order in the last span of its kind (a client span's, a server span's), whichever
// spans came between. A value's memo says where its KeyValue was last written (ValueMemo.list,
// .at); the span attribute lists from intactFrom on, in intactBuf, are where they were written:
// a slab is written once, front to back, and only with encodeSpan, so they stay put but for what
// resets intactFrom (a span that failed and is written over, a span moved by endLength, another
// slab). ensure() keeps them when it moves the slab to a bigger copy (same offsets). The scratch
// buffer is written over by every request, so nothing written there is copied.
let lists = 0;
let intactBuf: Buffer | undefined;
let intactFrom = 1;
const SPAN_ATTRIBUTES = 0x4a; // Span.attributes = 9: the tag of the KeyValues copied

/** No list written so far is where its memos say any more. */
function forgetLastList(): void {
  intactFrom = lists + 1;
}

/**
 * Whether `v` is the value whose KeyValue `slot` holds. Compared by type: one `===` for values of
 * every type would be a call to V8's generic StrictEqual; each of these compiles to a pointer or
 * number compare (strings: then a string compare, see thin()).
 */
function isMemoised(slot: ValueMemo, v: AttrValue): boolean {
  const memo = slot.value;
  if (typeof v === 'string') {
    if (typeof memo !== 'string' || v !== memo) return false;
    thin(v);
    return true;
  }
  if (typeof v === 'number') return typeof memo === 'number' && v === memo;
  if (typeof v === 'boolean') return v === memo;
  // An array memo is always `items`, a copy of strings.
  if (!Array.isArray(v) || !Array.isArray(memo)) return false;
  const items = slot.items;
  if (v.length !== items.length) return false;
  for (let i = 0; i < items.length; i++) {
    const item = v[i] as unknown;
    if (typeof item !== 'string' || item !== items[i]) return false;
    thin(item);
  }
  return true;
}

/**
 * Keeps the KeyValue of `v` just written at `start` (its tag) .. pos in its slot of `memo`
 * (`slot`: what that slot holds, if anything), if worth it; `list`: as ValueMemo.list.
 */
function memoise(memo: KeyMemo, slot: ValueMemo | undefined, v: AttrValue, start: number, list: number): void {
  if (memo.paused > 0) {
    memo.paused--;
    return;
  }
  const n = pos - start - 1;
  if (n > MEMO_MAX_BYTES || !isMemoisable(v)) return;
  if (slot !== undefined && ++memo.misses >= MEMO_MAX_MISSES) {
    memo.misses = 0;
    if (memo.slots.length === 1 && wideKeys < MAX_WIDE_KEYS) {
      wideKeys++;
      memo.slots = new Array<ValueMemo | undefined>(WIDE_SLOTS).fill(undefined);
    } else {
      memo.paused = MEMO_PAUSE;
      return forget(memo);
    }
    slot = undefined;
  }
  if (slot === undefined) slot = memo.slots[memo.slots.length === 1 ? 0 : slotOf(v)] = new ValueMemo();
  if (typeof v === 'string') slot.value = ownString(v);
  else if (!Array.isArray(v)) slot.value = v;
  else {
    const items = slot.items;
    items.length = 0;
    for (let i = 0; i < v.length; i++) items.push(ownString(v[i] as string));
    slot.value = items;
  }
  // Values of a key mostly keep their size (a port, a date), so the memo's array is mostly reused.
  let kv = slot.keyValue;
  if (kv.length !== n) kv = slot.keyValue = new Uint8Array(n);
  for (let i = 0, from = start + 1; i < n; i++) kv[i] = buf[from + i];
  slot.list = list;
  slot.at = start;
}

/** Strings, numbers, booleans and arrays of up to MEMO_MAX_ITEMS strings. */
function isMemoisable(v: AttrValue): boolean {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return true;
  if (!Array.isArray(v) || v.length > MEMO_MAX_ITEMS) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}

// V8 makes a slice of this many chars or more a view of the string it was sliced from.
const MIN_SLICE = 13;

/**
 * `s` internalized: a string that keeps nothing else alive (header values are slices of their
 * whole head, up to 64 KiB, which a memo holding one would keep) and that thin() can point equal
 * strings at. A computed key is internalized; for-in hands that key back.
 */
function ownString(s: string): string {
  if (s.length < MIN_SLICE) return s;
  const holder: Record<string, number> = { [s]: 0 };
  for (const key in holder) return key;
  return s;
}

// Memoised values repeat as new string objects span after span, mostly slices of a parsed head;
// V8 compares a slice with another string in a runtime call (~45 ns), but a ThinString (a string
// that points at its internalized equal) with an internalized one by pointer (~8 ns). A keyed
// load with a string as the key makes V8 look the name up in its string table and, when an equal
// internalized string exists (the memo's: ownString), turn the string into such a ThinString in
// place. A repeated head hands every request the same string objects (the HTTP/1 parse cache),
// so each is compared slowly once and cheaply after.
const THIN_BY_LOOKUP: Record<string, undefined> = Object.create(null) as Record<string, undefined>;

/** Makes `s`, equal to a memoised (internalized) string, point at it (see THIN_BY_LOOKUP). */
function thin(s: string): void {
  // Shorter strings are copies, compared inline without a runtime call.
  if (s.length >= MIN_SLICE) void THIN_BY_LOOKUP[s];
}

/** Drops every value memoised under `memo`'s key. */
function forget(memo: KeyMemo): void {
  memo.slots.fill(undefined);
}

// Up to this many UTF-16 units, a string assumed ASCII is copied by a JS loop that also checks
// the assumption; longer ones by one Buffer#write (a C++ call costs about as much as copying
// this many chars in JS).
const ASCII_LOOP_MAX = 24;

/**
 * Copies `s` (length `len`) to pos as ASCII; false if it is not ASCII (the bytes written are then
 * garbage for the caller to rewind). Room for 3 bytes per unit is ensured by the caller.
 */
function putAscii(s: string, len: number): boolean {
  if (len <= ASCII_LOOP_MAX) {
    let all = 0;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      all |= c;
      buf[pos++] = c;
    }
    return all < 0x80;
  }
  // Every UTF-16 unit takes one UTF-8 byte if ASCII and at least two otherwise, so the byte count
  // equals the length exactly when the string is ASCII.
  const written = buf.write(s, pos, 3 * len, 'utf8');
  pos += written;
  return written === len;
}

/**
 * One KeyValue whose string value is assumed ASCII (most are: methods, addresses, paths,
 * header values), written in one pass; false, with pos back at the start, if it was not.
 */
function putAsciiStringKeyValue(tag: number, key: Buffer, v: string): boolean {
  const start = pos;
  const len = v.length;
  const vn = 1 + varintSize(len) + len;
  const kvLen = key.length + 1 + varintSize(vn) + vn;
  ensure(1 + MAX_VARINT32 + kvLen + 2 * len);
  putKeyValueHead(tag, key, kvLen, vn);
  buf[pos++] = 0x0a; // AnyValue.string_value = 1
  putVarint32(len);
  if (putAscii(v, len)) return true;
  pos = start;
  return false;
}

/** A KeyValue's tag and length, its encoded key, and the value's tag and length (room ensured). */
function putKeyValueHead(tag: number, key: Buffer, kvLen: number, vn: number): void {
  buf[pos++] = tag;
  putVarint32(kvLen);
  buf.set(key, pos);
  pos += key.length;
  buf[pos++] = 0x12; // KeyValue.value = 2
  putVarint32(vn);
}

/** As putAsciiStringKeyValue for an array of strings (header values); false if one is not ASCII. */
function putAsciiArrayKeyValue(tag: number, key: Buffer, arr: unknown[]): boolean {
  let content = 0;
  let room = 0;
  for (let i = 0; i < arr.length; i++) {
    const item = arr[i];
    if (typeof item !== 'string') return false;
    const itemSize = 1 + varintSize(item.length) + item.length;
    content += 1 + varintSize(itemSize) + itemSize;
    room += 2 * item.length;
  }
  const start = pos;
  const vn = 1 + varintSize(content) + content;
  const kvLen = key.length + 1 + varintSize(vn) + vn;
  ensure(1 + MAX_VARINT32 + kvLen + room);
  putKeyValueHead(tag, key, kvLen, vn);
  buf[pos++] = 0x2a; // AnyValue.array_value = 5
  putVarint32(content);
  for (let i = 0; i < arr.length; i++) {
    const item = arr[i] as string;
    const len = item.length;
    buf[pos++] = 0x0a; // ArrayValue.values = 1
    putVarint32(1 + varintSize(len) + len);
    buf[pos++] = 0x0a; // AnyValue.string_value = 1
    putVarint32(len);
    if (!putAscii(item, len)) {
      pos = start;
      return false;
    }
  }
  return true;
}

// A busy agent's span attribute lists come in a few key sequences (a client span's, a server
// span's), and most values of a list are the very values the last list of its sequence had
// (strings a repeated head shares between spans, constants), whichever connection it came from:
// only ports, bodies and a changing header differ. So each sequence seen lately has a ListMemo:
// its keys, the values its last list had and where each of their KeyValues was written. A key
// whose value equals the last list's is then a step of the run copied from that list, without
// the key's memo, its slots and its value compare; only the values that differ take the per-key
// path (bench/encode.js --time-order: ~21 of 24 keys a span, ~8% less CPU per span). Values are compared as primitives (`===`), and arrays
// of strings item by item against a copy (a caller may change its array between spans); bytes
// and other objects never match. A list memo keeps its last list's values (strings included:
// at most LIST_MEMOS lists' worth). A header value can be V8's slice of its whole head, so a kept
// value keeps that head alive too: at most LIST_MEMOS heads, each within the parser's head limit
// (the per-key memos, unlike these, copy what they keep).
const LIST_MEMOS = 8;
const NO_KEYS: string[] = [];
/** A value no attribute list has: bytes and objects are kept as this, so they never match. */
const NOT_COPIED: unknown = {};

/** The last span attribute list of one key sequence, as written in a slab. */
class ListMemo {
  readonly keys: string[] = [];
  readonly memos: KeyMemo[] = [];
  /** Keys in the sequence; -1: none yet. */
  n = -1;
  /** The values of its last list (primitives as they were, arrays copied, others NOT_COPIED). */
  values: unknown[] = [];
  /** Where KeyValue i of the last list starts (its tag), at[n] where the list ends, in intactBuf. */
  at = new Int32Array(16);
  /** That list's number (lists), to ask whether it is still intact (intactFrom). */
  list = 0;
}

const listMemos: ListMemo[] = [];
for (let i = 0; i < LIST_MEMOS; i++) listMemos.push(new ListMemo());
let nextListMemo = 0;
// The list being written: where each of its KeyValues starts, and its keys from the first that
// left the sequence it began in.
let writtenAt = new Int32Array(64);
const writtenKeys: string[] = [];
const writtenMemos: KeyMemo[] = [];

/** When the key memos start over: list memos hold them too. */
function forgetListMemos(): void {
  for (const m of listMemos) {
    m.n = -1;
    m.keys.length = m.memos.length = m.values.length = 0;
  }
}

/**
 * A list memo other than `same` of `n` keys whose first `i` keys are `same`'s (the list being
 * written had those) and whose next is `key`; undefined if none.
 */
function otherListMemo(same: ListMemo, i: number, key: string, n: number): ListMemo | undefined {
  for (const m of listMemos) {
    if (m === same || m.n !== n || m.keys[i] !== key) continue;
    let j = 0;
    while (j < i && m.keys[j] === same.keys[j]) j++;
    if (j === i) return m;
  }
  return undefined;
}

/** What a list memo keeps of `v` (see ListMemo.values). */
function listValue(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (!Array.isArray(v) || v.length > MEMO_MAX_ITEMS) return NOT_COPIED;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return NOT_COPIED;
  return v.slice();
}

/** Whether `v` encodes as the value a list memo kept as `kept` (listValue). */
function sameListValue(v: unknown, kept: unknown): boolean {
  if (v === kept) return typeof v !== 'object';
  // Kept arrays hold strings only (listValue), so equal items are strings.
  if (!Array.isArray(kept) || !Array.isArray(v) || v.length !== kept.length) return false;
  for (let i = 0; i < v.length; i++) if (v[i] !== kept[i]) return false;
  return true;
}

/** Repeated KeyValue under a one-byte `tag`; each pair's sizes are exact, so nothing shifts. */
function putAttributes(tag: number, attrs: Attributes): void {
  // for-in walks V8's cached key list without the array Object.keys would allocate per span.
  // It visits an object's own keys in property order (integer-like keys first, ascending, then
  // the rest in insertion order), as the official writer's for-in + hasOwnProperty does, and
  // Object.values lists their values in that same order. Values are not read with attrs[key]: once
  // this for-in has met one object in dictionary mode (an attribute list built key by key, a
  // resource), V8 compiles that read as a megamorphic keyed load (~20 ns a key); Object.values
  // costs one array per list (encodeSpan as a busy agent gets spans, bench/encode.js
  // --time-order: 3230 -> 2860 ns/span).
  const list = ++lists;
  const copyable = referencing && tag === SPAN_ATTRIBUTES && intactBuf === buf;
  // Where KeyValues written now are kept as written (see intactFrom): 0, nowhere.
  const kept = copyable ? list : 0;
  // The run of earlier bytes [runFrom, runTo) that goes next at pos.
  let runFrom = 0;
  let runTo = 0;
  let previous = FIRST_KEY;
  const values = Object.values(attrs) as unknown[];
  const n = values.length;
  // The list memo whose sequence this list has followed so far (keys 0 .. index - 1), if it is
  // being memoised (copyable: written where it stays intact); undefined from the first key that
  // leaves every memo's sequence on, and this list's keys are kept in writtenKeys.
  let seq: ListMemo | undefined;
  if (copyable) {
    if (writtenAt.length <= n) writtenAt = new Int32Array(2 * (n + 1));
    for (const m of listMemos) {
      if (m.n === n) {
        seq = m;
        break;
      }
    }
  }
  // seq's last list can be copied from (it is intact). Its arrays and writtenAt in locals: the
  // loop's calls would make V8 load them from their objects at every use.
  let seqIntact = seq !== undefined && seq.list >= intactFrom;
  let seqKeys = seq === undefined ? NO_KEYS : seq.keys;
  let seqValues = seq === undefined ? NO_KEYS : seq.values;
  let seqAt = seq === undefined ? writtenAt : seq.at;
  const at = writtenAt;
  let index = 0;
  for (const key in attrs) {
    // Keys an object inherits come after its own: never written, as with the official writer.
    if (index === n) break;
    const i = index++;
    const v = values[i] as AttrValue;
    let memo: KeyMemo;
    if (seq !== undefined && seqKeys[i] !== key) {
      const other = otherListMemo(seq, i, key, n);
      if (other === undefined) leaveSequence(seq, i);
      else {
        seqIntact = other.list >= intactFrom;
        seqKeys = other.keys;
        seqValues = other.values;
        seqAt = other.at;
      }
      // The key memo chain goes on from the key before.
      if (i > 0) previous = seq.memos[i - 1];
      seq = other;
    }
    if (seq !== undefined) {
      at[i] = pos + runTo - runFrom;
      const prev = seqValues[i];
      if (sameListValue(v, prev)) {
        values[i] = prev;
        if (seqIntact) {
          // A step of the run: the KeyValue seq's last list wrote for the same key and value.
          const from = seqAt[i];
          if (from !== runTo) {
            putRun(runFrom, runTo);
            runFrom = from;
          }
          runTo = seqAt[i + 1];
          continue;
        }
      } else values[i] = listValue(v);
      memo = seq.memos[i];
      previous = memo;
    } else {
      if (previous.nextKey === key) memo = previous.nextMemo!;
      else {
        memo = keyMemo(key);
        // Only to kept memos, so that what links keep alive is bounded by the Map.
        if (key.length <= KEY_CACHE_MAX_LENGTH) {
          previous.nextKey = key;
          previous.nextMemo = memo;
        }
      }
      previous = memo;
      if (copyable) {
        at[i] = pos + runTo - runFrom;
        writtenKeys[i] = key;
        writtenMemos[i] = memo;
        values[i] = listValue(v);
      }
    }
    const slots = memo.slots;
    const slot = slots.length === 1 ? slots[0] : slots[slotOf(v)];
    if (slot !== undefined && isMemoised(slot, v)) {
      memo.misses = 0;
      if (copyable && slot.list >= intactFrom) {
        if (slot.at !== runTo) {
          putRun(runFrom, runTo);
          runFrom = runTo = slot.at;
        }
        slot.at = pos + runTo - runFrom;
        runTo += 1 + slot.keyValue.length;
      } else {
        putRun(runFrom, runTo);
        runFrom = runTo = 0;
        const kv = slot.keyValue;
        ensure(1 + kv.length);
        slot.at = pos;
        buf[pos++] = tag;
        buf.set(kv, pos);
        pos += kv.length;
      }
      slot.list = kept;
      continue;
    }
    putRun(runFrom, runTo);
    runFrom = runTo = 0;
    const start = pos;
    putKeyValue(tag, memo.field, v);
    memoise(memo, slot, v, start, kept);
  }
  putRun(runFrom, runTo);
  if (copyable) keepList(seq, index, values, list);
}

/** The list being written leaves `seq` at key `i`: its keys so far are seq's first `i`. */
function leaveSequence(seq: ListMemo, i: number): void {
  for (let j = 0; j < i; j++) {
    writtenKeys[j] = seq.keys[j];
    writtenMemos[j] = seq.memos[j];
  }
}

/**
 * The span attribute list just written (`count` keys, its values as ListMemo.values keeps them)
 * becomes its sequence's memo: `seq` if it followed that one to the end, else the memo used least
 * lately (round robin) takes its sequence (writtenKeys).
 */
function keepList(seq: ListMemo | undefined, count: number, values: unknown[], list: number): void {
  writtenAt[count] = pos;
  let m = seq;
  if (m === undefined) {
    m = listMemos[nextListMemo];
    nextListMemo = (nextListMemo + 1) % LIST_MEMOS;
    for (let i = 0; i < count; i++) {
      m.keys[i] = writtenKeys[i];
      m.memos[i] = writtenMemos[i];
    }
    m.keys.length = m.memos.length = count;
    m.n = count;
  }
  // The positions just written become the memo's; its old array is written next.
  const at = m.at;
  m.at = writtenAt;
  writtenAt = at;
  m.values = values;
  m.list = list;
}

/** Copies buf[from, to) (KeyValues of intact lists, before pos) to pos. */
function putRun(from: number, to: number): void {
  if (from === to) return;
  ensure(to - from);
  buf.copyWithin(pos, from, to);
  pos += to - from;
}

/** One KeyValue, written from scratch. */
function putKeyValue(tag: number, kf: Buffer, v: AttrValue): void {
  if (typeof v === 'string') {
    if (putAsciiStringKeyValue(tag, kf, v)) return;
  } else if (Array.isArray(v)) {
    if (putAsciiArrayKeyValue(tag, kf, v)) return;
  } else if (v instanceof Uint8Array) return putBytesKeyValue(tag, kf, v);
  // Numbers, booleans, and strings and arrays that are not ASCII: sized exactly, then written.
  const sn = typeof v === 'string' ? utf8Length(v) : 0;
  const vn = typeof v === 'string' ? 1 + varintSize(sn) + sn : anyValueSize(v);
  const kvLen = kf.length + 1 + varintSize(vn) + vn;
  ensure(1 + MAX_VARINT32 + kvLen);
  putKeyValueHead(tag, kf, kvLen, vn);
  if (typeof v === 'string') {
    buf[pos++] = 0x0a; // AnyValue.string_value = 1
    putVarint32(sn);
    putStringBytes(v, sn);
  } else putAnyValue(v, vn);
}

/**
 * A bytes KeyValue (bodies: one a span, never memoised), its length read once: the general path
 * reads byteLength (a prototype getter) four times, and V8 calls a load IC for some of them.
 */
function putBytesKeyValue(tag: number, kf: Buffer, v: Uint8Array): void {
  const n = v.byteLength;
  const vn = 1 + varintSize(n) + n;
  const kvLen = kf.length + 1 + varintSize(vn) + vn;
  ensure(1 + MAX_VARINT32 + kvLen - (isReferenced(n) ? n : 0));
  putKeyValueHead(tag, kf, kvLen, vn);
  putBytesValue(v, n);
}

/** Reserves `guess` bytes for a length written by endLength(); returns where the body starts. */
function beginLength(guess: number): number {
  ensure(guess);
  pos += guess;
  return pos;
}

/**
 * Writes the length of the body started at `start`, moving the body if the guess was off.
 * `refsBefore` is refTotal when the body started: bytes referenced since are part of it.
 */
function endLength(start: number, guess: number, refsBefore: number): void {
  const len = pos - start + (refTotal - refsBefore);
  const need = varintSize(len);
  if (need !== guess) {
    ensure(need - guess);
    buf.copyWithin(start + need - guess, start, pos);
    pos += need - guess;
    if (buf === intactBuf) forgetLastList();
    for (let i = 0; i < refAt.length; i++) if (refAt[i] >= start) refAt[i] += need - guess;
  }
  const end = pos;
  pos = start - guess;
  putVarint32(len);
  pos = end;
}

function putSpan(s: SpanRecord): void {
  ensure(2 * 18 + 3);
  buf[pos++] = 0x12; // ScopeSpans.spans = 2
  const refs = refTotal;
  const start = beginLength(SPAN_LEN_GUESS);
  putHexField(0x0a, s.traceId); // trace_id = 1
  putHexField(0x12, s.spanId); // span_id = 2
  if (s.traceState) putStringField(0x1a, s.traceState); // trace_state = 3
  if (s.parentSpanId) putHexField(0x22, s.parentSpanId); // parent_span_id = 4
  putStringField(0x2a, s.name); // name = 5
  ensure(2 + 2 * 9);
  if (s.kind) {
    buf[pos++] = 0x30; // kind = 6
    putVarint32(s.kind);
  }
  buf[pos++] = 0x39; // start_time_unix_nano = 7
  putTimeMs(s.startMs);
  buf[pos++] = 0x41; // end_time_unix_nano = 8
  putTimeMs(s.endMs);
  putAttributes(0x4a, s.attributes); // attributes = 9
  ensure(2);
  buf[pos++] = 0x50; // dropped_attributes_count = 10
  buf[pos++] = 0;
  const events = s.events;
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    ensure(2 + EVENT_LEN_GUESS + 9);
    buf[pos++] = 0x5a; // events = 11
    const eventRefs = refTotal;
    const es = beginLength(EVENT_LEN_GUESS);
    buf[pos++] = 0x09; // Event.time_unix_nano = 1
    putTimeMs(e.timeMs);
    putStringField(0x12, e.name); // Event.name = 2
    putAttributes(0x1a, e.attributes); // Event.attributes = 3
    ensure(2);
    buf[pos++] = 0x20; // Event.dropped_attributes_count = 4
    buf[pos++] = 0;
    endLength(es, EVENT_LEN_GUESS, eventRefs);
  }
  const message = s.status.message;
  const mn = message ? utf8Length(message) : 0;
  const statusLen = (mn ? 1 + varintSize(mn) + mn : 0) + 2;
  // dropped_events_count = 12, dropped_links_count = 14 (two bytes each), status, flags.
  ensure(4 + 2 + MAX_VARINT32 + statusLen + 7);
  buf[pos++] = 0x60;
  buf[pos++] = 0;
  buf[pos++] = 0x70;
  buf[pos++] = 0;
  buf[pos++] = 0x7a; // status = 15
  putVarint32(statusLen);
  if (mn) {
    buf[pos++] = 0x12; // Status.message = 2
    putVarint32(mn);
    putStringBytes(message!, mn);
  }
  buf[pos++] = 0x18; // Status.code = 3
  buf[pos++] = s.status.code;
  // flags = 16 (fixed32): trace flags, plus "is remote" known, remote when there is a parent
  // (a sidecar's parent always arrives in a header).
  buf[pos++] = 0x85;
  buf[pos++] = 0x01;
  putFixed32((s.sampled ? SAMPLED : 0) | FLAGS_HAS_IS_REMOTE | (s.parentSpanId ? FLAGS_IS_REMOTE : 0));
  endLength(start, SPAN_LEN_GUESS, refs);
}

/** Encodes one message field into a fresh buffer, with the scratch writer. */
function encodeOnce(write: () => void): Buffer {
  pos = 0;
  write();
  const out = Buffer.allocUnsafe(pos);
  buf.copy(out, 0, 0, pos);
  return out;
}

/** `resource = 1` of ResourceSpans (tag included), as the official writer encodes a Resource. */
function encodeResourceField(attributes: Readonly<Attributes>): Buffer {
  return encodeOnce(() => {
    buf[pos++] = 0x0a;
    const start = beginLength(MAX_VARINT32);
    putAttributes(0x0a, attributes); // Resource.attributes = 1
    ensure(2);
    buf[pos++] = 0x10; // Resource.dropped_attributes_count = 2, written as the official writer does
    buf[pos++] = 0;
    endLength(start, MAX_VARINT32, 0);
  });
}

/** The serializer the export delegate gets when the queue holds spans from encodeSpan. */
export type EncodedSpansSerializer = ISerializer<EncodedSpan[], IExportTraceServiceResponse>;

// Starting sizes of the encoded-span tables; they double when full (a queue of 8,192 spans needs
// 8,192 handles and a few dozen slabs).
const INITIAL_SPANS = 1024;
const INITIAL_SLABS = 16;

/**
 * The OTLP trace serializer for the official gRPC export delegate. One scope per process, and one
 * resource, encoded once, here, and copied into every request; spans with a resource of their own
 * (SpanRecord.resource: the node agent's traced processes) go under it, each resource encoded
 * once per resource object.
 */
export class OtlpTraceSerializer implements ISerializer<SpanRecord[], IExportTraceServiceResponse> {
  readonly encodedSpans: EncodedSpansSerializer = {
    serializeRequest: (spans) => this.serializeEncoded(spans),
    deserializeResponse: (data) => this.deserializeResponse(data),
  };
  /** `resource = 1` of ResourceSpans, tag included. */
  private readonly resourceField: Buffer;
  /** `scope = 1` of ScopeSpans, tag included. */
  private readonly scopeField: Buffer;
  private readonly headerRoom: number;

  // Encoded spans, by handle (EncodedSpan): their slab, where in it, their resource's field, and
  // what they reference (rare; see REFERENCE_MIN_BYTES).
  private readonly spanIds = new IdPool(INITIAL_SPANS);
  private spanSlab: Int32Array = new Int32Array(INITIAL_SPANS);
  private spanStart: Int32Array = new Int32Array(INITIAL_SPANS);
  private spanEnd: Int32Array = new Int32Array(INITIAL_SPANS);
  /** `resource = 1` of the ResourceSpans each goes under (resourceField, or its own resource's). */
  private readonly spanResource: (Buffer | undefined)[] = [];
  private readonly spanRefs: (References | undefined)[] = [];

  // Slabs by id, each with the number of unreleased spans in it. A slab is reused (or let go)
  // once that reaches 0 and encodeSpan has moved on to another one.
  private readonly slabIds = new IdPool(INITIAL_SLABS);
  private readonly slabs: (Buffer | undefined)[] = [];
  private slabSpans: Int32Array = new Int32Array(INITIAL_SLABS);
  /** Where encodeSpan writes (see SLAB_SIZE); slab -1: none yet. */
  private slab: Buffer = Buffer.allocUnsafeSlow(0);
  private slabId = -1;
  private slabPos = 0;
  private lastSpanBytes = 0;
  private readonly spareSlabs: Buffer[] = [];

  /** Spans' own resources, encoded: producers reuse one object per entity (SpanResource). */
  private readonly ownResources = new WeakMap<SpanResource, Buffer>();

  private readonly spareRequests: Buffer[] = [];
  private lastRequest: Buffer | undefined;

  constructor(resource: Record<string, string>, scope: InstrumentationScopeInfo) {
    this.resourceField = encodeResourceField(resource);
    this.scopeField = encodeOnce(() => {
      buf[pos++] = 0x0a;
      const start = beginLength(MAX_VARINT32);
      putStringField(0x0a, scope.name);
      if (scope.version) putStringField(0x12, scope.version);
      endLength(start, MAX_VARINT32, 0);
    });
    this.headerRoom = 2 * (1 + MAX_VARINT32) + this.resourceField.length + this.scopeField.length;
  }

  serializeRequest(spans: SpanRecord[]): Uint8Array {
    // Like the official serializer, no spans means an empty request.
    if (spans.length === 0) return new Uint8Array(0);
    // Spans with resources of their own are grouped by serializeEncoded (a path for tests: the
    // exporter always encodes spans one by one).
    if (spans.some((s) => s.resource !== undefined)) {
      const encoded = spans.map((s) => this.encodeSpan(s));
      const request = Buffer.from(this.serializeEncoded(encoded));
      this.releaseEncoded(encoded);
      return request;
    }
    // Spans go after room for the header; the header is written last, right before them, once
    // the outer lengths are known, so the spans never move.
    const room = this.headerRoom;
    pos = 0;
    ensure(room);
    pos = room;
    for (let i = 0; i < spans.length; i++) putSpan(spans[i]);
    const end = pos;
    const start = room - this.headerLength(end - room, this.resourceField);
    pos = start;
    this.putHeader(end - room, this.resourceField);
    // Copied out: the transport sends asynchronously and the scratch buffer is reused. A memcpy:
    // Buffer.from(subarray) would copy byte by byte.
    const out = Buffer.allocUnsafe(end - start);
    buf.copy(out, 0, start, end);
    return out;
  }

  /**
   * One span, encoded now, as its `ScopeSpans.spans` field (tag, length, Span): what the export
   * queue keeps until serializeEncoded puts a batch of them in a request. The bytes are written
   * into a shared slab; the span is a handle to them, held until releaseEncoded.
   */
  encodeSpan(span: SpanRecord): EncodedSpan {
    const own = span.resource;
    let resource = this.resourceField;
    if (own !== undefined) {
      // Before the span: a resource is encoded with the scratch buffer.
      const field = this.ownResources.get(own);
      if (field !== undefined) resource = field;
      else this.ownResources.set(own, (resource = encodeResourceField(own.attributes)));
    }
    const h = this.encodeBytes(span);
    this.spanResource[h] = resource;
    return h;
  }

  /** Bytes of an encoded span (referenced ones included): what the export queue bounds. */
  encodedLength(h: EncodedSpan): number {
    const refs = this.spanRefs[h];
    return this.spanEnd[h] - this.spanStart[h] + (refs === undefined ? 0 : refs.total);
  }

  /** Encoded spans not yet released, and the slabs they hold (the one being written included). */
  get held(): { spans: number; slabs: number } {
    return { spans: this.spanIds.used, slabs: this.slabIds.used };
  }

  /** Writes the span into the current slab; returns its new handle (resource not yet set). */
  private encodeBytes(span: SpanRecord): EncodedSpan {
    if (this.slab.length - this.slabPos < Math.max(SLAB_MIN_ROOM, 4 * this.lastSpanBytes)) this.nextSlab();
    const scratch = buf;
    buf = this.slab;
    pos = this.slabPos;
    if (intactBuf !== buf) {
      intactBuf = buf;
      forgetLastList();
    }
    // The reference lists are empty here: every encodeSpan leaves them so.
    referencing = true;
    try {
      putSpan(span);
      // ensure() may have moved the slab to a bigger copy (the span outgrew the room left);
      // earlier spans keep the old one, under its id.
      if (buf !== this.slab) {
        this.retireSlab();
        this.slab = buf;
        this.slabId = this.addSlab(buf);
      }
      const start = this.slabPos;
      this.slabPos = pos;
      this.lastSpanBytes = pos - start;
      const h = this.newHandle();
      this.spanSlab[h] = this.slabId;
      this.spanStart[h] = start;
      this.spanEnd[h] = pos;
      this.slabSpans[this.slabId]++;
      if (refBytes.length !== 0) this.spanRefs[h] = { at: refAt.slice(), bytes: refBytes.slice(), total: refTotal };
      return h;
    } catch (err) {
      // The failed span's bytes will be overwritten by the next one.
      forgetLastList();
      throw err;
    } finally {
      buf = scratch;
      referencing = false;
      // Most spans reference nothing, and setting an array's length is a runtime call.
      if (refAt.length !== 0) {
        refAt.length = 0;
        refBytes.length = 0;
        refTotal = 0;
      }
    }
  }

  private newHandle(): EncodedSpan {
    let h = this.spanIds.take();
    if (h < 0) {
      const capacity = this.spanIds.grow();
      this.spanSlab = grown(this.spanSlab, capacity);
      this.spanStart = grown(this.spanStart, capacity);
      this.spanEnd = grown(this.spanEnd, capacity);
      h = this.spanIds.take();
    }
    return h;
  }

  private nextSlab(): void {
    this.retireSlab();
    const size = Math.max(SLAB_SIZE, 8 * this.lastSpanBytes);
    const spare = this.spareSlabs.pop();
    this.slab = spare !== undefined && spare.length >= size ? spare : Buffer.allocUnsafeSlow(size);
    this.slabId = this.addSlab(this.slab);
    this.slabPos = 0;
    // A spare may be the slab written just before: its lists are about to be written over.
    intactBuf = undefined;
  }

  /** encodeSpan moves on from the current slab: it goes once its spans are released. */
  private retireSlab(): void {
    const id = this.slabId;
    if (id >= 0 && this.slabSpans[id] === 0) this.freeSlab(id);
    this.slabId = -1;
  }

  private addSlab(slab: Buffer): number {
    let id = this.slabIds.take();
    if (id < 0) {
      this.slabSpans = grown(this.slabSpans, this.slabIds.grow());
      id = this.slabIds.take();
    }
    this.slabs[id] = slab;
    this.slabSpans[id] = 0;
    return id;
  }

  private freeSlab(id: number): void {
    const slab = this.slabs[id]!;
    this.slabs[id] = undefined;
    this.slabIds.give(id);
    if (slab.length === SLAB_SIZE && this.spareSlabs.length < SPARE_SLABS) this.spareSlabs.push(slab);
  }

  /**
   * These encoded spans will not be read again (their request is serialized, or they were
   * dropped): their handles are given back, and a slab whose spans are all released is reused.
   * Each span is released once.
   */
  releaseEncoded(spans: EncodedSpan[]): void {
    for (let i = 0; i < spans.length; i++) this.release(spans[i]);
  }

  /** releaseEncoded of one span. */
  release(h: EncodedSpan): void {
    const slab = this.spanSlab[h];
    if (--this.slabSpans[slab] === 0 && slab !== this.slabId) this.freeSlab(slab);
    // A released handle keeps no resource alive.
    this.spanResource[h] = undefined;
    if (this.spanRefs[h] !== undefined) this.spanRefs[h] = undefined;
    this.spanIds.give(h);
  }

  /** The buffer behind the last serializeEncoded request (undefined if none since), for releaseRequest. */
  takeLastRequest(): Buffer | undefined {
    const request = this.lastRequest;
    this.lastRequest = undefined;
    return request;
  }

  /** A request's export has finished (retries included): its buffer is reused. */
  releaseRequest(request: Buffer): void {
    if (this.spareRequests.length < SPARE_REQUESTS) this.spareRequests.push(request);
  }

  /**
   * The request for spans from encodeSpan, byte for byte what serializeRequest gives for them,
   * after `room` bytes left unwritten at the front: a transport's frame prefix (the gRPC message
   * header), so the message goes out as one buffer without being copied again.
   */
  serializeEncoded(spans: EncodedSpan[], room = 0): Buffer {
    if (spans.length === 0) return Buffer.alloc(room);
    // One resource for all (the proxy's own; one traced process's): one ResourceSpans, no grouping.
    const resource = this.spanResource[spans[0]]!;
    let spansLen = 0;
    for (let i = 0; i < spans.length; i++) {
      if (this.spanResource[spans[i]] !== resource) return this.serializeGrouped(spans, room);
      spansLen += this.encodedLength(spans[i]);
    }
    const headerLen = this.headerLength(spansLen, resource);
    const out = this.request(room + headerLen + spansLen);
    pos = 0;
    ensure(headerLen);
    this.putHeader(spansLen, resource);
    buf.copy(out, room, 0, headerLen);
    this.copySpans(out, room + headerLen, spans);
    return out;
  }

  /**
   * One ResourceSpans per resource, in the order each first appears, as the official serializer
   * groups spans by their Resource; spans without one of their own go under this serializer's.
   */
  private serializeGrouped(spans: EncodedSpan[], room: number): Buffer {
    const groups = new Map<Buffer, { spans: EncodedSpan[]; len: number }>();
    for (let i = 0; i < spans.length; i++) {
      const h = spans[i];
      const resource = this.spanResource[h]!;
      let group = groups.get(resource);
      if (group === undefined) groups.set(resource, (group = { spans: [], len: 0 }));
      group.spans.push(h);
      group.len += this.encodedLength(h);
    }
    let total = room;
    for (const [resource, group] of groups) total += this.headerLength(group.len, resource) + group.len;
    const out = this.request(total);
    let at = room;
    for (const [resource, group] of groups) {
      pos = 0;
      ensure(this.headerLength(group.len, resource));
      this.putHeader(group.len, resource);
      at += buf.copy(out, at, 0, pos);
      at = this.copySpans(out, at, group.spans);
    }
    return out;
  }

  /**
   * Copies the spans' bytes to `out` at `at`; returns where they end. Spans encoded one after
   * another sit side by side in their slab, so runs of them are copied at once: a copy is a call
   * into C++ and a view, whatever its size.
   */
  private copySpans(out: Buffer, at: number, spans: EncodedSpan[]): number {
    let runSlab = -1;
    let runFrom = 0;
    let runTo = 0;
    for (let i = 0; i < spans.length; i++) {
      const h = spans[i];
      const slab = this.spanSlab[h];
      const start = this.spanStart[h];
      const refs = this.spanRefs[h];
      if (slab === runSlab && start === runTo && refs === undefined) {
        runTo = this.spanEnd[h];
        continue;
      }
      if (runSlab >= 0) at += this.slabs[runSlab]!.copy(out, at, runFrom, runTo);
      runSlab = slab;
      runFrom = start;
      runTo = this.spanEnd[h];
      if (refs === undefined) continue;
      // The slab's bytes around each referenced value, and the value.
      const bytes = this.slabs[slab]!;
      let from = start;
      for (let j = 0; j < refs.at.length; j++) {
        at += bytes.copy(out, at, from, refs.at[j]);
        out.set(refs.bytes[j], at);
        at += refs.bytes[j].length;
        from = refs.at[j];
      }
      runFrom = from;
    }
    if (runSlab >= 0) at += this.slabs[runSlab]!.copy(out, at, runFrom, runTo);
    return at;
  }

  /** A request buffer of `total` bytes, reused from a finished export when one is big enough. */
  private request(total: number): Buffer {
    let request = this.spareRequests.pop();
    if (request === undefined || request.length < total) request = Buffer.allocUnsafeSlow(total);
    this.lastRequest = request;
    return request.subarray(0, total);
  }

  /** Bytes of a ResourceSpans before its spans (ResourceSpans and ScopeSpans heads, resource, scope). */
  private headerLength(spansLen: number, resourceField: Buffer): number {
    const scopeSpansLen = this.scopeField.length + spansLen;
    const resourceSpansLen = resourceField.length + 1 + varintSize(scopeSpansLen) + scopeSpansLen;
    return 1 + varintSize(resourceSpansLen) + resourceSpansLen - spansLen;
  }

  /** Writes a ResourceSpans' header at pos (room ensured by the caller). */
  private putHeader(spansLen: number, resourceField: Buffer): void {
    const scopeSpansLen = this.scopeField.length + spansLen;
    const resourceSpansLen = resourceField.length + 1 + varintSize(scopeSpansLen) + scopeSpansLen;
    buf[pos++] = 0x0a; // ExportTraceServiceRequest.resource_spans = 1
    putVarint32(resourceSpansLen);
    pos += resourceField.copy(buf, pos);
    buf[pos++] = 0x12; // ResourceSpans.scope_spans = 2
    putVarint32(scopeSpansLen);
    pos += this.scopeField.copy(buf, pos);
  }

  deserializeResponse(data: Uint8Array): IExportTraceServiceResponse {
    return ProtobufTraceSerializer.deserializeResponse(data);
  }
}
