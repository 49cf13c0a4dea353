// A node:http2 client call that collects everything the proxy sent back (head, body, trailers,
// reset code), for comparing a call through the proxy with the same call made directly.

import http2 from 'node:http2';

export interface H2Result {
  status?: number;
  headers?: http2.IncomingHttpHeaders;
  /** The response HEADERS frame carried END_STREAM (e.g. gRPC trailers-only). */
  headersEnded: boolean;
  body: Buffer;
  trailers?: http2.IncomingHttpHeaders;
  rstCode: number;
}

export interface H2CallOptions {
  body?: Buffer | string;
  trailers?: http2.OutgoingHttpHeaders;
}

export function h2call(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, opts: H2CallOptions = {}): Promise<H2Result> {
  return new Promise((resolve) => {
    const hasBody = opts.body !== undefined || opts.trailers !== undefined;
    const req = session.request(headers, { endStream: !hasBody, waitForTrailers: opts.trailers !== undefined });
    const chunks: Buffer[] = [];
    const res: H2Result = { headersEnded: false, body: Buffer.alloc(0), rstCode: 0 };
    req.on('response', (h, flags) => {
      res.status = Number(h[':status']);
      res.headers = h;
      res.headersEnded = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.on('trailers', (t) => {
      res.trailers = t;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('close', () => {
      res.body = Buffer.concat(chunks);
      res.rstCode = req.rstCode ?? 0;
      resolve(res);
    });
    if (opts.trailers !== undefined) req.on('wantTrailers', () => req.sendTrailers(opts.trailers!));
    if (hasBody) req.end(opts.body);
  });
}

/** Headers without the per-response noise (date) and the symbol keys, for equality checks. */
export function comparable(h: http2.IncomingHttpHeaders | undefined): Record<string, unknown> | undefined {
  if (h === undefined) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) if (k !== 'date') out[k] = v;
  return out;
}
