// HTTP/1.x framing over captured bytes: heads, Content-Length and chunked bodies, bodies ended by
// close, HEAD/1xx/204/304 and tunnels. Body bytes come out as frames of whatever has arrived,
// so a large body never has to be buffered whole. Pure: all state is in the H1State passed in.

import type { RawHeaders } from '../../../proxy/exchange.js';
import { NEEDS_MORE_DATA, payloadView, type MessageType, type ParseResult, type StateOptions } from '../protocol.js';
import type { H1CachedHead, H1DirState, H1Frame, H1Framing, H1HeadResult, H1Mode, H1State } from './types.js';

/** Heads larger than this are not HTTP we can use: declare invalid and resynchronise. */
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 1024;
const MAX_PENDING_METHODS = 256;
/** Longest head text kept for reuse (H1CachedHead), per direction; counted by retainedH1. */
const MAX_CACHED_HEAD = 512;

const KNOWN_METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'];

const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}) ([^ \x00-\x1f\x7f]+) HTTP\/1\.([01])$/;
// RFC 9110 tchar, as a table: header names are checked once per header on every message. All
// 256 byte values, so scanHead indexes it with any byte without a range check.
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const HTTP1_PREFIX = 'HTTP/1.';

export function createH1State(options: StateOptions): H1State {
  return {
    request: newDir(),
    response: newDir(),
    pendingMethods: [],
    pendingStarts: [],
    maxBodyBytes: options.maxBodyBytes,
    midStream: options.midStream,
    requests: [],
    responses: [],
    orphanResponses: 0,
    responseResynced: options.midStream,
    methodsResynced: options.midStream,
    requestGaps: [],
  };
}

function newDir(): H1DirState {
  return { mode: 'head', remaining: 0, lost: 0 };
}

/** True/false once the first line is decidable; undefined while it may still become HTTP/1. */
export function detectH1(type: MessageType, buf: Buffer): boolean | undefined {
  return type === 'request' ? looksLikeRequest(buf, 0) : looksLikeResponse(buf, 0);
}

function looksLikeRequest(buf: Buffer, at: number): boolean | undefined {
  const lineEnd = buf.indexOf(13, at);
  const avail = Math.min(buf.length, at + 40);
  let sp = -1;
  for (let i = at; i < avail; i++) {
    if (buf[i] === 32) {
      sp = i;
      break;
    }
  }
  if (sp < 0) {
    // No space yet: still plausible only as a prefix of a known method.
    const got = buf.toString('latin1', at, avail);
    if (avail - at >= 8) return false;
    return KNOWN_METHODS.some((m) => m.startsWith(got)) ? undefined : false;
  }
  if (!KNOWN_METHODS.includes(buf.toString('latin1', at, sp))) return false;
  if (lineEnd < 0) return buf.length - at > MAX_HEAD_BYTES ? false : undefined;
  return REQUEST_LINE.test(buf.toString('latin1', at, lineEnd));
}

function looksLikeResponse(buf: Buffer, at: number): boolean | undefined {
  const n = Math.min(buf.length - at, 12);
  for (let i = 0; i < n && i < 7; i++) if (buf[at + i] !== HTTP1_PREFIX.charCodeAt(i)) return false;
  if (n < 12) return undefined;
  return (buf[at + 7] === 48 || buf[at + 7] === 49) && buf[at + 8] === 32 && isDigit(buf[at + 9]) && isDigit(buf[at + 10]) && isDigit(buf[at + 11]);
}

function isDigit(b: number): boolean {
  return b >= 48 && b <= 57;
}

/** The next line start at or after `start` where a request line (or status line) plausibly begins. */
export function findH1Boundary(type: MessageType, buf: Buffer, start: number): number {
  let i = start;
  while (i < buf.length) {
    const ok = type === 'request' ? looksLikeRequest(buf, i) : looksLikeResponse(buf, i);
    if (ok !== false) return i;
    const nl = buf.indexOf(10, i);
    if (nl < 0) return -1;
    i = nl + 1;
  }
  return -1;
}

