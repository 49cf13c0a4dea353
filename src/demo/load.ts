// Drives the demo's traffic for a bounded time from outside the mesh (like a browser or a
// load test): it calls the services' inbound listeners, with no trace context of its own.

import http from 'node:http';
import type { Endpoint } from '../proxy/exchange.js';
import { checkoutRequest } from './checkout.js';
import { forkRandom, pick } from './random.js';
import { post, sleep } from './service.js';

export interface LoadOptions {
  durationMs: number;
  seed: number;
  bookstore: Endpoint;
  gateway: Endpoint;
  /** Purchases in flight at once. */
  bookConcurrency: number;
  /** Checkouts in flight at once. */
  checkoutConcurrency: number;
}

export interface LoadResult {
  requests: number;
  /** Responses per HTTP status; 0 counts transport errors. */
  byStatus: Record<number, number>;
}

const BOOKS = ['978-0262033848', '978-0131103627', '978-1492052203', '978-0596007126'];

export async function driveLoad(opts: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.bookConcurrency + opts.checkoutConcurrency });
  const deadline = Date.now() + opts.durationMs;
  const result: LoadResult = { requests: 0, byStatus: {} };
  const count = (status: number): void => {
    result.requests++;
    result.byStatus[status] = (result.byStatus[status] ?? 0) + 1;
  };
  const send = (to: Endpoint, path: string, body: unknown): Promise<void> =>
    post(agent, to, path, body).then(
      (r) => count(r.status),
      () => count(0),
    );

  const buyer = async (i: number): Promise<void> => {
    const rand = forkRandom(opts.seed, `buyer-${i}`);
    while (Date.now() < deadline) {
      await send(opts.bookstore, '/books/purchase', { bookId: pick(rand, BOOKS), quantity: 1 + Math.floor(rand() * 3), customer: `c-${i}` });
    }
  };
  let n = 0;
  const shopper = async (i: number): Promise<void> => {
    const rand = forkRandom(opts.seed, `shopper-${i}`);
    while (Date.now() < deadline) {
      await send(opts.gateway, '/checkout', checkoutRequest(rand, ++n));
      // Shoppers pause between checkouts; without it the short chain would flood the run.
      await sleep(40 + rand() * 80);
    }
  };
  await Promise.all([
    ...Array.from({ length: opts.bookConcurrency }, (_, i) => buyer(i)),
    ...Array.from({ length: opts.checkoutConcurrency }, (_, i) => shopper(i)),
  ]);
  agent.destroy();
  return result;
}
