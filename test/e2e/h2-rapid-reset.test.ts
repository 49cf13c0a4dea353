// HTTP/2 rapid reset (CVE-2023-44487): a client opening and cancelling streams as fast as it
// can must get a GOAWAY (or stay bounded), must not make the proxy open a matching flood of
// upstream streams, and must not stop the proxy serving everyone else.

import http2 from 'node:http2';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getHeaders, rawH2Connect, rstStream } from '../support/h2-frames.js';
import { startH2Proxy, type H2Proxy } from '../support/h2-proxy.js';
import { RecordingExchanges } from '../support/h2-recording-exchange.js';
import { h2call } from '../support/h2-client.js';
import { startH2Upstream, type H2Upstream } from '../support/h2-upstream.js';

const { NGHTTP2_CANCEL } = http2.constants;
const PAIRS = 20_000;
const BATCH = 50;

let upstream: H2Upstream;
let proxy: H2Proxy;

beforeAll(async () => {
  upstream = await startH2Upstream();
  proxy = await startH2Proxy({ address: '127.0.0.1', port: upstream.port }, new RecordingExchanges({ keepChunks: false }));
});

afterAll(async () => {
  await proxy.close();
  await upstream.close();
});

it(`answers up to ${PAIRS} HEADERS+RST_STREAM pairs with GOAWAY and keeps the upstream bounded`, async () => {
  const { socket, reader, closed } = await rawH2Connect(proxy.port);
  let gone = false;
  void closed.then(() => {
    gone = true;
  });
  const before = upstream.streams;
  // Batches of HEADERS, then their RST_STREAMs a moment later: long enough for the proxy to
  // open each upstream stream, which is what makes rapid reset an amplifier through a proxy.
  let sent = 0;
  for (let id = 1; sent < PAIRS && !gone && reader.goawayCode() === undefined; ) {
    const ids: number[] = [];
    for (let i = 0; i < BATCH; i++, id += 2) ids.push(id);
    socket.write(Buffer.concat(ids.map((i) => getHeaders(i))));
    await new Promise((r) => setTimeout(r, 2));
    socket.write(Buffer.concat(ids.map((i) => rstStream(i, NGHTTP2_CANCEL))));
    sent += BATCH;
    await new Promise((r) => setImmediate(r));
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
  socket.destroy();

  const goaway = reader.goawayCode();
  expect(goaway, 'the proxy sends GOAWAY to a rapid-reset client').toBeDefined();
  // nghttp2's reset rate limit (burst 1000) ends the session long before the flood does, so
  // the upstream sees about a thousand streams, not one per pair.
  const opened = upstream.streams - before;
  expect(opened).toBeLessThan(1500);
  expect(sent).toBeLessThan(PAIRS);

  // Everyone else is still served.
  const c = http2.connect(proxy.url);
  c.on('error', () => {});
  try {
    const res = await h2call(c, { ':method': 'POST', ':path': '/echo' }, { body: 'after the flood' });
    expect(res.body.toString()).toBe('after the flood');
  } finally {
    c.destroy();
  }
});