export function parseH1Frame(type: MessageType, buf: Buffer, state: H1State, tsNs = 0): ParseResult<H1Frame> {
  const dir = type === 'request' ? state.request : state.response;
  switch (dir.mode) {
    case 'head':
      return type === 'request' ? parseRequestHead(buf, state, tsNs) : parseResponseHead(buf, state, tsNs);
    case 'fixed':
    case 'chunk-data':
    case 'until-eof': {
      if (buf.length === 0) return NEEDS_MORE_DATA;
      const n = dir.mode === 'until-eof' ? buf.length : Math.min(dir.remaining, buf.length);
      dir.remaining -= dir.mode === 'until-eof' ? 0 : n;
      const last = dir.mode === 'fixed' && dir.remaining === 0;
      if (dir.remaining === 0 && dir.mode !== 'until-eof') dir.mode = dir.mode === 'fixed' ? 'head' : 'chunk-crlf';
      const lost = dir.lost;
      dir.lost = 0;
      return { kind: 'success', frame: { kind: 'body', data: n === buf.length ? buf : buf.subarray(0, n), last, lost }, consumed: n };
    }
    case 'fixed-lost-end': {
      // The body's last bytes were lost: the message still ends here.
      dir.mode = 'head';
      const lost = dir.lost;
      dir.lost = 0;
      return { kind: 'success', frame: { kind: 'body', data: buf.subarray(0, 0), last: true, lost }, consumed: 0 };
    }
    case 'chunk-crlf':
      if (buf.length < 2) return buf.length === 1 && buf[0] !== 13 ? invalid('chunk data not followed by CRLF') : NEEDS_MORE_DATA;
      if (buf[0] !== 13 || buf[1] !== 10) return invalid('chunk data not followed by CRLF');
      dir.mode = 'chunk-size';
      return { kind: 'ignored', consumed: 2 };
    case 'chunk-size': {
      const eol = buf.indexOf(10);
      if (eol < 0) return buf.length > MAX_CHUNK_LINE ? invalid('chunk size line too long') : NEEDS_MORE_DATA;
      const line = buf.toString('latin1', 0, eol > 0 && buf[eol - 1] === 13 ? eol - 1 : eol);
      const semi = line.indexOf(';');
      const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
      if (!/^[0-9a-fA-F]{1,13}$/.test(hex)) return invalid(`bad chunk size "${hex.slice(0, 20)}"`);
      const size = parseInt(hex, 16);
      if (size === 0) dir.mode = 'trailers';
      else {
        dir.mode = 'chunk-data';
        dir.remaining = size;
      }
      return { kind: 'ignored', consumed: eol + 1 };
    }
    case 'trailers': {
      if (buf.length < 2) return NEEDS_MORE_DATA;
      const lost = dir.lost;
      dir.lost = 0;
      if (buf[0] === 13 && buf[1] === 10) {
        dir.mode = 'head';
        return { kind: 'success', frame: { kind: 'end', lost }, consumed: 2 };
      }
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        dir.lost = lost;
        return buf.length > MAX_HEAD_BYTES ? invalid('trailers too large') : NEEDS_MORE_DATA;
      }
      const trailers = parseHeaderText(buf.toString('latin1', 0, end), 0);
      if (typeof trailers === 'string') return invalid(trailers);
      dir.mode = 'head';
      return { kind: 'success', frame: { kind: 'end', trailers, lost }, consumed: end + 4 };
    }
    case 'opaque':
      return buf.length === 0 ? NEEDS_MORE_DATA : { kind: 'ignored', consumed: buf.length };
  }
}

const BAD_RESPONSE_LENGTH = 'bad Content-Length in response';

function invalid(reason: string): ParseResult<never> {
  return { kind: 'invalid', reason };
}

/** A head as readHead found it: its text (without the final CRLFCRLF), where its first line ends,
 * the bytes it takes, and how many header lines scanHead left in LINES (-1: not scanned). */
export interface Head {
  text: string;
  lineEnd: number;
  consumed: number;
  lines: number;
  /** scanHead's framing (Content-Length, FRAMING_NONE, FRAMING_BY_TEXT); FRAMING_BY_TEXT when not scanned. */
  framing: number;
}

/**
 * Returns the head, or a ParseResult to hand back as is. Lines are walked in place, never split
 * into an array.
 */
function readHead(buf: Buffer, type: MessageType): Head | ParseResult<never> {
  if (buf.length === 0) return NEEDS_MORE_DATA;
  // Stray CRLFs between messages are allowed before a request line (RFC 9112 §2.2).
  if (buf[0] === 13 || buf[0] === 10) {
    let i = 0;
    while (i < buf.length && (buf[i] === 13 || buf[i] === 10)) i++;
    return { kind: 'ignored', consumed: i };
  }
  let end = scanHead(buf);
  const scanned = end !== IRREGULAR;
  if (!scanned) end = headEnd(buf);
  // A whole request head is checked by its line's pattern (parseRequestHead); the plausibility
  // check is for heads still arriving, so garbage is refused without waiting for 64 KiB.
  const plausible = type === 'response' ? looksLikeResponse(buf, 0) : end < 0 ? looksLikeRequest(buf, 0) : true;
  if (plausible === false) return notALine(type, buf);
  if (end < 0) return buf.length > MAX_HEAD_BYTES ? invalid(`${type} head exceeds ${MAX_HEAD_BYTES} bytes`) : NEEDS_MORE_DATA;
  const text = latin1(buf, end);
  return scanned ? scannedHead(text) : textHead(text);
}

// scannedHead and textHead are the two ways to the same head, and headEnd the general way to its
// end; exported for the test that compares them on random bytes.

