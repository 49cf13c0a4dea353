// Content-Encoding decoding of a captured body, for the recorded value only (the forwarded
// bytes are never touched). Output is capped at the capture limit, and a truncated
// compressed body decodes as far as its bytes allow.

import zlib from 'node:zlib';

export interface Decoded {
  bytes: Buffer;
  /** The decoded output was cut at the limit. */
  truncated: boolean;
}

/** A decoded prefix at least this share of the limit ends the search. */
const GOOD_ENOUGH = 0.75;

type Decoder = (buf: Buffer, maxOutputLength: number) => Buffer;

// Z_SYNC_FLUSH / BROTLI_OPERATION_FLUSH as finishFlush return what a cut stream holds so far
// instead of failing with "unexpected end of file".
const ZLIB_OPTS = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
export const gunzip: Decoder = (buf, max) => zlib.gunzipSync(buf, { ...ZLIB_OPTS, maxOutputLength: max });
export const inflate: Decoder = (buf, max) => {
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

/** zlib's answer to output past maxOutputLength (a RangeError, code ERR_BUFFER_TOO_LARGE). */
export function isTooLarge(err: unknown): boolean {
  return err instanceof RangeError || (err as { code?: string } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
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
  // zlib's sync API throws instead of returning the first `limit` bytes, and output grows with
  // the input prefix, so search for a prefix whose output fits: every try stops once its output
  // passes `limit` (plus one zlib chunk), so nothing is ever inflated far beyond the limit.
  // Stopping at GOOD_ENOUGH of the limit keeps it to two or three tries for ordinary bodies.
  let lo = 0;
  let hi = buf.length;
  let best: Buffer | undefined;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    try {
      best = decode(buf.subarray(0, mid), limit);
      if (best.length >= limit * GOOD_ENOUGH) break;
      lo = mid;
    } catch (err) {
      if (!isTooLarge(err)) return undefined;
      hi = mid - 1;
    }
  }
  // Brotli can put a long run in one command, so a prefix may yield nothing: record raw bytes.
  return best === undefined || best.length === 0 ? undefined : { bytes: best, truncated: true };
}
