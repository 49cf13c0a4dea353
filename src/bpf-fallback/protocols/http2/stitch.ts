// HTTP/2 stitching: decodes header blocks in order per direction (HPACK state), assembles
// streams from HEADERS/CONTINUATION/DATA/RST_STREAM, and emits one record per stream when the
// response ends or the stream is reset. gRPC rides on this: its trailers and length-prefixed
// messages reach the exchange like the proxy's.

import type { RawHeaders } from '../../../proxy/exchange.js';
import { unpinned, type BodyChunk, type HttpRecord, type MessageType, type TimedFrame } from '../protocol.js';
import { rstCodeName } from '../../../proxy/h2/rst-codes.js';
import { HpackError } from './hpack.js';
import { Flag, FrameType, type H2Frame, type H2State, type H2Stream } from './types.js';

const MAX_STREAMS = 1024;
const MAX_BLOCK_BYTES = 256 * 1024;

export function stitchH2(requests: TimedFrame<H2Frame>[], responses: TimedFrame<H2Frame>[], state: H2State, eof: boolean, out: HttpRecord[]): void {
  // Requests first: a response's stream must exist before its frames arrive.
  for (const f of requests) onFrame('request', f, state, out);
  for (const f of responses) onFrame('response', f, state, out);
  // Emptied by pops: `length = 0` is a runtime call that also drops the arrays' capacity.
  while (requests.length > 0) requests.pop();
  while (responses.length > 0) responses.pop();
  if (eof) {
    for (const s of state.streams.values()) if (s.requestHeaders !== undefined) out.push(toRecord(s, 'connection_closed'));
    state.streams.clear();
  }
}

function onFrame(type: MessageType, tf: TimedFrame<H2Frame>, state: H2State, out: HttpRecord[]): void {
  const f = tf.frame;
  const dir = type === 'request' ? state.request : state.response;
  if (dir.block !== undefined && f.type !== FrameType.CONTINUATION) {
    // A header block must be continued at once (RFC 9113 §6.10): this one is lost.
    dir.block = undefined;
    blockLost(type, state);
  }
  switch (f.type) {
    case FrameType.HEADERS:
    case FrameType.PUSH_PROMISE:
      dir.block = {
        streamId: f.type === FrameType.PUSH_PROMISE ? f.promisedId! : f.streamId,
        push: f.type === FrameType.PUSH_PROMISE,
        endStream: (f.flags & Flag.END_STREAM) !== 0,
        // Continued in a later frame (maybe a later batch): held as a copy, not a view of the batch.
        parts: [f.flags & Flag.END_HEADERS ? f.payload : Buffer.from(f.payload)],
        size: f.payload.length,
        startNs: tf.startNs,
      };
      if (f.flags & Flag.END_HEADERS) endBlock(type, state, tf.endNs, out);
      return;
    case FrameType.CONTINUATION: {
      const block = dir.block;
      if (block === undefined || block.streamId !== f.streamId) return;
      block.parts.push(f.flags & Flag.END_HEADERS ? f.payload : Buffer.from(f.payload));
      block.size += f.payload.length;
      if (block.size > MAX_BLOCK_BYTES) {
        dir.block = undefined;
        blockLost(type, state);
        return;
      }
      if (f.flags & Flag.END_HEADERS) endBlock(type, state, tf.endNs, out);
      return;
    }
    case FrameType.DATA: {
      const s = state.streams.get(f.streamId);
      if (s === undefined) return;
      s.endNs = tf.endNs;
      const chunk: BodyChunk = { data: f.payload, tsNs: tf.startNs };
      if (type === 'request') {
        s.requestSize += f.payload.length;
        s.requestKept = keep(s.requestBody, s.requestKept, chunk, state.maxBodyBytes);
        if (f.flags & Flag.END_STREAM) s.requestEnded = true;
      } else {
        s.responseSize += f.payload.length;
        s.responseKept = keep(s.responseBody, s.responseKept, chunk, state.maxBodyBytes);
        if (f.flags & Flag.END_STREAM) complete(s, state, out, undefined);
      }
      return;
    }
    case FrameType.RST_STREAM: {
      const s = state.streams.get(f.streamId);
      if (s === undefined) return;
      s.endNs = tf.endNs;
      const code = f.payload.length >= 4 ? f.payload.readUInt32BE(0) : 0;
      complete(s, state, out, `RST_STREAM:${rstCodeName(code)}`);
      return;
    }
  }
}

function keep(body: BodyChunk[], kept: number, chunk: BodyChunk, limit: number): number {
  const room = limit - kept;
  if (room <= 0 || chunk.data.length === 0) return kept;
  // A small piece of a large capture buffer would pin all of it: copy what is kept instead.
  const data = unpinned(chunk.data.length <= room ? chunk.data : chunk.data.subarray(0, room));
  body.push({ data, tsNs: chunk.tsNs });
  return kept + data.length;
}

