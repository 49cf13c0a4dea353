// The viewer's HTTP side: the Jaeger-style JSON API over the store, and the single static page.

import http from 'node:http';
import type { TraceStore } from './store.js';
import { toJaegerTrace } from './jaeger-json.js';
import { parseTraceQuery, QueryParamError } from './query-params.js';
import { VIEWER_HTML } from './viewer-page.js';

export function createViewerServer(store: TraceStore): http.Server {
  return http.createServer((req, res) => {
    try {
      route(store, req, res);
    } catch (err) {
      if (err instanceof QueryParamError) send(res, 400, { data: null, errors: [{ code: 400, msg: err.message }] });
      else send(res, 500, { data: null, errors: [{ code: 500, msg: (err as Error).message }] });
    }
  });
}

function route(store: TraceStore, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { data: null, errors: [{ code: 405, msg: `method ${req.method} not allowed` }] });
    return;
  }
  const url = new URL(req.url ?? '/', 'http://viewer');
  const path = url.pathname;
  if (path === '/' || path === '/search' || path.startsWith('/trace/')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(VIEWER_HTML);
    return;
  }
  if (path === '/api/services') {
    const data = store.services();
    send(res, 200, { data, total: data.length, errors: null });
    return;
  }
  const svcOps = /^\/api\/services\/([^/]+)\/operations$/.exec(path);
  if (svcOps) {
    const data = [...new Set(store.operations(decodeService(svcOps[1])).map((o) => o.name))];
    send(res, 200, { data, total: data.length, errors: null });
    return;
  }
  if (path === '/api/operations') {
    const data = store.operations(url.searchParams.get('service') ?? undefined);
    send(res, 200, { data, total: data.length, errors: null });
    return;
  }
  if (path === '/api/traces') {
    const q = parseTraceQuery(url.searchParams);
    const data = store.find(q).map(toJaegerTrace);
    send(res, 200, { data, total: data.length, limit: q.limit ?? 20, offset: 0, errors: null });
    return;
  }
  const one = /^\/api\/traces\/([0-9a-fA-F]{1,32})$/.exec(path);
  if (one) {
    const spans = store.trace(one[1].padStart(32, '0'));
    if (!spans) send(res, 404, { data: null, errors: [{ code: 404, msg: `trace ${one[1]} not found` }] });
    else send(res, 200, { data: [toJaegerTrace(spans)], total: 1, errors: null });
    return;
  }
  if (path === '/api/stats') {
    send(res, 200, store.stats());
    return;
  }
  send(res, 404, { data: null, errors: [{ code: 404, msg: `no route for ${path}` }] });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** A malformed percent-escape in the service name is the caller's error (400), not ours. */
function decodeService(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new QueryParamError('service', `"${raw}" is not a valid percent-encoded name`);
  }
}