/** The head that scanHead just found, its text sliced from the scanned bytes. */
export function scannedHead(text: string): Head {
  return { text, lineEnd: scannedLineEnd, consumed: text.length + 4, lines: scannedLines, framing: scannedFraming };
}

/** A head found by headEnd: its lines are parsed from its text. */
export function textHead(text: string): Head {
  const lineEnd = text.indexOf('\r\n');
  return { text, lineEnd: lineEnd < 0 ? text.length : lineEnd, consumed: text.length + 4, lines: -1, framing: FRAMING_BY_TEXT };
}

/** The head's header list (or why it is refused): from the offsets scanHead left, or parsed from its text. */
export function headHeaders(head: Head): RawHeaders | string {
  if (head.lines < 0) return parseHeaderText(head.text, head.lineEnd + 2);
  const headers: RawHeaders = [];
  const text = head.text;
  for (let k = 0; k < head.lines * 4; k += 4) headers.push(text.slice(LINES[k], LINES[k + 1]), text.slice(LINES[k + 2], LINES[k + 3]));
  return headers;
}

// What scanHead found, read right after by the same parseFrame call: module scratch, not
// per-head arrays, because it is the parser's hottest path. Per header line, 4 offsets: name
// start, colon, value start and end (optional whitespace trimmed).
const MAX_SCANNED_LINES = 64;
const LINES = new Int32Array(4 * MAX_SCANNED_LINES);
let scannedLines = 0;
let scannedLineEnd = 0;
/** The head's Content-Length as scanHead read it from bytes, FRAMING_NONE without one, or
 * FRAMING_BY_TEXT when bodyFraming must decide (Transfer-Encoding, a Content-Length that is not
 * plain digits): saves a case-insensitive compare per header name and a Number() per message. */
let scannedFraming = 0;
const FRAMING_NONE = -1;
const FRAMING_BY_TEXT = -2;
const CONTENT_LENGTH = Buffer.from('content-length');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding');
export const IRREGULAR = -2;

/**
 * One pass over a head's bytes when it is made of plain `name: value` lines: the offset of its
 * final CRLFCRLF (what headEnd returns) with the start line's end and each header line's offsets
 * left in scannedLineEnd and LINES; -1 when buf holds no end (as headEnd). IRREGULAR for
 * anything else (an obs-fold line, a byte that is not a token byte before the colon, more than
 * MAX_SCANNED_LINES lines, no end within HEAD_SCAN_BYTES): headEnd and parseHeaderText then
 * decide, as they do for every head. It replaces headEnd's scan, a search per line and a pass
 * per name over the head's text with one pass over bytes (typed-array reads are cheaper than
 * charCodeAt), and each string is sliced from the head's text once.
 */
export function scanHead(buf: Buffer): number {
  const n = buf.length < HEAD_SCAN_BYTES ? buf.length : HEAD_SCAN_BYTES;
  // Running out of bytes: the end is not in buf if all of buf was looked at.
  const short = n < buf.length ? IRREGULAR : -1;
  let i = crlf(buf, 0, n);
  if (i < 0) return short;
  scannedLineEnd = i;
  let lines = 0;
  let framing = FRAMING_NONE;
  for (;;) {
    // i is the CRLF ending a line: every CRLF in the head ends a line, so the head's end is the
    // first line that is empty.
    i += 2;
    if (i + 1 >= n) return short;
    let c = buf[i];
    if (c === 13 && buf[i + 1] === 10) {
      scannedLines = lines;
      scannedFraming = framing;
      return i - 2;
    }
    const start = i;
    while (TCHAR[c] === 1) {
      if (++i >= n) return short;
      c = buf[i];
    }
    if (c !== 58 || i === start || lines === MAX_SCANNED_LINES) return IRREGULAR;
    const colon = i;
    i++;
    while (i < n && ((c = buf[i]) === 32 || c === 9)) i++;
    const v = i;
    const eol = crlf(buf, i, n);
    if (eol < 0) return short;
    let e = eol;
    while (e > v && ((c = buf[e - 1]) === 32 || c === 9)) e--;
    const nameLength = colon - start;
    if (nameLength === 14 && isNameAt(buf, start, CONTENT_LENGTH)) {
      const length = digitsAt(buf, v, e);
      if (length < 0) framing = FRAMING_BY_TEXT;
      else if (framing !== FRAMING_BY_TEXT) framing = length;
    } else if (nameLength === 17 && isNameAt(buf, start, TRANSFER_ENCODING)) framing = FRAMING_BY_TEXT;
    const k = lines * 4;
    LINES[k] = start;
    LINES[k + 1] = colon;
    LINES[k + 2] = v;
    LINES[k + 3] = e;
    lines++;
    i = eol;
  }
}

/** Case-insensitive equality of buf's bytes from `at` with a lower-case token of the same length. */
function isNameAt(buf: Buffer, at: number, lower: Buffer): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[at + i] | 0x20) !== lower[i]) return false;
  return true;
}

