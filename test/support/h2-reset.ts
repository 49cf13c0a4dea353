// Test peers resetting a stream with an exact error code, which node:http2's close(code) does
// not always do. (The proxy never needs this: it always sets waitForTrailers, see h2-handler.ts.)

import http2 from 'node:http2';

const { NGHTTP2_NO_ERROR } = http2.constants;

/**
 * RST_STREAM `code` on `stream`. node:http2's close(code) first ends the writable side; when the
 * peer's side is already closed, that END_STREAM completes the stream and no RST_STREAM follows,
 * so a truncated response (or upload) would reach the peer looking complete. Marking the writable
 * side as ending (nothing more will be written to a reset stream) makes close() skip that end().
 */
export function resetStream(stream: http2.Http2Stream, code: number): void {
  if (stream.closed || stream.destroyed) return;
  const ws = (stream as unknown as { _writableState?: { ending: boolean } })._writableState;
  if (code !== NGHTTP2_NO_ERROR && ws !== undefined && !ws.ending) ws.ending = true;
  stream.close(code);
}
