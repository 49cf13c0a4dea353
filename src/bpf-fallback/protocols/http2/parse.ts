// HTTP/2 framing over captured bytes (RFC 9113 §4): the client preface, 9-byte frame headers,
// padding and priority fields stripped. Frames the stitcher does not need are consumed as
// 'ignored'. Resynchronisation looks for a chain of plausible frame headers. Pure.

import { NEEDS_MORE_DATA, type MessageType, type ParseResult, type StateOptions } from '../protocol.js';
import { HpackDecoder } from './hpack.js';
import { Flag, FrameType, type H2Frame, type H2State } from './types.js';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HEADER_LENGTH = 9;
/** Larger frames are possible after SETTINGS_MAX_FRAME_SIZE, but we do not buffer them. */
const MAX_FRAME_PAYLOAD = 1024 * 1024;
const TYPICAL_MAX_PAYLOAD = 16384;
const ALLOWED_FLAGS = [0x09, 0x2d, 0x00, 0x00, 0x01, 0x0c, 0x01, 0x00, 0x00, 0x04];

export function createH2State(options: StateOptions): H2State {
  return {
    request: { preface: !options.midStream, decoder: new HpackDecoder(!options.midStream) },
    response: { preface: false, decoder: new HpackDecoder(!options.midStream) },
    streams: new Map(),
    maxBodyBytes: options.maxBodyBytes,
    hpackErrors: 0,
  };
}

export function detectH2(type: MessageType, buf: Buffer): boolean | undefined {
  if (type === 'request' && buf.length > 0 && buf[0] === 0x50 /* P */) {
    const n = Math.min(buf.length, PREFACE.length);
    if (buf.compare(PREFACE, 0, n, 0, n) !== 0) return false;
    return n === PREFACE.length ? true : undefined;
  }
  // Mid-stream: two consecutive plausible frames (or one that exactly fills what arrived).
  return chainAt(buf, 0);
}

/** true: plausible frames from `at`; false: not a frame start; undefined: need more bytes. */
function chainAt(buf: Buffer, at: number): boolean | undefined {
  const first = plausibleHeader(buf, at, true);
  if (first !== true) return first;
  const next = at + HEADER_LENGTH + readLength(buf, at);
  if (next === buf.length) return true;
  if (next > buf.length) return undefined;
  const second = plausibleHeader(buf, next, true);
  return second === undefined ? undefined : second;
}

function readLength(buf: Buffer, at: number): number {
  return (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2];
}

function plausibleHeader(buf: Buffer, at: number, strict: boolean): boolean | undefined {
  if (buf.length - at < HEADER_LENGTH) return undefined;
  const length = readLength(buf, at);
  const type = buf[at + 3];
  const flags = buf[at + 4];
  if (buf[at + 5] & 0x80) return false;
  const streamId = buf.readUInt32BE(at + 5) & 0x7fffffff;
  if (type > 9) return !strict && length <= MAX_FRAME_PAYLOAD;
  if (length > (strict ? TYPICAL_MAX_PAYLOAD : MAX_FRAME_PAYLOAD)) return false;
  if (strict && (flags & ~ALLOWED_FLAGS[type]) !== 0) return false;
  switch (type) {
    case FrameType.SETTINGS:
      return streamId === 0 && length % 6 === 0 && (!(flags & Flag.ACK) || length === 0);
    case FrameType.PING:
      return streamId === 0 && length === 8;
    case FrameType.GOAWAY:
      return streamId === 0 && length >= 8;
    case FrameType.WINDOW_UPDATE:
      return length === 4;
    case FrameType.RST_STREAM:
      return streamId !== 0 && length === 4;
    case FrameType.PRIORITY:
      return streamId !== 0 && length === 5;
    default:
      return streamId !== 0;
  }
}

export function findH2Boundary(type: MessageType, buf: Buffer, start: number, state: H2State): number {
  if (type === 'request' && state.request.preface) {
    const at = buf.indexOf(PREFACE, start);
    if (at >= 0) return at;
  }
  for (let i = start; i + HEADER_LENGTH <= buf.length; i++) if (chainAt(buf, i) !== false) return i;
  return -1;
}

export function parseH2Frame(type: MessageType, buf: Buffer, state: H2State): ParseResult<H2Frame> {
  const dir = type === 'request' ? state.request : state.response;
  if (dir.preface) {
    const n = Math.min(buf.length, PREFACE.length);
    if (buf.compare(PREFACE, 0, n, 0, n) !== 0) return { kind: 'invalid', reason: 'missing HTTP/2 client preface' };
    if (n < PREFACE.length) return NEEDS_MORE_DATA;
    dir.preface = false;
    return { kind: 'ignored', consumed: PREFACE.length };
  }
  const ok = plausibleHeader(buf, 0, false);
  if (ok === undefined) return NEEDS_MORE_DATA;
  if (!ok) return { kind: 'invalid', reason: `implausible HTTP/2 frame header ${buf.toString('hex', 0, HEADER_LENGTH)}` };
  const length = readLength(buf, 0);
  const total = HEADER_LENGTH + length;
  if (buf.length < total) return NEEDS_MORE_DATA;
  const ftype = buf[3];
  const flags = buf[4];
  const streamId = buf.readUInt32BE(5) & 0x7fffffff;
  switch (ftype) {
    case FrameType.DATA:
    case FrameType.HEADERS:
    case FrameType.PUSH_PROMISE: {
      let from = HEADER_LENGTH;
      let to = total;
      if (flags & Flag.PADDED) {
        // The pad length is the payload's first byte: an empty payload has none (RFC 9113 §6.1).
        if (length < 1) return { kind: 'invalid', reason: `PADDED frame without a pad length on stream ${streamId}` };
        const pad = buf[from++];
        to -= pad;
      }
      let promisedId: number | undefined;
      if (ftype === FrameType.HEADERS && flags & Flag.PRIORITY) from += 5;
      if (ftype === FrameType.PUSH_PROMISE) {
        if (to - from < 4) return { kind: 'invalid', reason: 'PUSH_PROMISE shorter than its promised id' };
        promisedId = buf.readUInt32BE(from) & 0x7fffffff;
        from += 4;
      }
      if (to < from) return { kind: 'invalid', reason: `padding longer than frame on stream ${streamId}` };
      const frame: H2Frame = { type: ftype, flags, streamId, payload: buf.subarray(from, to) };
      if (promisedId !== undefined) frame.promisedId = promisedId;
      return { kind: 'success', frame, consumed: total };
    }
    case FrameType.CONTINUATION:
    case FrameType.RST_STREAM:
      return { kind: 'success', frame: { type: ftype, flags, streamId, payload: buf.subarray(HEADER_LENGTH, total) }, consumed: total };
    default:
      return { kind: 'ignored', consumed: total };
  }
}

export function skipH2(): boolean {
  return false;
}