function blockLost(type: MessageType, state: H2State): void {
  state.hpackErrors++;
  (type === 'request' ? state.request : state.response).decoder.desync();
}

function endBlock(type: MessageType, state: H2State, endNs: number, out: HttpRecord[]): void {
  const dir = type === 'request' ? state.request : state.response;
  const block = dir.block!;
  dir.block = undefined;
  let headers: RawHeaders;
  let complete_ = true;
  try {
    const decoded = dir.decoder.decode(block.parts.length === 1 ? block.parts[0] : Buffer.concat(block.parts, block.size));
    headers = decoded.headers;
    complete_ = decoded.complete && dir.decoder.synced;
  } catch (err) {
    if (!(err instanceof HpackError)) throw err;
    blockLost(type, state);
    return;
  }
  if (block.push) return;
  let s = state.streams.get(block.streamId);
  if (type === 'request') {
    if (s === undefined || s.requestHeaders !== undefined) {
      if (s === undefined) {
        if (state.streams.size >= MAX_STREAMS) state.streams.delete(state.streams.keys().next().value!);
        s = newStream(block.streamId, block.startNs);
        state.streams.set(s.id, s);
        s.requestHeaders = headers;
      } else s.requestTrailers = regular(headers);
    } else s.requestHeaders = headers;
    if (!complete_) s.partial = true;
    s.endNs = endNs;
    if (block.endStream) s.requestEnded = true;
    return;
  }
  if (s === undefined) {
    // Its request was not seen (joined mid-way): keep what the response says.
    if (dir.decoder.synced && state.request.decoder.synced) return;
    s = newStream(block.streamId, block.startNs);
    s.partial = true;
    state.streams.set(s.id, s);
  }
  if (!complete_) s.partial = true;
  s.endNs = endNs;
  const status = Number(pseudo(headers, ':status'));
  if (s.status === 0 && status >= 100 && status < 200) return;
  if (s.responseHeaders === undefined) {
    s.status = Number.isInteger(status) ? status : 0;
    s.responseHeaders = regular(headers);
  } else s.responseTrailers = regular(headers);
  if (block.endStream) complete(s, state, out, undefined);
}

function newStream(id: number, startNs: number): H2Stream {
  return { id, startNs, endNs: startNs, requestBody: [], requestKept: 0, requestSize: 0, requestEnded: false, status: 0, responseBody: [], responseKept: 0, responseSize: 0, partial: false };
}

function complete(s: H2Stream, state: H2State, out: HttpRecord[], error: string | undefined): void {
  state.streams.delete(s.id);
  out.push(toRecord(s, error));
}

function pseudo(headers: RawHeaders, name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

/** Regular headers only, as the proxy's h2 handler reports them. */
function regular(headers: RawHeaders): RawHeaders {
  const out: RawHeaders = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i].charCodeAt(0) !== 58) out.push(headers[i], headers[i + 1]);
  return out;
}

function toRecord(s: H2Stream, error: string | undefined): HttpRecord {
  const req = s.requestHeaders ?? [];
  const method = pseudo(req, ':method');
  const path = pseudo(req, ':path');
  const authority = pseudo(req, ':authority');
  const record: HttpRecord = {
    protocolVersion: '2',
    method: method ?? 'UNKNOWN',
    target: path ?? authority ?? '',
    requestHeaders: regular(req),
    requestBody: s.requestBody,
    requestBodySize: s.requestSize,
    status: s.status,
    responseHeaders: s.responseHeaders ?? [],
    responseBody: s.responseBody,
    responseBodySize: s.responseSize,
    startNs: s.startNs,
    endNs: s.endNs,
    streamId: s.id,
  };
  if (authority !== undefined) record.authority = authority;
  if (s.requestTrailers !== undefined) record.requestTrailers = s.requestTrailers;
  if (s.responseTrailers !== undefined) record.responseTrailers = s.responseTrailers;
  if (error !== undefined) record.error = error;
  if (s.partial || method === undefined || path === undefined) record.partial = true;
  return record;
}

export function resyncH2(type: MessageType, state: H2State): void {
  const dir = type === 'request' ? state.request : state.response;
  dir.preface = false;
  // Bytes were lost: a header block may be among them, so the table is no longer known.
  dir.block = undefined;
  dir.decoder.desync();
}

export function retainedH2(state: H2State): number {
  let n = state.request.decoder.tableBytes + state.response.decoder.tableBytes;
  for (const s of state.streams.values()) n += s.requestKept + s.responseKept;
  if (state.request.block !== undefined) n += state.request.block.size;
  if (state.response.block !== undefined) n += state.response.block.size;
  return n;
}
