// The protocols the agent parses, in one list: detection tries them in this order, and each
// entry is the STYLE contract (frame boundary, parse frame, stitch) wired from its folder.

import { createH1State, detectH1, findH1Boundary, parseH1Frame, parseH1InPlace, resyncH1, skipH1 } from './http1/parse.js';
import { assembleH1, resyncH1Stitch, retainedH1, stitchH1 } from './http1/stitch.js';
import type { H1Frame, H1State } from './http1/types.js';
import { createH2State, detectH2, findH2Boundary, parseH2Frame, skipH2 } from './http2/parse.js';
import { resyncH2, retainedH2, stitchH2 } from './http2/stitch.js';
import type { H2Frame, H2State } from './http2/types.js';
import type { Protocol } from './protocol.js';

export const http1: Protocol<H1Frame, H1State> = {
  name: 'http1',
  detect: detectH1,
  createState: createH1State,
  findFrameBoundary: (type, buf, start) => findH1Boundary(type, buf, start),
  parseFrame: parseH1Frame,
  parseInPlace: parseH1InPlace,
  skip: skipH1,
  resync(type, state, lost) {
    resyncH1(type, state);
    resyncH1Stitch(type, state, lost);
  },
  stitch: stitchH1,
  assemble: assembleH1,
  retainedBytes: retainedH1,
  orphans: (state) => state.orphanResponses,
};

export const http2: Protocol<H2Frame, H2State> = {
  name: 'http2',
  detect: detectH2,
  createState: createH2State,
  findFrameBoundary: findH2Boundary,
  parseFrame: parseH2Frame,
  skip: skipH2,
  resync: resyncH2,
  stitch: stitchH2,
  retainedBytes: retainedH2,
  orphans: () => 0,
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyProtocol = Protocol<any, any>;

// HTTP/1 first: its detection is textual and cheap; HTTP/2's mid-stream check is a heuristic.
export const PROTOCOLS: readonly AnyProtocol[] = [http1, http2];
