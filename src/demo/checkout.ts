// The checkout chain: gateway → auth, then orders → payment and inventory, then notification.
// Payment declines amounts over the card limit (visible in the request body), inventory is
// slow for bulk items, and a few sessions carry an expired token.

import { forkRandom, pick, uniform } from './random.js';
import { sleep, type ServiceSpec } from './service.js';

export interface CheckoutOptions {
  seed: number;
  /** payment declines charges above this amount. */
  cardLimit: number;
}

const CATALOG: Record<string, number> = {
  'sku-notebook': 12.5,
  'sku-pen': 2.2,
  'sku-lamp': 48,
  'sku-chair': 189,
  'sku-desk': 349,
  'sku-paper-bulk': 95,
};

export function checkoutServices(opts: CheckoutOptions): ServiceSpec[] {
  const r = (name: string) => forkRandom(opts.seed, name);
  const authRand = r('auth');
  const payRand = r('payment');
  const invRand = r('inventory');
  const notifyRand = r('notification');
  let nextOrder = 1;
  return [
    {
      name: 'gateway',
      calls: ['auth', 'orders'],
      routes: {
        '/checkout': async (ctx) => {
          const req = ctx.body as { user?: string; token?: string; items?: unknown } | undefined;
          const auth = await ctx.call('auth', '/auth/verify', { user: req?.user, token: req?.token });
          if (auth.status !== 200) return { status: auth.status, body: { error: 'not signed in', cause: auth.body } };
          const order = await ctx.call('orders', '/orders', { user: req?.user, items: req?.items });
          return { status: order.status === 201 ? 200 : order.status, body: order.body };
        },
      },
    },
    {
      name: 'auth',
      calls: [],
      routes: {
        '/auth/verify': async (ctx) => {
          await sleep(uniform(authRand, 3, 15));
          const req = ctx.body as { user?: string; token?: string } | undefined;
          if (!req?.token || req.token.startsWith('expired-')) return { status: 401, body: { error: 'token expired', user: req?.user } };
          return { status: 200, body: { user: req.user, scopes: ['checkout'] } };
        },
      },
    },
    {
      name: 'orders',
      calls: ['payment', 'inventory', 'notification'],
      routes: {
        '/orders': async (ctx) => {
          const req = ctx.body as { user?: string; items?: { sku: string; qty: number }[] } | undefined;
          const items = req?.items ?? [];
          const amount = Math.round(items.reduce((sum, i) => sum + (CATALOG[i.sku] ?? 0) * i.qty, 0) * 100) / 100;
          const orderId = `co-${nextOrder++}`;
          const [pay, inv] = await Promise.all([
            ctx.call('payment', '/payments/charge', { orderId, amount, currency: 'EUR', card: { last4: '4242' } }),
            ctx.call('inventory', '/inventory/reserve', { orderId, items }),
          ]);
          if (pay.status !== 200) return { status: pay.status, body: { error: 'payment failed', orderId, cause: pay.body } };
          if (inv.status !== 200) return { status: inv.status, body: { error: 'out of stock', orderId, cause: inv.body } };
          await ctx.call('notification', '/notifications/send', { user: req?.user, orderId, channel: 'email' });
          return { status: 201, body: { orderId, amount, currency: 'EUR' } };
        },
      },
    },
    {
      name: 'payment',
      calls: [],
      routes: {
        '/payments/charge': async (ctx) => {
          await sleep(uniform(payRand, 20, 80));
          const req = ctx.body as { amount?: number; currency?: string } | undefined;
          const amount = req?.amount ?? 0;
          if (amount > opts.cardLimit) {
            return { status: 402, body: { error: `card declined: ${amount.toFixed(2)} ${req?.currency ?? ''} is over the card limit`.trim() } };
          }
          return { status: 200, body: { charged: amount, currency: req?.currency } };
        },
      },
    },
    {
      name: 'inventory',
      calls: [],
      routes: {
        '/inventory/reserve': async (ctx) => {
          const req = ctx.body as { items?: { sku: string }[] } | undefined;
          const bulk = (req?.items ?? []).some((i) => i.sku.endsWith('-bulk'));
          // Bulk items are counted in the warehouse: slow, but they succeed.
          await sleep(bulk ? uniform(invRand, 250, 450) : uniform(invRand, 5, 30));
          return { status: 200, body: { reserved: (req?.items ?? []).length } };
        },
      },
    },
    {
      name: 'notification',
      calls: [],
      routes: {
        '/notifications/send': async () => {
          await sleep(uniform(notifyRand, 5, 15));
          return { status: 202, body: { queued: true } };
        },
      },
    },
  ];
}

/** A checkout request as a shopper would send it. */
export function checkoutRequest(rand: () => number, n: number): { user: string; token: string; items: { sku: string; qty: number }[] } {
  const skus = Object.keys(CATALOG);
  const count = 1 + Math.floor(rand() * 3);
  const items = Array.from({ length: count }, () => ({ sku: pick(rand, skus), qty: 1 + Math.floor(rand() * 2) }));
  const user = `user-${1 + Math.floor(rand() * 40)}`;
  return { user, token: rand() < 0.04 ? `expired-${n}` : `tok-${n}`, items };
}
