// An ExchangeFactory that records every call a handler makes, so tests can assert what the
// handler reported (and inject trace headers) without the real capture/tracing stack.

import type { Exchange, ExchangeFactory, ExchangeStart, RawHeaders } from '../../src/proxy/exchange.js';

export interface RecordedExchange {
  start: ExchangeStart;
  requestBytes: number;
  requestChunks: Buffer[];
  requestEnded: boolean;
  requestTrailers?: RawHeaders;
  status?: number;
  responseHeaders?: RawHeaders;
  responseBytes: number;
  responseChunks: Buffer[];
  /** 'end' after responseEnd, 'fail' after fail. */
  outcome?: 'end' | 'fail' | 'tunnel';
  responseTrailers?: RawHeaders;
  errorType?: string;
  /** Calls made after the exchange ended (a handler bug if non-zero). */
  lateCalls: number;
}

export interface RecordingOptions {
  forwardHeaders?: ReadonlyArray<readonly [string, string]>;
  /** Keep body chunks (off for large-body tests). */
  keepChunks?: boolean;
  /** Make every exchange method throw, to prove capture failures never reach traffic. */
  throwing?: boolean;
}

export class RecordingExchanges implements ExchangeFactory {
  readonly all: RecordedExchange[] = [];
  private waiters: Array<() => void> = [];

  constructor(private readonly opts: RecordingOptions = {}) {}

  start(start: ExchangeStart): Exchange {
    if (this.opts.throwing) throw new Error('recording exchange: start failed on purpose');
    const rec: RecordedExchange = { start, requestBytes: 0, requestChunks: [], requestEnded: false, responseBytes: 0, responseChunks: [], lateCalls: 0 };
    this.all.push(rec);
    const keep = this.opts.keepChunks ?? true;
    const forward = this.opts.forwardHeaders ?? [];
    const done = (): void => {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    };
    const live = (): boolean => {
      if (rec.outcome !== undefined) rec.lateCalls++;
      return rec.outcome === undefined;
    };
    return {
      forwardHeaders: forward,
      replacesHeaders: new Set(forward.map(([n]) => n)),
      requestBody(chunk) {
        if (!live()) return;
        rec.requestBytes += chunk.length;
        if (keep) rec.requestChunks.push(chunk);
      },
      requestEnd(trailers) {
        if (!live()) return;
        rec.requestEnded = true;
        rec.requestTrailers = trailers;
      },
      responseHead(status, headers) {
        if (!live()) return;
        rec.status = status;
        rec.responseHeaders = headers;
      },
      responseBody(chunk) {
        if (!live()) return;
        rec.responseBytes += chunk.length;
        if (keep) rec.responseChunks.push(chunk);
      },
      responseEnd(trailers) {
        if (!live()) return;
        rec.outcome = 'end';
        rec.responseTrailers = trailers;
        done();
      },
      fail(errorType) {
        if (!live()) return;
        rec.outcome = 'fail';
        rec.errorType = errorType;
        done();
      },
      tunnelEstablished(status, headers) {
        if (!live()) return;
        rec.outcome = 'tunnel';
        rec.status = status;
        rec.responseHeaders = headers;
        done();
      },
    };
  }

  /** Resolves once `n` exchanges have ended (responseEnd or fail). */
  async ended(n: number, timeoutMs = 10_000): Promise<RecordedExchange[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const finished = this.all.filter((r) => r.outcome !== undefined);
      if (finished.length >= n) return finished;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`only ${finished.length} of ${n} exchanges ended within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** Header value from a raw list (first match, case-insensitive). */
export function rawHeader(raw: RawHeaders | undefined, name: string): string | undefined {
  if (raw === undefined) return undefined;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) return raw[i + 1];
  return undefined;
}
