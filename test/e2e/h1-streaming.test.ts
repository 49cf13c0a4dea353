// Bodies stream with bounded memory: 64 MiB up and 64 MiB down through the proxy, with
// backpressure honoured on every hop, must not grow the proxy's RSS by more than 50 MB.
// Client and upstream run in a child process so the RSS measured here is the proxy's alone.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, expect, it } from 'vitest';
import { startH1Proxy, type Started } from '../support/h1-harness.js';
import type { Exchange, ExchangeFactory } from '../../src/proxy/exchange.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Counts body bytes like a capture that keeps nothing (a recording factory would copy 128 MiB). */
class CountingFactory implements ExchangeFactory {
  reqBytes = 0;
  resBytes = 0;
  ends = 0;
  start(): Exchange {
    return {
      forwardHeaders: [['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']],
      replacesHeaders: new Set(['traceparent']),
      requestBody: (b) => void (this.reqBytes += b.length),
      requestEnd: () => {},
      responseHead: () => {},
      responseBody: (b) => void (this.resBytes += b.length),
      responseEnd: () => void this.ends++,
      fail: () => {},
      tunnelEstablished: () => {},
    };
  }
}

const SIZE = 64 * 1024 * 1024;

/** Upstream (reads SIZE bytes, answers with SIZE bytes) and client, both honouring backpressure. */
const PEERS = `
import net from 'node:net';
import { createInterface } from 'node:readline';
const SIZE = ${SIZE};
const CHUNK = Buffer.alloc(65536, 0x61);
function pump(s, total) {
  let left = total;
  const more = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) { s.once('drain', more); return; }
    }
  };
  more();
}
let upstreamGot = 0;
const server = net.createServer((s) => {
  let head = true;
  s.on('error', () => {});
  s.on('data', (d) => {
    if (head) { head = false; upstreamGot += d.length - (d.indexOf('\\r\\n\\r\\n') + 4); } else upstreamGot += d.length;
    if (upstreamGot === SIZE) { s.write('HTTP/1.1 200 OK\\r\\nContent-Length: ' + SIZE + '\\r\\n\\r\\n'); pump(s, SIZE); }
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
createInterface({ input: process.stdin }).once('line', (line) => {
  const c = net.connect(Number(line), '127.0.0.1');
  let got = 0;
  c.on('data', (d) => { got += d.length; });
  c.on('end', () => { console.log(JSON.stringify({ upstreamGot, got })); process.exit(0); });
  c.on('connect', () => {
    c.write('POST /upload HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: ' + SIZE + '\\r\\nConnection: close\\r\\n\\r\\n');
    pump(c, SIZE);
  });
});
`;

it('64 MiB request and 64 MiB response stream through with proxy RSS growth < 50 MB', async () => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', PEERS], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanup.push(async () => void child.kill());
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const upstreamPort = Number((await lines.next()).value);
  const factory = new CountingFactory();
  const proxy = await startH1Proxy(upstreamPort, { factory });
  cleanup.push(() => proxy.close());

  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = performance.now();
  child.stdin!.write(`${proxy.port}\n`);
  const result = JSON.parse(String((await lines.next()).value)) as { upstreamGot: number; got: number };
  clearInterval(sampler);
  const seconds = (performance.now() - t0) / 1000;
  const growthMB = (peak - baseline) / 1e6;
  console.log(`${(2 * SIZE) / 2 ** 20} MiB through the proxy in ${seconds.toFixed(2)} s (${((2 * SIZE) / 1e6 / seconds).toFixed(0)} MB/s); proxy RSS growth ${growthMB.toFixed(1)} MB`);
  expect(result.upstreamGot).toBe(SIZE);
  expect(result.got).toBeGreaterThan(SIZE);
  expect(factory.reqBytes).toBe(SIZE);
  expect(factory.resBytes).toBe(SIZE);
  expect(factory.ends).toBe(1);
  expect(growthMB).toBeLessThan(50);
});
