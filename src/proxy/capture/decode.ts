// Content-Encoding decoding of a captured body, for the recorded value only (the forwarded
// bytes are never touched). Output is capped at the capture limit, and a truncated
// compressed body decodes as far as its bytes allow.

import zlib from 'node:zlib';

export interface Decoded {
  bytes: Buffer;
  /** The decoded output was cut at the limit. */
  truncated: boolean;
}

const HEADROOM = 15;
const MAX_HEADROOM_BYTES = 4 << 20;

type Decoder = (buf: Buffer, maxOutputLength: number) => Buffer;

// Z_SYNC_FLUSH / BROTLI_OPERATION_FLUSH as finishFlush return what a cut stream holds so far
// instead of failing with "unexpected end of file".
const ZLIB_OPTS = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
const gunzip: Decoder = (buf, max) => zlib.gunzipSync(buf, { ...ZLIB_OPTS, maxOutputLength: max });
const inflate: Decoder = (buf, max) => {
  // `deflate` is meant to be zlib-wrapped, but some servers send raw deflate.
  try {
    return zlib.inflateSync(buf, { ...ZLIB_OPTS, maxOutputLength: max });
  } catch (err) {
    if (isTooLarge(err)) throw err;
    return zlib.inflateRawSync(buf, { ...ZLIB_OPTS, maxOutputLength: max });
  }
};
const brotli: Decoder = (buf, max) =>
  zlib.brotliDecompressSync(buf, { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH, maxOutputLength: max });

function decoderFor(encoding: string): Decoder | undefined {
  switch (encoding.trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return gunzip;
    case 'deflate':
      return inflate;
    case 'br':
      return brotli;
    default:
      return undefined;
  }
}

function isTooLarge(err: unknown): boolean {
  return (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
}

/** True for encodings this module can decode. */
export function canDecode(encoding: string): boolean {
  return decoderFor(encoding) !== undefined;
}

/**
 * Decodes `buf` per `encoding`, never producing more than `limit` bytes. Returns undefined for
 * an unknown encoding or undecodable input (the caller then records the raw bytes).
 */
export function decodeBody(buf: Buffer, encoding: string, limit: number): Decoded | undefined {
  const decode = decoderFor(encoding);
  if (decode === undefined || limit <= 0) return undefined;
  try {
    return { bytes: decode(buf, limit), truncated: false };
  } catch (err) {
    if (!isTooLarge(err)) return undefined;
  }
  // zlib's sync API throws instead of returning the first `limit` bytes. Real bodies seldom
  // compress more than a few times, so first decode with bounded headroom and cut.
  try {
    return { bytes: decode(buf, limit + Math.min(limit * HEADROOM, MAX_HEADROOM_BYTES)).subarray(0, limit), truncated: true };
  } catch (err) {
    if (!isTooLarge(err)) return undefined;
  }
  // A bomb: find the longest input prefix whose output fits. Each try stops near `limit`
  // output, so this costs at most log2(input) bounded decodes, and only for kept spans.
  let lo = 0;
  let hi = buf.length;
  let best: Buffer | undefined;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    try {
      best = decode(buf.subarray(0, mid), limit);
      lo = mid;
    } catch (err) {
      if (!isTooLarge(err)) return undefined;
      hi = mid - 1;
    }
  }
  // Brotli emits whole meta-blocks, so a prefix may yield nothing: then record the raw bytes.
  return best === undefined || best.length === 0 ? undefined : { bytes: best, truncated: true };
}
