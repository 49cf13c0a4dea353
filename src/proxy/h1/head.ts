// HTTP/1.x message heads (start line + header section) parsed from raw bytes, resumable as bytes
// arrive. Pure: no sockets, no timers. Acceptance rules mirror Node's llhttp in strict mode so the
// proxy rejects exactly what the app's own Node server would reject (and with the same answer).

import { METHODS } from 'node:http';
import type { RawHeaders } from '../exchange.js';

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

/** Node's own list, which is llhttp's: any other method gets 400 from a Node server. */
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);

/** RFC 9110 tchar, as a byte lookup table. */
export const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let b = 0x30; b <= 0x39; b++) TOKEN[b] = 1;
for (let b = 0x41; b <= 0x5a; b++) TOKEN[b] = 1;
for (let b = 0x61; b <= 0x7a; b++) TOKEN[b] = 1;

/** Field value bytes llhttp accepts: HTAB, visible ASCII, space, obs-text; no CTLs, no DEL. */
const VALUE = new Uint8Array(256);
VALUE[HTAB] = 1;
for (let b = 0x20; b <= 0xff; b++) VALUE[b] = b === 0x7f ? 0 : 1;

export interface H1Error {
  /** Stable code, e.g. ST_H1_INVALID_HEADER. */
  code: string;
  message: string;
  /** The status Node's server answers with: 400; 431 for an oversized header section, 413 for oversized chunk extensions. */
  status: 400 | 413 | 431;
}

/** Parse progress kept between calls so a head arriving byte by byte is scanned once. */
export interface HeadState {
  /** Next unscanned byte (always a line start). */
  pos: number;
  /** Whether the start line has been parsed. */
  started: boolean;
  method: string;
  target: string;
  /** '1.0' | '1.1' once started. */
  version: string;
  status: number;
  headers: RawHeaders;
  /** Byte offset where each header line starts, parallel to headers (one per name/value pair). */
  lineStarts: number[];
  /** Offset of the blank line ending the head; the body starts 2 bytes later. */
  blankLine: number;
  /** Bytes counted toward the header limit the way Node counts them (target + names + values). */
  counted: number;
}

export function newHeadState(): HeadState {
  return { pos: 0, started: false, method: '', target: '', version: '', status: 0, headers: [], lineStarts: [], blankLine: -1, counted: 0 };
}

export const NEED_MORE = 0;
export const HEAD_DONE = 1;
export type HeadResult = typeof NEED_MORE | typeof HEAD_DONE | H1Error;

export interface HeadLimits {
  /** Node's --max-http-header-size rule: counted bytes reaching this gives 431. */
  maxHeaderSize: number;
  /** Hard cap on raw head bytes (whitespace and line ends included) so memory stays bounded. */
  maxRawHead: number;
}

function err(code: string, message: string, status: 400 | 413 | 431 = 400): H1Error {
  return { code, message, status };
}

/**
 * Continues parsing the head held in `buf` (the same growing buffer each call, bytes only
 * appended). Returns NEED_MORE, HEAD_DONE (the head ends at st.blankLine + 2) or an error.
 */
export function parseHead(buf: Buffer, st: HeadState, isRequest: boolean, limits: HeadLimits): HeadResult {
  for (;;) {
    const lf = buf.indexOf(LF, st.pos);
    if (lf < 0) {
      return buf.length > limits.maxRawHead ? err('ST_H1_HEADER_OVERFLOW', `header section exceeds ${limits.maxRawHead} bytes`, 431) : NEED_MORE;
    }
    if (lf > limits.maxRawHead) return err('ST_H1_HEADER_OVERFLOW', `header section exceeds ${limits.maxRawHead} bytes`, 431);
    if (lf === st.pos || buf[lf - 1] !== CR) return err('ST_H1_BARE_LF', `line ending at byte ${lf} is LF without CR`);
    const start = st.pos;
    const end = lf - 1;
    st.pos = lf + 1;
    if (!st.started) {
      // llhttp skips empty lines before a request line (RFC 9112 §2.2 robustness).
      if (end === start && isRequest) continue;
      const r = isRequest ? parseRequestLine(buf, start, end, st) : parseStatusLine(buf, start, end, st);
      if (r) return r;
      st.started = true;
      continue;
    }
    if (end === start) {
      st.blankLine = start;
      return HEAD_DONE;
    }
    const r = parseFieldLine(buf, start, end, st.headers);
    if (r) return r;
    st.lineStarts.push(start);
    st.counted += st.headers[st.headers.length - 2].length + st.headers[st.headers.length - 1].length;
    if (st.counted >= limits.maxHeaderSize) return err('ST_H1_HEADER_OVERFLOW', `header fields reach ${limits.maxHeaderSize} bytes`, 431);
  }
}

