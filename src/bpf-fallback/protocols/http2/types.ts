// HTTP/2 frames and per-connection state for the agent's parser and stitcher.

import type { RawHeaders } from '../../../proxy/exchange.js';
import type { BodyChunk } from '../protocol.js';
import type { HpackDecoder } from './hpack.js';

export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

/** A frame the stitcher needs (DATA, HEADERS, CONTINUATION, PUSH_PROMISE, RST_STREAM). */
export interface H2Frame {
  type: number;
  flags: number;
  streamId: number;
  /** Payload with padding and priority fields removed (DATA data, header block fragment, error code). */
  payload: Buffer;
  /** Promised stream id (PUSH_PROMISE). */
  promisedId?: number;
}

export interface H2Stream {
  id: number;
  startNs: number;
  endNs: number;
  requestHeaders?: RawHeaders;
  requestTrailers?: RawHeaders;
  requestBody: BodyChunk[];
  requestKept: number;
  requestSize: number;
  requestEnded: boolean;
  status: number;
  responseHeaders?: RawHeaders;
  responseTrailers?: RawHeaders;
  responseBody: BodyChunk[];
  responseKept: number;
  responseSize: number;
  partial: boolean;
}

/** A header block being assembled from HEADERS/PUSH_PROMISE + CONTINUATION frames. */
export interface PendingBlock {
  streamId: number;
  push: boolean;
  endStream: boolean;
  parts: Buffer[];
  size: number;
  startNs: number;
}

export interface H2DirState {
  /** The client preface is still expected (request direction of a connection seen from its start). */
  preface: boolean;
  decoder: HpackDecoder;
  block?: PendingBlock;
}

export interface H2State {
  request: H2DirState;
  response: H2DirState;
  streams: Map<number, H2Stream>;
  maxBodyBytes: number;
  /** Header blocks that could not be decoded (HPACK errors, lost CONTINUATIONs). */
  hpackErrors: number;
}