/** The number that bytes [from, to) spell as 1 to 15 ASCII digits (as isDigits accepts), or -1. */
function digitsAt(buf: Buffer, from: number, to: number): number {
  if (to <= from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Offset of the first CRLF at or after `i` whose LF is before `n`, or -1. The byte after the
 * current one decides the step, so text is stepped over 2 bytes at a time.
 */
function crlf(buf: Buffer, i: number, n: number): number {
  while (i + 1 < n) {
    const d = buf[i + 1];
    if (d === 10) {
      if (buf[i] === 13) return i;
      i += 2;
    } else if (d === 13) i += 1;
    else i += 2;
  }
  return -1;
}

// Heads are found by a byte loop over their first bytes: Buffer.indexOf is a call into C++ that
// costs more than scanning a usual head (a few hundred bytes) in JS. Longer ones go to indexOf.
const HEAD_SCAN_BYTES = 1024;

/**
 * Offset of the head's final CRLFCRLF, or -1. Horspool over the 4-byte pattern: the byte where a
 * match would end decides the shift, so header text is stepped over 4 bytes at a time.
 */
export function headEnd(buf: Buffer): number {
  const n = buf.length < HEAD_SCAN_BYTES ? buf.length : HEAD_SCAN_BYTES;
  let i = 3;
  while (i < n) {
    const c = buf[i];
    if (c === 10) {
      if (buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i - 3;
      i += 2; // this LF can still be the pattern's first one
    } else if (c === 13) i += 1;
    else i += 4;
  }
  return n < buf.length ? buf.indexOf(CRLFCRLF, n - 3) : -1;
}

/** Buffer's own latin1 decoder, without toString's encoding lookup and argument checks. */
function latin1(buf: Buffer, end: number): string {
  return (buf as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(0, end);
}

function notALine(type: MessageType, buf: Buffer): ParseResult<never> {
  return invalid(`not an HTTP/1 ${type} line: "${printable(buf.subarray(0, 32))}"`);
}

/**
 * parseH1Frame for what it takes without parsing text, read from mem[from, from + length) in
 * place (a capture batch: no Buffer view made for a head): heads that repeat their direction's
 * cached one (with the Content-Length body bytes after them in the same event, as one 'head-body'
 * frame), and Content-Length body bytes. Their frames are pushed onto `out`; returns the bytes
 * taken, up to the first that need parsing (0: none, and nothing changed), which parseH1Frame
 * then parses. A response head is taken only when the request it answers is the oldest pending
 * one (no responses lost), as parseH1Frame would find it. The connection table's in-order path
 * (Protocol.parseInPlace).
 */
export function parseH1InPlace(type: MessageType, mem: Buffer, from: number, length: number, state: H1State, tsNs: number, out: H1Frame[]): number {
  const end = from + length;
  let at = from;
  for (let n = 0; at < end; at += n) {
    n = inPlaceFrame(type, mem, at, end - at, state, tsNs, out);
    if (n === 0) break;
  }
  return at - from;
}

/** One frame of parseH1InPlace, pushed onto `out`: the bytes it took (never 0 when pushed), or 0. */
function inPlaceFrame(type: MessageType, mem: Buffer, from: number, length: number, state: H1State, tsNs: number, out: H1Frame[]): number {
  const dir = type === 'request' ? state.request : state.response;
  if (dir.mode === 'fixed') {
    // parseH1Frame's 'fixed' case, on a view of the body bytes (the record keeps them); the mode
    // is 'fixed' only while bytes remain, so n > 0.
    const n = Math.min(dir.remaining, length);
    const last = takeFixed(dir, n);
    const lost = dir.lost;
    dir.lost = 0;
    out.push({ kind: 'body', data: payloadView(mem, from, n), last, lost });
    return n;
  }
  if (dir.mode !== 'head') return 0;
  let cached: H1CachedHead | undefined;
  let head: H1HeadResult;
  if (type === 'request') {
    cached = state.lastRequestHead;
    if (!repeatsAt(mem, from, length, cached)) return 0;
    head = repeatedRequest(state, cached, tsNs);
  } else {
    cached = state.lastResponseHead;
    if (state.methodsResynced || state.pendingMethods.length === 0 || state.pendingStarts[0] > tsNs) return 0;
    // A bad Content-Length is refused after the answered method is taken: left to parseH1Frame.
    if (!repeatsAt(mem, from, length, cached) || cached.framing === 'invalid') return 0;
    // The method is known here, so responseFraming never looks at the bytes after the head.
    const repeated = repeatedResponse(mem, state, cached, tsNs);
    if (repeated === undefined) return 0;
    head = repeated;
  }
  // Its Content-Length body follows in the same event (nginx's writev of head and body): one
  // frame for both, the body cut as the 'fixed' case above cuts it.
  const headBytes = cached.bytes.length;
  // (The head set the mode: TypeScript still narrows it to 'head' from the check above.)
  if ((dir.mode as H1Mode) !== 'fixed' || length === headBytes || dir.lost !== 0) {
    out.push(head.frame);
    return headBytes;
  }
  const n = Math.min(dir.remaining, length - headBytes);
  const last = takeFixed(dir, n);
  out.push({ kind: 'head-body', head: head.frame, data: payloadView(mem, from + headBytes, n), last });
  return headBytes + n;
}

/** Takes n bytes of a Content-Length body: true when they end it (a head comes next). */
function takeFixed(dir: H1DirState, n: number): boolean {
  dir.remaining -= n;
  if (dir.remaining !== 0) return false;
  dir.mode = 'head';
  return true;
}

/** A request head that repeats `cached`: its whole outcome is in its bytes, so the same frame and
 * result serve every repeat. */
function repeatedRequest(state: H1State, cached: H1CachedHead, tsNs: number): H1HeadResult {
  requestFraming(state, cached.method, cached.framing);
  pushPending(state, cached.method, tsNs);
  return cached.done;
}

/** A response head that repeats `cached` (at the start of buf, or with buf's head bytes read
 * before: see responseFraming): the cached outcome the answered request's method picks, or
 * undefined for a bad Content-Length. */
function repeatedResponse(buf: Buffer, state: H1State, cached: H1CachedHead, tsNs: number): H1HeadResult | undefined {
  const complete = responseFraming(buf, state, tsNs, cached.status, cached.bytes.length, cached.framing);
  if (complete === undefined) return undefined;
  return complete ? cached.done : cached.open!;
}

function parseRequestHead(buf: Buffer, state: H1State, tsNs: number): ParseResult<H1Frame> {
  const cached = state.lastRequestHead;
  if (repeats(buf, cached)) return repeatedRequest(state, cached, tsNs);
  const head = readHead(buf, 'request');
  if ('kind' in head) return head;
  const m = requestLine(head.text, head.lineEnd);
  if (m === undefined || m.method === undefined) {
    const line = head.text.slice(0, head.lineEnd);
    return m === undefined && looksLikeRequest(buf, 0) !== false ? invalid(`bad request line "${line.slice(0, 64)}"`) : notALine('request', buf);
  }
  const headers = headHeaders(head);
  if (typeof headers === 'string') return invalid(headers);
  const method = m.method;
  const framing = headFraming(head.framing, headers);
  if (framing === 'invalid') return invalid('bad Content-Length in request');
  const complete = requestFraming(state, method, framing);
  pushPending(state, method, tsNs);
  const result: H1HeadResult = {
    kind: 'success',
    frame: { kind: 'request-head', method, target: m.target, version: m.minor === 48 ? '1.0' : '1.1', headers, complete },
    consumed: head.consumed,
  };
  const text = head.text.length <= MAX_CACHED_HEAD ? head.text : undefined;
  // Cached at a text's first repeat and dropped at the first head that differs: heads that all
  // differ (per-request ids) pay a string compare, no copy and no byte compare.
  state.lastRequestHead = text !== undefined && text === state.lastRequestText ? cachedHead(buf, head.consumed, method, 0, framing, result, undefined) : undefined;
  state.lastRequestText = text;
  return result;
}

/** Sets the request direction's mode for a head of `method` and `framing`; true when the message ends with its head. */
function requestFraming(state: H1State, method: string, framing: H1Framing): boolean {
  const dir = state.request;
  // After CONNECT the client speaks the tunnelled protocol, never HTTP again.
  if (method === 'CONNECT') {
    dir.mode = 'opaque';
    return true;
  }
  if (framing === 'chunked') {
    dir.mode = 'chunk-size';
    return false;
  }
  if (typeof framing === 'number' && framing > 0) {
    dir.mode = 'fixed';
    dir.remaining = framing;
    return false;
  }
  return true;
}

/** Remembers a request's method for the framing of its response (two arrays: no object per request). */
function pushPending(state: H1State, method: string, tsNs: number): void {
  if (state.pendingMethods.length >= MAX_PENDING_METHODS) {
    state.pendingMethods.shift();
    state.pendingStarts.shift();
  }
  state.pendingMethods.push(method);
  state.pendingStarts.push(tsNs);
}

function parseResponseHead(buf: Buffer, state: H1State, tsNs: number): ParseResult<H1Frame> {
  const cached = state.lastResponseHead;
  if (repeats(buf, cached)) return repeatedResponse(buf, state, cached, tsNs) ?? invalid(BAD_RESPONSE_LENGTH);
  const h = readHead(buf, 'response');
  if ('kind' in h) return h;
  const status = statusLine(h.text, h.lineEnd);
  if (status === 0) return invalid(`bad status line "${h.text.slice(0, Math.min(h.lineEnd, 64))}"`);
  const headers = headHeaders(h);
  if (typeof headers === 'string') return invalid(headers);
  const framing = headFraming(h.framing, headers);
  const complete = responseFraming(buf, state, tsNs, status, h.consumed, framing);
  if (complete === undefined) return invalid(BAD_RESPONSE_LENGTH);
  const version = h.text.charCodeAt(7) === 48 ? '1.0' : '1.1';
  const interim = status < 200 && status !== 101;
  const result: H1HeadResult = { kind: 'success', frame: { kind: 'response-head', status, version, headers, interim, complete }, consumed: h.consumed };
  const text = h.text.length <= MAX_CACHED_HEAD ? h.text : undefined;
  let next: H1CachedHead | undefined;
  if (text !== undefined && text === state.lastResponseText) {
    // Both outcomes a repeat can have (complete or not, by the answered request's method), so a
    // repeat allocates nothing.
    const other: H1HeadResult = { kind: 'success', frame: { kind: 'response-head', status, version, headers, interim, complete: !complete }, consumed: h.consumed };
    next = cachedHead(buf, h.consumed, '', status, framing, complete ? result : other, complete ? other : result);
  }
  state.lastResponseHead = next;
  state.lastResponseText = text;
  return result;
}

/**
 * Sets the response direction's mode for a head of `status` and `framing` that takes `consumed`
 * bytes of buf (the framing matters only when a body may follow). True when the message ends with its head,
 * false when a body follows, undefined for a bad Content-Length.
 */
function responseFraming(buf: Buffer, state: H1State, tsNs: number, status: number, consumed: number, framing: H1Framing): boolean | undefined {
  if (status < 200 && status !== 101) return true;
  const dir = state.response;
  // The answered request's method decides framing (chosen like the stitcher pairs).
  let method = answeredMethod(state, tsNs);
  if (method === undefined && looksLikeResponse(buf, consumed) !== false && buf.length - consumed >= 7) {
    // Its request was lost; another status line right after the head means it had no body (HEAD).
    method = 'HEAD';
  }
  if (status === 101 || (method === 'CONNECT' && status < 300)) {
    // The connection is now a tunnel both ways.
    dir.mode = 'opaque';
    state.request.mode = 'opaque';
    return true;
  }
  if (method === 'HEAD' || status === 204 || status === 304) {
    dir.mode = 'head';
    return true;
  }
  if (framing === 'invalid') return undefined;
  if (framing === 'chunked') dir.mode = 'chunk-size';
  else if (framing === 'none') dir.mode = 'until-eof';
  else if (framing > 0) {
    dir.mode = 'fixed';
    dir.remaining = framing;
  } else return true;
  return false;
}

/** The cache entry for a head that just repeated: its bytes in memory of their own and its outcomes. */
function cachedHead(buf: Buffer, consumed: number, method: string, status: number, framing: H1Framing, done: H1HeadResult, open: H1HeadResult | undefined): H1CachedHead {
  const { bytes, words } = headCopies(buf, consumed);
  return { bytes, words, method, status, framing, done, open };
}

/**
 * `HTTP/1.x NNN[ reason]`, the first `lineEnd` chars of `text`, checked by char codes (a regex exec
 * per response was a visible cost): the status, or 0. The minor version is char 7.
 */
function statusLine(text: string, lineEnd: number): number {
  if (lineEnd < 12 || !isHttp1Prefix(text, 0)) return 0;
  const minor = text.charCodeAt(7);
  const d0 = text.charCodeAt(9) - 48;
  const d1 = text.charCodeAt(10) - 48;
  const d2 = text.charCodeAt(11) - 48;
  if ((minor !== 48 && minor !== 49) || text.charCodeAt(8) !== 32) return 0;
  if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return 0;
  if (lineEnd > 12) {
    if (text.charCodeAt(12) !== 32) return 0;
    // Reason phrase: tab, SP, VCHAR, obs-text (RFC 9112 §4).
    for (let i = 13; i < lineEnd; i++) {
      const c = text.charCodeAt(i);
      if ((c < 32 && c !== 9) || c === 127) return 0;
    }
  }
  return d0 * 100 + d1 * 10 + d2;
}

/**
 * `METHOD SP target SP HTTP/1.x` checked by char codes, as REQUEST_LINE states it (the regex and
 * its match array per request were a visible cost): the method as its KNOWN_METHODS constant
 * (undefined for a well-formed unknown one), the target and the minor version's char code.
 */
function requestLine(text: string, lineEnd: number): { method: string | undefined; target: string; minor: number } | undefined {
  let sp = 0;
  while (sp < lineEnd && sp <= 32) {
    const c = text.charCodeAt(sp);
    if (c >= 128 || TCHAR[c] === 0) break;
    sp++;
  }
  if (sp === 0 || sp > 32 || sp >= lineEnd || text.charCodeAt(sp) !== 32) return undefined;
  // " HTTP/1.x" ends the line; the target between is at least one char, none SP or CTL.
  const version = lineEnd - 9;
  if (version <= sp + 1 || text.charCodeAt(version) !== 32 || !isHttp1Prefix(text, version + 1)) return undefined;
  const minor = text.charCodeAt(lineEnd - 1);
  if (minor !== 48 && minor !== 49) return undefined;
  for (let i = sp + 1; i < version; i++) {
    const c = text.charCodeAt(i);
    if (c <= 32 || c === 127) return undefined;
  }
  return { method: knownMethod(text, sp), target: text.slice(sp + 1, version), minor };
}

/** The KNOWN_METHODS entry equal to text[0, length), without slicing a new string per request. */
function knownMethod(text: string, length: number): string | undefined {
  for (const m of KNOWN_METHODS) if (m.length === length && sameChars(text, m)) return m;
  return undefined;
}

// startsWith by char codes: a builtin call per line was a visible share of these short checks.

/** text[0, s.length) === s. */
function sameChars(text: string, s: string): boolean {
  for (let i = 0; i < s.length; i++) if (text.charCodeAt(i) !== s.charCodeAt(i)) return false;
  return true;
}

/** text.startsWith('HTTP/1.', at). */
function isHttp1Prefix(text: string, at: number): boolean {
  return (
    text.charCodeAt(at) === 72 &&
    text.charCodeAt(at + 1) === 84 &&
    text.charCodeAt(at + 2) === 84 &&
    text.charCodeAt(at + 3) === 80 &&
    text.charCodeAt(at + 4) === 47 &&
    text.charCodeAt(at + 5) === 49 &&
    text.charCodeAt(at + 6) === 46
  );
}

/**
 * Header lines of `text` from offset `from` on, folding obs-fold continuations; a string is the
 * error. A line's end is found by indexOf (faster than a char loop over the value); its name is
 * checked while its colon is looked for, in one pass.
 */
function parseHeaderText(text: string, from: number): RawHeaders | string {
  const headers: RawHeaders = [];
  const len = text.length;
  let at = from;
  while (at < len) {
    const start = at;
    const eol = lineEnd(text, start);
    at = eol + 2;
    if (eol === start) continue;
    const c = text.charCodeAt(start);
    if ((c === 32 || c === 9) && headers.length > 0) {
      headers[headers.length - 1] += ' ' + text.slice(start, eol).trim();
      continue;
    }
    let colon = start;
    while (colon < eol) {
      const ch = text.charCodeAt(colon);
      if (ch >= 128 || TCHAR[ch] === 0) break;
      colon++;
    }
    if (colon === start || colon === eol || text.charCodeAt(colon) !== 58) return badHeaderLine(text, start, eol);
    let v = colon + 1;
    let e = eol;
    while (v < e && isOws(text.charCodeAt(v))) v++;
    while (e > v && isOws(text.charCodeAt(e - 1))) e--;
    headers.push(text.slice(start, colon), text.slice(v, e));
  }
  return headers;
}

/** Where the line starting at `start` ends (its CRLF, or the text's end). */
function lineEnd(text: string, start: number): number {
  const eol = text.indexOf('\r\n', start);
  return eol < 0 ? text.length : eol;
}

/** Why the header line text[start, eol) is refused. */
function badHeaderLine(text: string, start: number, eol: number): string {
  const colon = text.indexOf(':', start);
  if (colon <= start || colon >= eol) return `header line without name: "${text.slice(start, eol).slice(0, 64)}"`;
  return `bad header name "${text.slice(start, colon).slice(0, 64)}"`;
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * Whether buf starts with the cached head's bytes: its head is then that one, whose first CRLFCRLF
 * ends those bytes, and parses the same. Compared a 32-bit word at a time, instead of a scan, a
 * latin1 decode and the header strings: an Int32Array over buf's whole memory against the cached
 * copy whose alignment matches buf's, so both sides are plain aligned element loads (half the
 * time of DataView.getInt32 pairs, the previous way, which was most of a repeated head's cost;
 * Buffer.compare's argument checks and call into C++ cost more still).
 */
function repeats(buf: Buffer, cached: H1CachedHead | undefined): cached is H1CachedHead {
  return repeatsAt(buf, 0, buf.length, cached);
}

/** repeats for the bytes mem[from, from + length). */
function repeatsAt(mem: Buffer, from: number, length: number, cached: H1CachedHead | undefined): cached is H1CachedHead {
  if (cached === undefined) return false;
  const bytes = cached.bytes;
  const n = bytes.length;
  const e = from + n;
  // Only a head that ends where the cached one does is compared.
  if (length < n || mem[e - 1] !== 10 || mem[e - 2] !== 13 || mem[e - 3] !== 10 || mem[e - 4] !== 13) return false;
  const at = mem.byteOffset + from;
  const a = at & 3;
  // Bytes before the first word boundary, then whole words, then the bytes after the last.
  const lead = (4 - a) & 3;
  let i = 0;
  for (; i < lead && i < n; i++) if (mem[from + i] !== bytes[i]) return false;
  const mine = wordsOf(mem);
  const theirs = cached.words[a];
  const full = (n - i) >> 2;
  const w = (at + i) >> 2;
  const c = (a + i) >> 2;
  for (let k = 0; k < full; k++) if (mine[w + k] !== theirs[c + k]) return false;
  for (i += full * 4; i < n; i++) if (mem[from + i] !== bytes[i]) return false;
  return true;
}

// Int32Array over the whole ArrayBuffer of the last buffer compared: heads in a row mostly sit in
// one capture batch, so one array serves the batch instead of one allocation per compare. It
// keeps that one batch alive until a head in another buffer is compared. The Buffer last asked
// about is checked first: the in-place path asks with the batch itself, and reading a Buffer's
// `buffer` on every compare was a tenth of the compare's time.
let wordsMem: Buffer | undefined;
let wordsBuffer: ArrayBufferLike | undefined;
let words: Int32Array<ArrayBufferLike> = new Int32Array(0);

function wordsOf(mem: Buffer): Int32Array {
  if (mem === wordsMem) return words;
  wordsMem = mem;
  const ab = mem.buffer;
  if (ab !== wordsBuffer) {
    wordsBuffer = ab;
    words = new Int32Array(ab, 0, ab.byteLength >> 2);
  }
  return words;
}

/** buf's first n bytes in memory of their own (not a view pinning a batch, nor a slice of
 * Buffer's shared pool), and as words in each of the four alignments. */
function headCopies(buf: Buffer, n: number): { bytes: Uint8Array; words: Int32Array[] } {
  const all: Int32Array[] = [];
  for (let a = 0; a < 4; a++) {
    const w = new Int32Array((a + n + 3) >> 2);
    new Uint8Array(w.buffer).set(buf.subarray(0, n), a);
    all.push(w);
  }
  return { bytes: new Uint8Array(all[0].buffer, 0, n), words: all };
}

/** Case-insensitive equality with a lower-case ASCII name, without allocating a lowered copy. */
function isName(s: string, lower: string): boolean {
  if (s.length !== lower.length) return false;
  for (let i = 0; i < s.length; i++) if ((s.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** A head's framing from its Head.framing: as scanHead read it from bytes, or bodyFraming's. Exported for the test. */
export function headFraming(f: number, headers: RawHeaders): H1Framing {
  if (f >= 0) return f;
  return f === FRAMING_NONE ? 'none' : bodyFraming(headers);
}

/** 'chunked', a Content-Length, 'none' (no framing header) or 'invalid'. */
function bodyFraming(headers: RawHeaders): H1Framing {
  let length: number | undefined;
  let chunked = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (isName(name, 'transfer-encoding')) {
      const codings = headers[i + 1].toLowerCase().split(',');
      chunked = codings[codings.length - 1].trim() === 'chunked';
    } else if (isName(name, 'content-length')) {
      const raw = headers[i + 1];
      const v = isDigits(raw) ? raw : raw.split(',')[0].trim();
      if (!isDigits(v)) return 'invalid';
      length = Number(v);
    }
  }
  if (chunked) return 'chunked';
  return length ?? 'none';
}

/** 1 to 15 ASCII digits. */
function isDigits(v: string): boolean {
  if (v.length === 0 || v.length > 15) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Takes the method of the request a response starting at `tsNs` answers, if it was captured. */
function answeredMethod(state: H1State, tsNs: number): string | undefined {
  const methods = state.pendingMethods;
  const starts = state.pendingStarts;
  if (methods.length === 0 || starts[0] > tsNs) return undefined;
  let i = 0;
  // After lost responses, the answered request is the latest one sent before this response.
  if (state.methodsResynced) while (i + 1 < starts.length && starts[i + 1] <= tsNs) i++;
  state.methodsResynced = false;
  const method = methods[i];
  if (i === 0) {
    methods.shift();
    starts.shift();
  } else {
    methods.splice(0, i + 1);
    starts.splice(0, i + 1);
  }
  return method;
}

export function skipH1(type: MessageType, length: number, state: H1State): boolean {
  const dir = type === 'request' ? state.request : state.response;
  if (dir.mode === 'opaque' || dir.mode === 'until-eof') return true;
  if ((dir.mode === 'fixed' || dir.mode === 'chunk-data') && length <= dir.remaining) {
    dir.remaining -= length;
    dir.lost += length;
    // Lost up to the body's end: the message ends without its last bytes.
    if (dir.remaining === 0) dir.mode = dir.mode === 'fixed' ? 'fixed-lost-end' : 'chunk-crlf';
    return true;
  }
  return false;
}

export function resyncH1(type: MessageType, state: H1State): void {
  const dir = type === 'request' ? state.request : state.response;
  dir.mode = 'head';
  dir.remaining = 0;
  dir.lost = 0;
  if (type === 'response') state.methodsResynced = true;
}

function printable(b: Buffer): string {
  return b.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
}
