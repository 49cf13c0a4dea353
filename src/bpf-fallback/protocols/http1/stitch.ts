// HTTP/1.x stitching: assembles head/body/end frames into messages and pairs responses with
// requests in order (pipelining is FIFO), using kernel times to drop responses whose request
// was lost and requests whose response was lost.

import { unpinned, type BodyChunk, type HttpRecord, type MessageType, type TimedFrame, type TimeWindow } from '../protocol.js';
import type { H1Frame, H1Message, H1State } from './types.js';

const MAX_QUEUED_MESSAGES = 256;
const MAX_GAP_WINDOWS = 64;
/** The body of every message without one; never pushed to (addBody swaps in an array of its own). */
const NO_CHUNKS: BodyChunk[] = [];

export function stitchH1(requests: TimedFrame<H1Frame>[], responses: TimedFrame<H1Frame>[], state: H1State, eof: boolean, records: HttpRecord[]): void {
  for (const f of requests) assembleH1('request', f.frame, f.startNs, f.endNs, state);
  for (const f of responses) assembleH1('response', f.frame, f.startNs, f.endNs, state);
  // Emptied by pops: `length = 0` is a runtime call that also drops the arrays' capacity.
  while (requests.length > 0) requests.pop();
  while (responses.length > 0) responses.pop();
  if (eof && state.currentResponse !== undefined && state.response.mode === 'until-eof') {
    // A close-delimited body ends with the connection.
    finish('response', state);
  }
  pair(state, records);
  if (!eof) detachHeld(state);
  if (eof) {
    // Requests the connection closed on, without a response.
    for (const req of state.requests) records.push(toRecord(req, undefined, 'connection_closed'));
    state.requests.length = 0;
    state.orphanResponses += state.responses.length;
    state.responses.length = 0;
    state.currentRequest = undefined;
    state.currentResponse = undefined;
  }
}

/** The message a head begins, made its direction's current one. */
function startMessage(type: MessageType, head: H1Message['head'], startNs: number, endNs: number, state: H1State): H1Message {
  const msg: H1Message = { head, startNs, endNs, body: NO_CHUNKS, kept: 0, size: 0, partial: false };
  if (type === 'request') state.currentRequest = msg;
  else state.currentResponse = msg;
  return msg;
}

/** One frame, with the kernel times of its first and last byte, into its direction's messages
 * (Protocol.assemble: stitch's step for each frame it is handed). */
export function assembleH1(type: MessageType, f: H1Frame, startNs: number, endNs: number, state: H1State): void {
  const current = type === 'request' ? state.currentRequest : state.currentResponse;
  if (f.kind === 'request-head' || f.kind === 'response-head') {
    if (f.kind === 'response-head' && f.interim) return;
    startMessage(type, f, startNs, endNs, state);
    if (f.complete) finish(type, state);
    return;
  }
  if (f.kind === 'head-body') {
    // As its head frame and then its body frame would assemble (same times, nothing lost).
    addBody(startMessage(type, f.head, startNs, endNs, state), f.data, startNs, state.maxBodyBytes);
    if (f.last) finish(type, state);
    return;
  }
  if (current === undefined) return;
  current.endNs = endNs;
  if (f.lost > 0) {
    current.size += f.lost;
    current.partial = true;
  }
  if (f.kind === 'body') {
    addBody(current, f.data, startNs, state.maxBodyBytes);
    if (f.last) finish(type, state);
  } else {
    if (f.trailers !== undefined && f.trailers.length > 0) current.trailers = f.trailers;
    finish(type, state);
  }
}

function addBody(msg: H1Message, data: Buffer, tsNs: number, limit: number): void {
  msg.size += data.length;
  const room = limit - msg.kept;
  if (room <= 0 || data.length === 0) return;
  // A reference into the batch: copied only if the message outlives the stitch (detachHeld).
  const part = data.length <= room ? data : data.subarray(0, room);
  // Most messages have no body: they share NO_CHUNKS until their first piece. Most bodies come
  // in one piece: a literal of one element, where a push to [] reserves room for 17.
  if (msg.body === NO_CHUNKS) msg.body = [{ data: part, tsNs }];
  else msg.body.push({ data: part, tsNs });
  msg.kept += part.length;
}

/**
 * Body pieces of messages still waiting (open, or unpaired) would pin the whole capture batch
 * they point into: copy those out. Records handed on now are replayed before the batch is let go,
 * so the usual exchange, finished within its batch, is never copied.
 */
function detachHeld(state: H1State): void {
  if (state.currentRequest !== undefined) detachBody(state.currentRequest);
  if (state.currentResponse !== undefined) detachBody(state.currentResponse);
  for (const m of state.requests) detachBody(m);
  for (const m of state.responses) detachBody(m);
}

function detachBody(msg: H1Message): void {
  const body = msg.body;
  for (let i = 0; i < body.length; i++) {
    const data = unpinned(body[i].data);
    if (data !== body[i].data) body[i] = { data, tsNs: body[i].tsNs };
  }
}