function parseRequestLine(buf: Buffer, start: number, end: number, st: HeadState): H1Error | null {
  let i = start;
  while (i < end && TOKEN[buf[i]]) i++;
  const method = buf.toString('latin1', start, i);
  if (i === start || buf[i] !== SP || !KNOWN_METHODS.has(method)) {
    return err('ST_H1_INVALID_METHOD', `request line: unknown or malformed method at byte ${i}`);
  }
  while (buf[i] === SP) i++;
  const t0 = i;
  while (i < end && buf[i] > SP && buf[i] < 0x7f) i++;
  if (i === t0 || buf[i] !== SP) return err('ST_H1_INVALID_TARGET', `request line: invalid request-target byte at ${i}`);
  const target = buf.toString('latin1', t0, i);
  while (buf[i] === SP) i++;
  const version = versionAt(buf, i, end);
  if (version === '' || i + 8 !== end) return err('ST_H1_INVALID_VERSION', `request line: expected HTTP/1.0 or HTTP/1.1 at byte ${i}`);
  st.method = method;
  st.target = target;
  st.version = version;
  st.counted += target.length;
  return null;
}

function parseStatusLine(buf: Buffer, start: number, end: number, st: HeadState): H1Error | null {
  const version = versionAt(buf, start, end);
  const i = start + 8;
  if (version === '' || buf[i] !== SP || end < i + 4) return err('ST_H1_INVALID_STATUS_LINE', `status line: expected HTTP/1.x and a status at byte ${start}`);
  let status = 0;
  for (let j = i + 1; j < i + 4; j++) {
    const d = buf[j] - 0x30;
    if (d < 0 || d > 9) return err('ST_H1_INVALID_STATUS_LINE', `status line: non-digit status at byte ${j}`);
    status = status * 10 + d;
  }
  if (status < 100 || (end > i + 4 && buf[i + 4] !== SP)) return err('ST_H1_INVALID_STATUS_LINE', `status line: malformed status at byte ${i + 1}`);
  for (let j = i + 5; j < end; j++) {
    if (!VALUE[buf[j]]) return err('ST_H1_INVALID_STATUS_LINE', `status line: invalid reason byte at ${j}`);
  }
  st.version = version;
  st.status = status;
  st.counted += end - i;
  return null;
}

/** '1.0' / '1.1' when buf[i..i+8) is that version token, else ''. */
function versionAt(buf: Buffer, i: number, end: number): string {
  if (end - i < 8) return '';
  if (buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 || buf[i + 4] !== 0x2f || buf[i + 5] !== 0x31 || buf[i + 6] !== 0x2e) return '';
  const minor = buf[i + 7];
  return minor === 0x31 ? '1.1' : minor === 0x30 ? '1.0' : '';
}

/** Parses `name: value` from buf[start, end) (no CRLF) onto `out`; null when valid. */
export function parseFieldLine(buf: Buffer, start: number, end: number, out: RawHeaders): H1Error | null {
  const first = buf[start];
  if (first === SP || first === HTAB) return err('ST_H1_OBS_FOLD', `obsolete line folding at byte ${start}`);
  let i = start;
  while (i < end && TOKEN[buf[i]]) i++;
  if (i === start || i === end || buf[i] !== 0x3a) return err('ST_H1_INVALID_HEADER', `invalid header name byte at ${i}`);
  const name = buf.toString('latin1', start, i);
  i++;
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  let vEnd = end;
  while (vEnd > i && (buf[vEnd - 1] === SP || buf[vEnd - 1] === HTAB)) vEnd--;
  for (let j = i; j < vEnd; j++) {
    if (!VALUE[buf[j]]) return err('ST_H1_INVALID_HEADER', `invalid byte 0x${buf[j].toString(16)} in value of header '${name}' at byte ${j}`);
  }
  out.push(name, buf.toString('latin1', i, vEnd));
  return null;
}

/** How a message body is delimited. */
export const enum BodyKind {
  None = 0,
  Length = 1,
  Chunked = 2,
  /** Response bodies only: until the upstream closes. */
  UntilClose = 3,
}

