// The bookstore of "Tracing your HTTP request": purchase → validate (1–100 ms) and order
// (100–1,500 ms, failing above a threshold with "Book server is on high load").
// Here each step is its own service, so the sidecars see every hop.

import { forkRandom, uniform } from './random.js';
import { sleep, type ServiceSpec } from './service.js';

export interface BookstoreOptions {
  seed: number;
  /** order fails when its random latency is above this (the seed's 700 ms). */
  orderFailAboveMs: number;
}

export function bookstoreServices(opts: BookstoreOptions): ServiceSpec[] {
  const validateRand = forkRandom(opts.seed, 'book-validator');
  const orderRand = forkRandom(opts.seed, 'book-orders');
  let nextOrder = 1;
  return [
    {
      name: 'bookstore',
      calls: ['book-validator', 'book-orders'],
      routes: {
        '/books/purchase': async (ctx) => {
          const req = ctx.body as { bookId?: string; quantity?: number; customer?: string } | undefined;
          const valid = await ctx.call('book-validator', '/books/validate', { bookId: req?.bookId, quantity: req?.quantity });
          if (valid.status !== 200) return { status: 422, body: { error: 'invalid purchase', cause: valid.body } };
          const order = await ctx.call('book-orders', '/books/order', { bookId: req?.bookId, quantity: req?.quantity, customer: req?.customer });
          if (order.status >= 400) return { status: 502, body: { error: 'order_book failed', cause: order.body } };
          return { status: 200, body: { purchased: true, order: order.body } };
        },
      },
    },
    {
      name: 'book-validator',
      calls: [],
      routes: {
        '/books/validate': async (ctx) => {
          await sleep(uniform(validateRand, 1, 100));
          const req = ctx.body as { bookId?: unknown } | undefined;
          return typeof req?.bookId === 'string'
            ? { status: 200, body: { valid: true, bookId: req.bookId } }
            : { status: 400, body: { valid: false, error: 'bookId is required' } };
        },
      },
    },
    {
      name: 'book-orders',
      calls: [],
      routes: {
        '/books/order': async () => {
          const t = uniform(orderRand, 100, 1500);
          await sleep(t);
          if (t > opts.orderFailAboveMs) {
            return { status: 503, body: { error: `Book server is on high load! Latency: ${t.toFixed(1)}` } };
          }
          return { status: 201, body: { orderId: `ord-${nextOrder++}`, status: 'ordered' } };
        },
      },
    },
  ];
}