function finish(type: MessageType, state: H1State): void {
  if (type === 'request') {
    const msg = state.currentRequest;
    if (msg === undefined) return;
    state.currentRequest = undefined;
    if (state.requests.length >= MAX_QUEUED_MESSAGES) state.requests.shift();
    state.requests.push(msg);
  } else {
    const msg = state.currentResponse;
    if (msg === undefined) return;
    state.currentResponse = undefined;
    if (state.responses.length >= MAX_QUEUED_MESSAGES) {
      state.responses.shift();
      state.orphanResponses++;
    }
    state.responses.push(msg);
  }
}

function pair(state: H1State, out: HttpRecord[]): void {
  const { requests, responses } = state;
  while (responses.length > 0) {
    const res = responses[0];
    if (requests.length === 0 || requests[0].startNs > res.startNs) {
      // Its request is still arriving (a server may answer early): wait for it.
      if (requests.length === 0 && state.currentRequest !== undefined && state.currentRequest.startNs <= res.startNs) return;
      responses.shift();
      state.orphanResponses++;
      continue;
    }
    const req = requests[0];
    const gaps = state.requestGaps;
    while (gaps.length > 0 && gaps[0].toNs <= req.startNs) gaps.shift();
    if (gaps.length > 0 && gaps[0].fromNs < res.startNs) {
      // A request may have been lost between this one and the response: if a later request
      // precedes the response, this one's response was lost; otherwise the response is not ours.
      if (requests.length > 1 && requests[1].startNs <= res.startNs) out.push(toRecord(requests.shift()!, undefined, 'response_lost'));
      else {
        responses.shift();
        state.orphanResponses++;
      }
      continue;
    }
    if (state.responseResynced) {
      // Responses were lost: only the latest request sent before this response can be its.
      let last = 0;
      while (last + 1 < requests.length && requests[last + 1].startNs <= res.startNs) last++;
      for (let i = 0; i < last; i++) out.push(toRecord(requests[i], undefined, 'response_lost'));
      requests.splice(0, last);
      state.responseResynced = false;
    }
    responses.shift();
    out.push(toRecord(requests.shift()!, res, undefined));
  }
}

function toRecord(req: H1Message, res: H1Message | undefined, error: string | undefined): HttpRecord {
  const head = req.head;
  if (head.kind !== 'request-head') throw new Error('ST_AGENT_STITCH: request queue holds a response');
  const resHead = res?.head.kind === 'response-head' ? res.head : undefined;
  // Every key in the literal, optional ones undefined when absent (readers test them against
  // undefined): keys added afterwards moved the record to a new map and allocated a property
  // store for them on every record.
  return {
    protocolVersion: head.version,
    method: head.method,
    target: head.target,
    requestHeaders: head.headers,
    authority: findHost(head.headers),
    requestBody: req.body,
    requestBodySize: req.size,
    requestTrailers: req.trailers,
    status: resHead?.status ?? 0,
    responseHeaders: resHead?.headers ?? [],
    responseBody: res?.body ?? NO_CHUNKS,
    responseBodySize: res?.size ?? 0,
    responseTrailers: res?.trailers,
    startNs: req.startNs,
    endNs: res?.endNs ?? req.endNs,
    error,
    partial: req.partial || res?.partial === true ? true : undefined,
    streamId: undefined,
  };
}

function findHost(headers: string[]): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (isHost(headers[i])) return headers[i + 1];
  return undefined;
}

/** Case-insensitive "host" by char codes: a lowered copy per header per record was garbage. */
function isHost(name: string): boolean {
  return name.length === 4 && (name.charCodeAt(0) | 0x20) === 104 && (name.charCodeAt(1) | 0x20) === 111 && (name.charCodeAt(2) | 0x20) === 115 && (name.charCodeAt(3) | 0x20) === 116;
}

export function resyncH1Stitch(type: MessageType, state: H1State, lost?: TimeWindow): void {
  if (type === 'request') {
    state.currentRequest = undefined;
    if (lost !== undefined) {
      if (state.requestGaps.length >= MAX_GAP_WINDOWS) state.requestGaps.shift();
      state.requestGaps.push({ fromNs: lost.fromNs, toNs: lost.toNs });
    }
  } else {
    state.currentResponse = undefined;
    state.responseResynced = true;
  }
}

export function retainedH1(state: H1State): number {
  let n = 0;
  if (state.currentRequest !== undefined) n += state.currentRequest.kept;
  if (state.currentResponse !== undefined) n += state.currentResponse.kept;
  for (const m of state.requests) n += m.kept;
  for (const m of state.responses) n += m.kept;
  // Heads kept for reuse: a cached one's bytes in four alignments, the header strings cut from
  // its text (at most as long again), and the last text.
  if (state.lastRequestHead !== undefined) n += 5 * state.lastRequestHead.bytes.length;
  if (state.lastResponseHead !== undefined) n += 5 * state.lastResponseHead.bytes.length;
  if (state.lastRequestText !== undefined) n += state.lastRequestText.length;
  if (state.lastResponseText !== undefined) n += state.lastResponseText.length;
  return n;
}