/** What the header section says about framing and the connection. */
export interface Framing {
  kind: BodyKind;
  length: number;
  /** Connection: close (1.1) or no keep-alive (1.0). */
  close: boolean;
  /** Connection: upgrade together with an Upgrade header. */
  upgrade: boolean;
  /** Content-Length and Transfer-Encoding both present (a response then must not be reused). */
  both: boolean;
  /** Host header value, if any. */
  host: string | undefined;
  /** Keep-Alive: timeout=N in seconds, if any (responses). */
  keepAliveSec: number;
}

/**
 * Framing of a request per RFC 9112 §6 with llhttp's strictness: CL+TE, repeated CL,
 * a non-digit CL, or a TE whose final coding is not chunked are all 400 (request smuggling).
 */
export function requestFraming(st: HeadState): Framing | H1Error {
  const f = scanHeaders(st);
  if ('code' in f) return f;
  if (f.both) return err('ST_H1_INVALID_TRANSFER_ENCODING', 'Content-Length together with Transfer-Encoding');
  if (f.kind === BodyKind.UntilClose) return err('ST_H1_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding of a request must end in chunked');
  if (st.method === 'CONNECT') f.kind = BodyKind.None;
  return f;
}

/** Framing of a response to `method` (RFC 9112 §6.3): HEAD, 1xx, 204, 304 never have a body. */
export function responseFraming(st: HeadState, method: string): Framing | H1Error {
  const f = scanHeaders(st);
  if ('code' in f) return f;
  const s = st.status;
  if (method === 'HEAD' || s < 200 || s === 204 || s === 304 || (method === 'CONNECT' && s < 300)) {
    f.kind = BodyKind.None;
  } else if (f.kind === BodyKind.UntilClose) {
    f.close = true;
  }
  return f;
}

const enum Tok {
  Close = 1,
  KeepAlive = 2,
  Upgrade = 4,
}

function scanHeaders(st: HeadState): Framing | H1Error {
  const h = st.headers;
  let cl = -1;
  let te: string | undefined;
  let conn = 0;
  let hasUpgrade = false;
  let host: string | undefined;
  let keepAliveSec = 0;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i];
    // Cheap first filter on length before the case-insensitive compare.
    switch (name.length) {
      case 4:
        if (host === undefined && name.toLowerCase() === 'host') host = h[i + 1];
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') hasUpgrade = true;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') conn |= connectionTokens(h[i + 1]);
        else if (name.toLowerCase() === 'keep-alive') keepAliveSec = keepAliveTimeout(h[i + 1]);
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          const v = h[i + 1];
          if (cl >= 0) return err('ST_H1_INVALID_CONTENT_LENGTH', 'Content-Length appears more than once');
          if (!/^[0-9]{1,15}$/.test(v)) return err('ST_H1_INVALID_CONTENT_LENGTH', `Content-Length '${v}' is not one run of at most 15 digits`);
          cl = Number(v);
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') te = te === undefined ? h[i + 1] : `${te},${h[i + 1]}`;
        break;
    }
  }
  const v11 = st.version === '1.1';
  const f: Framing = {
    // Requests without framing headers have no body; responses run until close.
    kind: cl >= 0 ? BodyKind.Length : st.method !== '' ? BodyKind.None : BodyKind.UntilClose,
    length: cl >= 0 ? cl : 0,
    close: v11 ? (conn & Tok.Close) !== 0 : (conn & Tok.KeepAlive) === 0,
    upgrade: hasUpgrade && (conn & Tok.Upgrade) !== 0,
    both: false,
    host,
    keepAliveSec,
  };
  if (te !== undefined) {
    const codings = te.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '');
    if (codings.length > 0) {
      const chunkedAt = codings.indexOf('chunked');
      if (chunkedAt >= 0 && chunkedAt !== codings.length - 1) {
        return err('ST_H1_INVALID_TRANSFER_ENCODING', `Transfer-Encoding '${te}' has codings after chunked`);
      }
      f.both = cl >= 0;
      f.kind = chunkedAt >= 0 ? BodyKind.Chunked : BodyKind.UntilClose;
    }
  }
  return f;
}

function connectionTokens(v: string): number {
  let t = 0;
  for (const raw of v.split(',')) {
    const tok = raw.trim().toLowerCase();
    if (tok === 'close') t |= Tok.Close;
    else if (tok === 'keep-alive') t |= Tok.KeepAlive;
    else if (tok === 'upgrade') t |= Tok.Upgrade;
  }
  return t;
}

function keepAliveTimeout(v: string): number {
  const m = /(?:^|[\s,])timeout=(\d+)/i.exec(v);
  return m ? Number(m[1]) : 0;
}
