// Header blocks between node:http2's raw lists and what the proxy forwards or reports.
// node:http2 (Node 20) only sends header objects, so repeated names become arrays; the raw list
// (order and repeats as received) is what the exchange records.

import http2 from 'node:http2';
import type { Exchange, RawHeaders } from '../exchange.js';

const SENSITIVE = http2.sensitiveHeaders;

/** The request's pseudo-headers split from its regular headers. */
export interface RequestHead {
  method: string;
  /** :path, or :authority for CONNECT (which has no :path). */
  target: string;
  authority: string | undefined;
  /** Regular headers only, in received order. */
  headers: RawHeaders;
}

export function requestHead(raw: readonly string[]): RequestHead {
  let method = 'GET';
  let path: string | undefined;
  let authority: string | undefined;
  const headers: RawHeaders = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (name.charCodeAt(0) !== 58 /* ':' */) headers.push(name, value);
    else if (name === ':method') method = value;
    else if (name === ':path') path = value;
    else if (name === ':authority') authority = value;
  }
  return { method, target: path ?? authority ?? '', authority, headers };
}

/**
 * The forwarded request head: everything received (pseudo-headers included) except
 * connection-specific fields and the trace headers the exchange replaces, plus its own.
 */
export function forwardRequestHeaders(
  raw: readonly string[],
  exchange: Exchange,
  sensitive: readonly string[] | undefined,
): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  const replaces = exchange.replacesHeaders;
  const dropSome = replaces.size > 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (isConnectionSpecific(name, value) || (dropSome && replaces.has(name))) continue;
    add(out, name, value);
  }
  for (const [name, value] of exchange.forwardHeaders) out[name] = value;
  setSensitive(out, sensitive);
  return out;
}

/** A response or trailer block to send on as received (`:status` included when present). */
export function forwardBlock(raw: readonly string[], sensitive: readonly string[] | undefined): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (let i = 0; i < raw.length; i += 2) add(out, raw[i], raw[i + 1]);
  setSensitive(out, sensitive);
  return out;
}

/** Names the peer sent as never-indexed (HPACK), so they stay never-indexed when forwarded. */
export function sensitiveOf(h: http2.IncomingHttpHeaders): readonly string[] | undefined {
  return (h as Record<symbol, string[] | undefined>)[SENSITIVE];
}

function setSensitive(out: http2.OutgoingHttpHeaders, names: readonly string[] | undefined): void {
  if (names !== undefined && names.length > 0) (out as Record<symbol, readonly string[]>)[SENSITIVE] = names;
}

/** Regular headers only (the exchange records no pseudo-headers). */
export function withoutPseudo(raw: readonly string[]): RawHeaders {
  const out: RawHeaders = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].charCodeAt(0) !== 58) out.push(raw[i], raw[i + 1]);
  }
  return out;
}

function add(out: http2.OutgoingHttpHeaders, name: string, value: string): void {
  const prev = out[name];
  if (prev === undefined) out[name] = value;
  else if (Array.isArray(prev)) prev.push(value);
  else out[name] = [prev as string, value];
}

// RFC 9113 §8.2.2: nghttp2 already rejects these on receipt; dropping them here means a
// forwarded block can never make node:http2 throw ERR_HTTP2_INVALID_CONNECTION_HEADERS.
function isConnectionSpecific(name: string, value: string): boolean {
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'transfer-encoding':
    case 'upgrade':
    case 'http2-settings':
      return true;
    case 'te':
      return value !== 'trailers';
    default:
      return false;
  }
}
