// A demo service: a node:http JSON app that calls its dependencies through its own sidecar's
// outbound listeners and forwards the trace context it received, as an instrumented app would.
// Without that forwarding a sidecar sees each hop as a separate trace.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Endpoint } from '../proxy/exchange.js';

/** A route's answer, and what a call to a dependency gets back. */
export interface Reply {
  status: number;
  body: unknown;
}

export interface Ctx {
  /** The parsed JSON request body (undefined when empty or not JSON). */
  body: unknown;
  /** POST `path` with a JSON body to a dependency, through this service's outbound listener. */
  call(service: string, path: string, body: unknown): Promise<Reply>;
}

export interface ServiceSpec {
  name: string;
  /** Services this one calls; each gets an outbound listener on the sidecar. */
  calls: string[];
  routes: Record<string, (ctx: Ctx) => Promise<Reply>>;
}

export interface RunningService {
  spec: ServiceSpec;
  port: number;
  /** Where each dependency is reached (the sidecar's outbound listeners), set once they exist. */
  outbound: Map<string, Endpoint>;
  close(): Promise<void>;
}

const TRACE_HEADERS = ['traceparent', 'tracestate'];

/** forwardTraceContext false plays an uninstrumented app, to show what a sidecar then sees. */
export async function startService(spec: ServiceSpec, forwardTraceContext = true): Promise<RunningService> {
  const outbound = new Map<string, Endpoint>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const handler = req.method === 'POST' ? spec.routes[(req.url ?? '/').split('?')[0]] : undefined;
      if (!handler) {
        reply(res, { status: 404, body: { error: `no route ${req.method} ${req.url}` } });
        return;
      }
      const trace: Record<string, string> = {};
      if (forwardTraceContext) for (const h of TRACE_HEADERS) {
        const v = req.headers[h];
        if (typeof v === 'string') trace[h] = v;
      }
      const ctx: Ctx = {
        body: parseJson(Buffer.concat(chunks)),
        call: (service, path, body) => {
          const to = outbound.get(service);
          if (!to) return Promise.reject(new Error(`${spec.name} has no outbound listener for ${service}`));
          return post(agent, to, path, body, trace);
        },
      };
      handler(ctx).then(
        (r) => reply(res, r),
        (err: Error) => reply(res, { status: 500, body: { error: err.message } }),
      );
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    spec,
    port: (server.address() as AddressInfo).port,
    outbound,
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function post(agent: http.Agent, to: Endpoint, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: to.address,
        port: to.port,
        path,
        method: 'POST',
        agent,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: parseJson(Buffer.concat(chunks)) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function reply(res: http.ServerResponse, r: Reply): void {
  const text = JSON.stringify(r.body);
  res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function parseJson(buf: Buffer): unknown {
  if (buf.length === 0) return undefined;
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
