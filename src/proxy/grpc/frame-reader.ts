// gRPC length-prefixed message framing (1 byte compressed flag, 4 bytes big-endian length,
// payload), read from a whole captured body or incrementally from a chunk stream.

import zlib from 'node:zlib';

const GRPC_FRAME_HEADER_LENGTH = 5;

const EMPTY = Buffer.alloc(0);

export const GrpcErrorCode = {
  BadFlag: 'ST_GRPC_BAD_FLAG',
  EncodingUnsupported: 'ST_GRPC_ENCODING_UNSUPPORTED',
  InflateFailed: 'ST_GRPC_INFLATE_FAILED',
  InflateTooLarge: 'ST_GRPC_INFLATE_TOO_LARGE',
} as const;
export type GrpcErrorCode = (typeof GrpcErrorCode)[keyof typeof GrpcErrorCode];

export interface GrpcFrame {
  compressed: boolean;
  /** Declared payload length. */
  length: number;
  payload: Buffer;
  /** Byte offset of the frame's flag byte in the stream (or body). */
  offset: number;
}

/** The frame cut off at the end of a body, e.g. by the capture limit. */
export interface GrpcTruncation {
  /** Byte offset of the partial frame's flag byte. */
  offset: number;
  /** Undefined when the 5-byte header itself is incomplete. */
  compressed?: boolean;
  declaredLength?: number;
  /** The payload bytes that did arrive (fewer than declaredLength). */
  payload: Buffer;
}

export interface GrpcFramesResult {
  frames: GrpcFrame[];
  /** Bytes after the last complete frame (the partial frame, or everything from an invalid one). */
  rest: number;
  truncated?: GrpcTruncation;
  /** Set when a frame header is invalid; `frames` holds the valid frames before it. */
  error?: string;
}

function badFlag(flag: number, offset: number): string {
  return `${GrpcErrorCode.BadFlag}: invalid compressed flag 0x${flag.toString(16).padStart(2, '0')} at byte ${offset} (expected 0 or 1)`;
}

/** Splits a whole captured gRPC body into frames; payloads are subarrays of `buf`, not copies. */
export function readGrpcFrames(buf: Buffer): GrpcFramesResult {
  const frames: GrpcFrame[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const flag = buf[pos];
    if (flag > 1) return { frames, rest: buf.length - pos, error: badFlag(flag, pos) };
    if (buf.length - pos < GRPC_FRAME_HEADER_LENGTH) {
      return { frames, rest: buf.length - pos, truncated: { offset: pos, payload: EMPTY } };
    }
    const length = buf.readUInt32BE(pos + 1);
    const start = pos + GRPC_FRAME_HEADER_LENGTH;
    if (buf.length - start < length) {
      return {
        frames,
        rest: buf.length - pos,
        truncated: { offset: pos, compressed: flag === 1, declaredLength: length, payload: buf.subarray(start) },
      };
    }
    frames.push({ compressed: flag === 1, length, payload: buf.subarray(start, start + length), offset: pos });
    pos = start + length;
  }
  return { frames, rest: 0 };
}

/**
 * Reads frames from a stream of chunks cut at arbitrary points. Chunks are held by reference;
 * a payload spanning several chunks is concatenated exactly once, when it is complete, so the
 * cost stays linear in the bytes pushed however small the chunks are.
 */
export class GrpcFrameReader {
  private chunks: Buffer[] = [];
  /** Index of the first unconsumed chunk and the read position inside it. */
  private head = 0;
  private headPos = 0;
  private buffered = 0;
  /** Stream offset of the next unconsumed byte. */
  private consumed = 0;
  /** Header of the frame whose payload is awaited, or -1 while a header is awaited. */
  private pendingLength = -1;
  private pendingCompressed = false;
  private pendingOffset = 0;
  private failure: string | undefined;

  /** Set once a frame header was invalid; the reader then ignores further input. */
  get error(): string | undefined {
    return this.failure;
  }

  /** Bytes received but not yet returned as part of a complete frame. */
  get bufferedBytes(): number {
    return this.buffered + (this.pendingLength >= 0 ? GRPC_FRAME_HEADER_LENGTH : 0);
  }

