// A recording ExchangeFactory for handler tests: keeps every call in order, optionally adds
// trace headers (like a real exchange would), and can be told to throw to test the guards.

import type { Exchange, ExchangeFactory, ExchangeStart, RawHeaders } from '../../src/proxy/exchange.js';

export type RecordedCall =
  | ['requestBody', Buffer]
  | ['requestEnd', RawHeaders | undefined]
  | ['responseHead', number, RawHeaders]
  | ['responseBody', Buffer]
  | ['responseEnd', RawHeaders | undefined]
  | ['fail', string, string | undefined]
  | ['tunnelEstablished', number, RawHeaders];

export interface RecordedExchange {
  start: ExchangeStart;
  calls: RecordedCall[];
  /** Concatenated requestBody / responseBody chunks. */
  requestBody(): Buffer;
  responseBody(): Buffer;
  /** The last call ('responseEnd', 'fail' or 'tunnelEstablished'), once ended. */
  ended(): string | undefined;
}

export interface RecordingOptions {
  forwardHeaders?: Array<[string, string]>;
  replacesHeaders?: string[];
  /** Every exchange method (and start, when 'start') throws. */
  throwIn?: 'start' | 'all';
}

export class RecordingExchangeFactory implements ExchangeFactory {
  readonly exchanges: RecordedExchange[] = [];

  constructor(private readonly opts: RecordingOptions = {}) {}

  start(start: ExchangeStart): Exchange {
    if (this.opts.throwIn === 'start') throw new Error('factory failure (test)');
    const calls: RecordedCall[] = [];
    const rec: RecordedExchange = {
      start: { ...start, headers: [...start.headers] },
      calls,
      requestBody: () => Buffer.concat(calls.filter((c) => c[0] === 'requestBody').map((c) => c[1] as Buffer)),
      responseBody: () => Buffer.concat(calls.filter((c) => c[0] === 'responseBody').map((c) => c[1] as Buffer)),
      ended: () => {
        const last = calls[calls.length - 1];
        return last && ['responseEnd', 'fail', 'tunnelEstablished'].includes(last[0]) ? last[0] : undefined;
      },
    };
    this.exchanges.push(rec);
    const boom = this.opts.throwIn === 'all';
    const record = (c: RecordedCall): void => {
      calls.push(c);
      if (boom) throw new Error(`exchange failure in ${c[0]} (test)`);
    };
    return {
      forwardHeaders: this.opts.forwardHeaders ?? [],
      replacesHeaders: new Set(this.opts.replacesHeaders ?? (this.opts.forwardHeaders ?? []).map(([n]) => n)),
      // Copies: the handler passes views into socket buffers, which a recorder must not alias.
      requestBody: (b) => record(['requestBody', Buffer.from(b)]),
      requestEnd: (t) => record(['requestEnd', t]),
      responseHead: (s, h) => record(['responseHead', s, [...h]]),
      responseBody: (b) => record(['responseBody', Buffer.from(b)]),
      responseEnd: (t) => record(['responseEnd', t]),
      fail: (e, m) => record(['fail', e, m]),
      tunnelEstablished: (s, h) => record(['tunnelEstablished', s, [...h]]),
    };
  }
}
