// `sidetrace demo`: example services behind sidetrace proxies, a bounded load, and a report of
// what the spans show; then the viewer stays up until Ctrl-C (or exits with --exit).

import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { parseDurationMs } from '../collector/query-params.js';
import { AddressError } from '../collector/collector.js';
import { runDemo } from '../demo/run-demo.js';
import { positiveInt, waitForSignal } from './cli-support.js';

const DEFAULT_UI = '127.0.0.1:16686';

const USAGE = `usage: sidetrace demo [flags]

Runs a bookstore (purchase → validate, order) and a checkout chain (gateway → auth, orders →
payment, inventory, notification), each service behind its own sidetrace proxy, drives load,
and reports which service fails, which is slow, and why, from the spans alone.

  --duration DUR              how long to drive load: 20 (seconds), 20s, 1m (default 20s)
  --seed N                    replay the same latencies and requests (default: random, printed)
  --order-fail-above-ms N     the bookstore's order fails when slower than this (default 700)
  --card-limit N              payment declines amounts above this (default 500)
  --ui ADDR                   viewer address (default ${DEFAULT_UI}; "off" to disable)
  --otlp ADDR                 the embedded collector's OTLP gRPC address (default 127.0.0.1:0)
  --no-forward LIST           services whose app does not forward trace context (e.g. orders),
                              to see what a sidecar can and cannot join then
  --exit                      stop after the report instead of keeping the viewer up
`;

export async function run(argv: string[], out: Writable = process.stdout): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        duration: { type: 'string', default: '20s' },
        seed: { type: 'string' },
        'order-fail-above-ms': { type: 'string', default: '700' },
        'card-limit': { type: 'string', default: '500' },
        ui: { type: 'string' },
        otlp: { type: 'string', default: '127.0.0.1:0' },
        exit: { type: 'boolean', default: false },
        'no-forward': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`sidetrace demo: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  let durationMs: number;
  try {
    durationMs = /^\d+(\.\d+)?$/.test(values.duration) ? Number(values.duration) * 1000 : parseDurationMs('--duration', values.duration);
  } catch {
    process.stderr.write(`sidetrace demo: --duration "${values.duration}" is not a duration like 20, 20s or 1m\n`);
    return 2;
  }
  const seed = values.seed === undefined ? randomInt(1, 1_000_000) : positiveInt('--seed', values.seed);
  const orderFailAboveMs = positiveInt('--order-fail-above-ms', values['order-fail-above-ms']);
  const cardLimit = positiveInt('--card-limit', values['card-limit']);
  if (seed === undefined || orderFailAboveMs === undefined || cardLimit === undefined) return 2;

  let result;
  try {
    result = await runDemo(
      {
        durationMs,
        seed,
        orderFailAboveMs,
        cardLimit,
        otlp: values.otlp,
        ui: values.ui === 'off' ? null : values.ui ?? DEFAULT_UI,
        uiFallback: values.ui === undefined,
        maxSpans: 200_000,
        bookConcurrency: 6,
        checkoutConcurrency: 3,
        noForward: new Set(values['no-forward'] ? values['no-forward'].split(',').map((x) => x.trim()) : []),
      },
      out,
    );
  } catch (err) {
    if (!(err instanceof AddressError)) throw err;
    process.stderr.write(`sidetrace demo: ${err.message}\n`);
    return 2;
  }
  const { collector } = result;
  if (!values.exit) {
    out.write(
      (collector.uiUrl ? `\nOpen the viewer: ${collector.uiUrl}  (search service book-orders with tags error=true, or min duration 500ms)\n` : '\n') +
        `The collector keeps listening for OTLP on ${collector.otlp.address}. Ctrl-C to stop.\n`,
    );
    await waitForSignal();
  }
  await collector.close();
  return 0;
}
