// gRPC length-prefixed message framing (1 byte compressed flag, 4 bytes big-endian length,
// payload), read from a whole captured body at span end. While bytes stream, the proxy only
// counts messages (capture/grpc-messages.ts); payloads are read here, once, if the span is kept.

import { gunzip, inflate, isTooLarge } from '../capture/decode.js';

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
  const max = Math.max(1, maxOutput);
  try {
    // The same decoders as captured HTTP bodies (sync flush for cut input; raw-deflate fallback,
    // which some gRPC peers send for "deflate").
    if (enc === 'gzip') return { ok: true, data: gunzip(payload, max) };
    if (enc === 'deflate') return { ok: true, data: inflate(payload, max) };
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

