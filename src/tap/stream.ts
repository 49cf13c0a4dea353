// Reads a proxy's admin /tap stream (NDJSON of SpanRecords), directly or through the
// Kubernetes API server's pod proxy, reconnecting while the proxy restarts.

import http from 'node:http';
import https from 'node:https';
import { spanFromJson } from '../telemetry/span-json.js';
import type { SpanRecord } from '../telemetry/span.js';

export interface TapSource {
  /** How the source is named in output and errors: ADDR, or namespace/pod. */
  label: string;
  /** The admin base URL; `/tap` and `/config` are resolved against it. */
  base: URL;
  headers: Record<string, string>;
  ca?: Buffer;
  insecure?: boolean;
}

export interface TapStreamHandlers {
  /** The proxy's service.name, once read from its /config. */
  onService(service: string): void;
  onSpan(span: SpanRecord): void;
  /** Connection problems and malformed lines; the stream keeps trying. */
  onError(message: string): void;
  /** The API server or proxy refused the credentials (401/403): retrying cannot help, the stream has stopped. */
  onFatal(message: string): void;
}

export interface TapStream {
  close(): void;
}

const RETRY_MS = 1000;

export function openTapStream(src: TapSource, h: TapStreamHandlers): TapStream {
  let closed = false;
  let current: http.ClientRequest | undefined;
  let timer: NodeJS.Timeout | undefined;

  const retry = (why: string): void => {
    if (closed) return;
    h.onError(`${src.label}: ${why}; retrying in ${RETRY_MS / 1000}s`);
    timer = setTimeout(connect, RETRY_MS);
  };

  // The service name comes first, so a --service filter never sees a span without it.
  const connect = (): void => {
    if (closed) return;
    void readServiceName(src).then((name) => {
      if (closed) return;
      if (name) h.onService(name);
      stream();
    });
  };

  const stream = (): void => {
    // One attempt retries once, whichever of its end and error events fire (a reset can raise
    // more than one): two retries would run two streams and print every span twice.
    let retried = false;
    const again = (why: string): void => {
      if (retried) return;
      retried = true;
      retry(why);
    };
    const req = get(src, 'tap', (res) => {
      if (res.statusCode === 401 || res.statusCode === 403) {
        res.resume();
        closed = true;
        h.onFatal(`${src.label}: ST_TAP_UNAUTHORIZED: GET ${new URL('tap', src.base).pathname} answered HTTP ${res.statusCode} (${res.statusMessage}); check --token`);
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        again(`GET ${new URL('tap', src.base).pathname} answered HTTP ${res.statusCode}`);
        return;
      }
      res.setEncoding('utf8');
      let partial = '';
      res.on('data', (text: string) => {
        partial += text;
        let nl: number;
        while ((nl = partial.indexOf('\n')) >= 0) {
          const line = partial.slice(0, nl).trim();
          partial = partial.slice(nl + 1);
          if (line === '') continue;
          let span: SpanRecord;
          try {
            span = spanFromJson(line);
          } catch (err) {
            h.onError(`${src.label}: ST_TAP_LINE_INVALID: skipped a line that is not a span (${(err as Error).message})`);
            continue;
          }
          h.onSpan(span);
        }
      });
      res.on('end', () => again('stream ended'));
      res.on('error', (err) => again(err.message));
    });
    req.on('error', (err) => again(err.message));
    current = req;
  };

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      current?.destroy();
    },
  };
}

function get(src: TapSource, path: string, onResponse: (res: http.IncomingMessage) => void): http.ClientRequest {
  const url = new URL(path, src.base);
  const opts: https.RequestOptions = { headers: { accept: 'application/x-ndjson, application/json', ...src.headers } };
  if (url.protocol === 'https:') {
    if (src.ca) opts.ca = src.ca;
    if (src.insecure) opts.rejectUnauthorized = false;
    return https.get(url, opts, onResponse);
  }
  return http.get(url, opts, onResponse);
}

/** service.name from the admin /config, wherever the proxy puts it; undefined when absent. */
function readServiceName(src: TapSource): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = get(src, 'config', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (t: string) => (body += t));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? findServiceName(JSON.parse(body), 0) : undefined);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('error', () => resolve(undefined));
    req.setTimeout(2000, () => req.destroy());
  });
}

function findServiceName(v: unknown, depth: number): string | undefined {
  if (typeof v !== 'object' || v === null || depth > 3) return undefined;
  const o = v as Record<string, unknown>;
  for (const k of ['service.name', 'serviceName']) if (typeof o[k] === 'string' && o[k] !== '') return o[k] as string;
  for (const child of Object.values(o)) {
    const found = findServiceName(child, depth + 1);
    if (found) return found;
  }
  return undefined;
}