  push(chunk: Buffer): GrpcFrame[] {
    const out: GrpcFrame[] = [];
    if (this.failure !== undefined || chunk.length === 0) return out;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.pendingLength < 0) {
        if (this.buffered === 0) break;
        const flag = this.chunks[this.head][this.headPos];
        if (flag > 1) {
          this.failure = badFlag(flag, this.consumed);
          this.release();
          break;
        }
        if (this.buffered < GRPC_FRAME_HEADER_LENGTH) break;
        const header = this.take(GRPC_FRAME_HEADER_LENGTH);
        this.pendingOffset = this.consumed - GRPC_FRAME_HEADER_LENGTH;
        this.pendingCompressed = flag === 1;
        this.pendingLength = header.readUInt32BE(1);
      }
      if (this.buffered < this.pendingLength) break;
      const length = this.pendingLength;
      out.push({ compressed: this.pendingCompressed, length, payload: this.take(length), offset: this.pendingOffset });
      this.pendingLength = -1;
    }
    return out;
  }

  /**
   * The partial frame at the end of the input so far, if any (call when the body ended early).
   * Copies the partial payload, so call it once, at the end.
   */
  truncated(): GrpcTruncation | undefined {
    if (this.failure !== undefined) return undefined;
    if (this.pendingLength >= 0) {
      return {
        offset: this.pendingOffset,
        compressed: this.pendingCompressed,
        declaredLength: this.pendingLength,
        payload: this.peekAll(),
      };
    }
    if (this.buffered === 0) return undefined;
    return { offset: this.consumed, payload: EMPTY };
  }

  private peekAll(): Buffer {
    const parts = this.chunks.slice(this.head);
    if (parts.length === 0) return EMPTY;
    parts[0] = parts[0].subarray(this.headPos);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, this.buffered);
  }

  /** Removes `n` (≤ buffered) bytes from the front: a subarray when they sit in one chunk. */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    this.buffered -= n;
    this.consumed += n;
    const first = this.chunks[this.head];
    if (first.length - this.headPos >= n) {
      const out = first.subarray(this.headPos, this.headPos + n);
      this.headPos += n;
      if (this.headPos === first.length) this.advance();
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[this.head];
      const m = Math.min(chunk.length - this.headPos, n - filled);
      chunk.copy(out, filled, this.headPos, this.headPos + m);
      filled += m;
      this.headPos += m;
      if (this.headPos === chunk.length) this.advance();
    }
    return out;
  }

  private advance(): void {
    this.head++;
    this.headPos = 0;
    // Drop consumed chunks in one go (not shift() per chunk, which is quadratic).
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  private release(): void {
    this.chunks = [];
    this.head = 0;
    this.headPos = 0;
    this.buffered = 0;
  }
}

export type InflateResult = { ok: true; data: Buffer } | { ok: false; code: GrpcErrorCode; error: string };

const DEFAULT_MAX_INFLATED_BYTES = 4 * 1024 * 1024;

/**
 * Decompresses a compressed frame's payload per its `grpc-encoding`. Input cut short by the
 * capture limit inflates to what it holds (sync flush), and output is capped at `maxOutput`
 * so a decompression bomb cannot blow up memory. Never throws.
 */
export function inflateGrpcPayload(
  payload: Buffer,
  encoding: string,
  maxOutput: number = DEFAULT_MAX_INFLATED_BYTES,
): InflateResult {
  const enc = encoding.trim().toLowerCase();
  if (enc === 'identity') return { ok: true, data: payload };
  const opts: zlib.ZlibOptions = { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: Math.max(1, maxOutput) };
  try {
    if (enc === 'gzip') return { ok: true, data: zlib.gunzipSync(payload, opts) };
    if (enc === 'deflate') {
      // gRPC's "deflate" is zlib-wrapped (RFC 1950), but some peers send raw RFC 1951 streams.
      try {
        return { ok: true, data: zlib.inflateSync(payload, opts) };
      } catch (err) {
        if (isTooLarge(err)) throw err;
        return { ok: true, data: zlib.inflateRawSync(payload, opts) };
      }
    }
  } catch (err) {
    if (isTooLarge(err)) {
      return { ok: false, code: GrpcErrorCode.InflateTooLarge, error: `${GrpcErrorCode.InflateTooLarge}: ${enc} payload inflates beyond ${maxOutput} bytes` };
    }
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, code: GrpcErrorCode.InflateFailed, error: `${GrpcErrorCode.InflateFailed}: ${enc} payload of ${payload.length} bytes: ${message}` };
  }
  return {
    ok: false,
    code: GrpcErrorCode.EncodingUnsupported,
    error: `${GrpcErrorCode.EncodingUnsupported}: grpc-encoding "${encoding}" is not supported (gzip, deflate, identity)`,
  };
}

function isTooLarge(err: unknown): boolean {
  return err instanceof RangeError || (err as { code?: string } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
}
