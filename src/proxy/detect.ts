// Protocol detection from a connection's first bytes: HTTP/1.x, HTTP/2 prior knowledge
// (the h2c preface, which is how gRPC arrives), or opaque. Pure: no sockets, no timers.

import { TOKEN } from './h1/head.js';

export type Detection = 'h1' | 'h2' | 'opaque' | 'need-more';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A request line longer than this is still classified as HTTP/1 (the handler answers 414/400). */
export const MAX_DETECT_BYTES = 8192;

const VERSION = Buffer.from('HTTP/1.', 'latin1');

const enum State {
  Method,
  Target,
  Version,
}

/**
 * Classify the bytes read so far. HTTP/1 needs a whole request line of the shape
 * `token SP target SP HTTP/1.d CRLF`, so client-first protocols that happen to start with a
 * word and a space (Redis inline commands, SMTP-like chatter) stay opaque and reach the app
 * byte for byte.
 */
export function detectProtocol(buf: Uint8Array): Detection {
  const n = buf.length;
  if (n === 0) return 'need-more';

  if (buf[0] === 0x50 /* P */) {
    const m = Math.min(n, H2_PREFACE.length);
    let isPrefix = true;
    for (let i = 0; i < m; i++) {
      if (buf[i] !== H2_PREFACE[i]) {
        isPrefix = false;
        break;
      }
    }
    if (isPrefix) return n >= H2_PREFACE.length ? 'h2' : 'need-more';
    // Not the preface: may still be an HTTP/1 method starting with P (POST, PUT, PATCH).
  }

  let state = State.Method;
  let start = 0;
  const limit = Math.min(n, MAX_DETECT_BYTES);
  for (let i = 0; i < limit; i++) {
    const c = buf[i];
    switch (state) {
      case State.Method:
        if (c === 0x20 && i > 0) {
          state = State.Target;
          start = i + 1;
        } else if (!TOKEN[c]) return 'opaque';
        break;
      case State.Target:
        if (c === 0x20 && i > start) {
          state = State.Version;
          start = i + 1;
        } else if (c <= 0x20 || c === 0x7f) return 'opaque';
        break;
      case State.Version: {
        const k = i - start;
        if (k < VERSION.length) {
          if (c !== VERSION[k]) return 'opaque';
        } else if (k === VERSION.length) {
          if (c < 0x30 || c > 0x39) return 'opaque';
        } else if (k === VERSION.length + 1) {
          if (c === 0x0d || c === 0x0a) return 'h1';
          return 'opaque';
        }
        break;
      }
    }
  }
  // The request line is consistent so far. A very long one is HTTP whose target is too long.
  return n >= MAX_DETECT_BYTES ? 'h1' : 'need-more';
}
